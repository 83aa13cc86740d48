# gw/drivers/modbus_bus.py - one RS-485 bus (a UART plus a DE/RE pin), Modbus RTU master
# MIT license.
#
# One ModbusBus per UART, shared by the meters wired to it (gw.app builds it for the
# first Modbus meter of a UART).  request() runs one transaction at a time under a
# FIFO lock: meters polling concurrently interleave request by request, so a meter
# that does not answer delays the others by at most one transaction (its deadline
# times its attempts) per request of theirs, never starves them.
#
# A transaction (RTU, Modbus over serial line V1.02 §2.5):
#   1. the inter-frame silence: the line must stay quiet 3.5 character times (at
#      least 1.75 ms above 19200 Bd) before a request; bytes that arrive meanwhile
#      (a late answer to a timed-out request, noise) are read, dropped and counted
#      (late_bytes), and the silence starts again, until the deadline;
#   2. DE/RE high, the request written (awrite returns once the last stop bit left
#      the UART), DE/RE low: the transceiver listens again;
#   3. the answer is decoded by protocols.modbus.RtuDecoder (expecting this slave,
#      function and count) until the deadline: timeout_ms + the time the request and
#      the answer take on the wire; after a frame that failed its CRC, the wait ends
#      with the next silence (bad_responses; the decoder counts crc_errors); a timeout
#      or a bad answer is retried up to `retries` times.  A write (FC 6/16) is confirmed by
#      its answer: FC 6 echoes register and value, FC 16 register and count; any other
#      answer is a bad response (bad_responses) and retried.
# Echo transceivers (RE tied low, auto-direction modules) hear the request they send:
# the bytes that start the answer are compared with the request as they come; a whole
# copy is counted (echoes) and, with "echo": true on the bus, discarded before the
# decoder sees it.  Without the option the decoder gets it: a read or FC 16 request is
# not a valid answer, so it is dropped while resynchronising (garbage_bytes) - but a FC
# 6 request is byte for byte its own answer (not counted in echoes then), which is why
# set-up writes use FC 16 and are read back.  With the option and bytes that differ from
# the request (no echo after all, or a damaged one: echo_errors), the bytes taken for the
# echo go to the decoder first, so nothing of an answer is lost - except a FC 6 answer
# on a line that does not echo: the option must match the transceiver.
# The response returned is the decoder's (reused): the caller reads it before its next
# await.  The UART is opened on the first request and reopened (after at least
# _REOPEN_MS) when the link fails.
import asyncio

from protocols.compat import const
from protocols.modbus import rtu

_RX_SIZE = const(32)  # read buffer; the decoder keeps partial frames itself
_TX_SIZE = const(8)  # FC 3/4/6 requests; a FC 16 request gets a buffer of its own
_REOPEN_MS = const(2000)
_SILENT_REOPEN = const(16)
_PARITY = (("none", None), ("even", 0), ("odd", 1))

_POLL_MS = const(2)  # the line is polled (non-blocking reads) while a transaction waits


async def _read(hal, uart, mv, ms):
    """Bytes of the line into mv within ms: n > 0, 0 link closed, -1 nothing came.
    Polled with uart.read_nb(): no task nor timer object per wait (asyncio.wait_for
    would allocate one, and import asyncio.funcs, ~4 KB)."""
    start = hal.ticks_ms()
    while True:
        n = uart.read_nb(mv)
        if n is not None:
            return n
        if hal.ticks_diff(hal.ticks_ms(), start) >= ms:
            return -1
        await asyncio.sleep_ms(_POLL_MS)


class ModbusBus:
    def __init__(self, cfg, hal, log):
        self.hal = hal
        self.log = log
        self.cfg = cfg  # the first meter's: uart, baudrate, parity, rx/tx/de pins
        parity = None
        for name, v in _PARITY:
            if name == cfg.get("parity", "none"):
                parity = v
        self._parity = parity
        # one character: start + 8 data + parity + stop bits, in microseconds
        self.char_us = (11 if parity is not None else 10) * 1000000 // cfg["baudrate"]
        self.gap_ms = max(2, (35 * self.char_us + 9999) // 10000)  # 3.5 characters
        de = cfg.get("de_pin")
        self._de = None if de is None else hal.pin(de, 1, value=0)
        self._uart = None
        self._opened = None  # ticks of the last open attempt
        self._silent = 0  # requests in a row without an answer
        self._echo = cfg.get("echo", False)
        self._dec = rtu.RtuDecoder()
        self._tx = bytearray(_TX_SIZE)
        self._rx = bytearray(_RX_SIZE)
        self._lock = asyncio.Lock()
        self.stats = {"requests": 0, "responses": 0, "timeouts": 0, "retries": 0,
                      "bad_responses": 0, "late_bytes": 0, "link_errors": 0, "echoes": 0,
                      "echo_errors": 0}

    @property
    def tag(self):
        return "modbus/uart%d" % self.cfg["uart"]

    def decoder_stats(self):
        return self._dec.stats

    def close(self):
        u, self._uart = self._uart, None
        if u is not None:
            u.close()

    async def _open(self):
        if self._uart is not None:
            return self._uart
        hal = self.hal
        now = hal.ticks_ms()
        if self._opened is not None and hal.ticks_diff(now, self._opened) < _REOPEN_MS:
            raise OSError("UART %d: reopened too soon" % self.cfg["uart"])
        self._opened = now
        c = self.cfg
        self._uart = await hal.uart(c["uart"], c["baudrate"], c.get("rx_pin"), False,
                                    c.get("tx_pin"), 8, self._parity)
        self.log.info(self.tag, "open at %d Bd", c["baudrate"])
        return self._uart

    async def request(self, address, function, register, arg, timeout_ms, retries):
        """One transaction (FC 3/4: arg = count; 6: value; 16: register values) ->
        the response (rtu.Response, maybe an exception response) or None."""
        async with self._lock:
            st = self.stats
            for attempt in range(retries + 1):
                if attempt:
                    st["retries"] += 1
                try:
                    r = await self._transact(address, function, register, arg, timeout_ms)
                except OSError as e:
                    st["link_errors"] += 1
                    self.log.warning(self.tag, "link error: %s", e)
                    self.close()
                    return None
                if r is not None and function >= rtu.WRITE_SINGLE and not r.exception and (
                        r.register != register or (r.value != arg if function == rtu.WRITE_SINGLE
                                                   else r.count != len(arg))):
                    st["bad_responses"] += 1  # the slave confirmed another write
                    continue
                if r is not None:
                    st["responses"] += 1
                    self._silent = 0
                    return r
            self._silent += 1
            if self._silent >= _SILENT_REOPEN:
                # nobody answered for a while: reopen the line (an emulated link may have
                # closed without telling; a real UART gets a fresh driver state)
                self.log.warning(self.tag, "%d failed requests in a row: reopening",
                                 self._silent)
                self._silent = 0
                self.close()
            return None

    async def _transact(self, address, function, register, arg, timeout_ms):
        hal = self.hal
        uart = await self._open()
        mv = memoryview(self._rx)
        st = self.stats
        tx = self._tx
        if function == rtu.WRITE_SINGLE:
            n = rtu.encode_write_single(tx, address, register, arg)
            count, size = 0, 8
        elif function == rtu.WRITE_MULTIPLE:
            tx = bytearray(9 + 2 * len(arg))
            n = rtu.encode_write_multiple(tx, address, register, arg)
            count, size = len(arg), 8
        else:
            n = rtu.encode_read(tx, address, function, register, arg)
            count, size = arg, 5 + 2 * arg
        # 1. silence: gap_ms without a byte, within the request's deadline
        deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms)
        while True:
            k = await _read(hal, uart, mv, self.gap_ms)
            if k < 0:
                break
            if k == 0:
                raise OSError("link closed")
            st["late_bytes"] += k
            if hal.ticks_diff(deadline, hal.ticks_ms()) <= 0:
                st["timeouts"] += 1
                return None  # the line never went quiet
        # 2. transmit, the driver enabled only meanwhile
        dec = self._dec
        dec.flush()
        dec.expect(address, function, count)
        de = self._de
        if de is not None:
            de.value(1)
        try:
            await uart.awrite(memoryview(tx)[:n])
        finally:
            if de is not None:
                de.value(0)
        st["requests"] += 1
        # 3. the answer, until the deadline
        wire_ms = (n + size) * self.char_us // 1000 + 1
        deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms + wire_ms)
        crc0 = dec.crc_errors
        e = 0  # request bytes seen at the start of the answer (-1: that is over)
        while True:
            ms = hal.ticks_diff(deadline, hal.ticks_ms())
            bad = dec.crc_errors != crc0
            if bad and ms > self.gap_ms:
                ms = self.gap_ms  # a frame failed its CRC: only a silence more to wait
            k = await _read(hal, uart, mv, ms)
            if k < 0:
                # the line went quiet: the frame in progress is over; an answer that
                # followed garbage may be complete among the kept bytes
                if self._echo and e > 0:  # held back as the echo's start: decode them
                    st["echo_errors"] += 1
                    m = self._decode(tx, 0, e)
                    if m is not None:
                        return m
                m = dec.silence()  # (only the expected answer comes out)
                if m is not None:
                    return m
                st["bad_responses" if bad else "timeouts"] += 1
                return None
            if k == 0:
                raise OSError("link closed")
            pos = 0
            if e >= 0:
                p = 0
                while p < k and e < n and mv[p] == tx[e]:
                    p += 1
                    e += 1
                if e == n:  # the whole request came back
                    if self._echo:
                        pos = p
                        st["echoes"] += 1
                    elif function != rtu.WRITE_SINGLE:  # (a FC 6 answer is such a copy)
                        st["echoes"] += 1
                    e = -1
                elif p < k:  # not (or no more) a copy of the request
                    if self._echo:
                        st["echo_errors"] += 1
                        m = self._decode(tx, 0, e - p)  # bytes taken for the echo before
                        if m is not None:
                            st["late_bytes"] += k
                            return m
                    e = -1
                elif self._echo:
                    pos = k  # so far the echo: wait for the rest
            m = self._decode(mv, pos, k)
            if m is not None:
                return m

    def _decode(self, buf, pos, k):
        """buf[pos:k] to the decoder -> the answer, or None (more bytes needed)."""
        dec = self._dec
        while True:
            used, m = dec.decode(buf, pos, k)
            pos += used
            if m is not None:
                self.stats["late_bytes"] += k - pos  # after the answer: not for us
                return m
            if pos >= k:
                return None
