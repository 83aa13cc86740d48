"""protocols.modbus on CPython: known vectors, then Hypothesis properties."""

import math
import struct

import pytest
from hypothesis import given, strategies as st

from passerelle.strategies import modbus as mst
from protocols.errors import ModbusError, ProtocolError, UsageError
from protocols.modbus import (ADU_MAX, RtuDecoder, crc16, encode_read, encode_write_multiple,
                              encode_write_single, request, values)
from tests.modbus.modbus_helpers import decode_all, fields

# --- vectors ---------------------------------------------------------------------------


def test_crc_known_values():
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    # the classic example of the Modbus over serial line specification (read 2 holding
    # registers from 0x006B of slave 0x11): CRC 0x8776, sent 76 87
    assert request(0x11, 3, 0x006B, 3) == bytes.fromhex("1103006b00037687")
    assert crc16(b"") == 0xFFFF
    assert crc16(bytes.fromhex("1103006b00037687")) == 0


def test_requests_layout():
    r = request(1, 4, 0x0000, 76)
    assert r[:6] == bytes.fromhex("01040000004c") and crc16(r) == 0
    assert request(1, 6, 0x0012, 0x0100)[:6] == bytes.fromhex("010600120100")
    w = request(2, 16, 0x001C, [0x4140, 0x0000])
    assert w[:11] == bytes.fromhex("0210001c00020441400000") and len(w) == 13
    buf = bytearray(8)
    assert encode_read(buf, 247, 3, 0xFFFF, 1) == 8


@pytest.mark.parametrize("call", [
    lambda b: encode_read(b, 0, 4, 0, 1),          # broadcast read
    lambda b: encode_read(b, 248, 4, 0, 1),
    lambda b: encode_read(b, 1, 5, 0, 1),          # not a read function
    lambda b: encode_read(b, 1, 3, 0, 0),
    lambda b: encode_read(b, 1, 3, 0, 126),
    lambda b: encode_read(b, 1, 3, 0xFFFF, 2),     # past register 65535
    lambda b: encode_read(b, 1, 3, -1, 1),
    lambda b: encode_read(b, True, 3, 0, 1),
    lambda b: encode_write_single(b, 1, 0, 0x10000),
    lambda b: encode_write_multiple(b, 1, 0, []),
    lambda b: encode_write_multiple(b, 1, 0, [0] * 124),
    lambda b: encode_write_multiple(b, 1, 0, [1, -1]),
])
def test_encoders_reject_out_of_range(call):
    with pytest.raises(ModbusError):
        call(bytearray(256))


def test_encoders_reject_bad_buffers():
    with pytest.raises(UsageError):
        encode_read(bytearray(7), 1, 3, 0, 1)
    with pytest.raises(UsageError):
        encode_read(b"\0" * 8, 1, 3, 0, 1)
    assert issubclass(ModbusError, ProtocolError) and issubclass(UsageError, ProtocolError)


def _answer(body):
    return mst.adu(bytes.fromhex(body))


def test_decode_float_response_and_exception():
    d = RtuDecoder()
    # 230.2 V, an exception 2, a write single echo, a write multiple answer
    data = _answer("01040443663333") + _answer("018402") + _answer("0106001200ff") \
        + _answer("0110001c0002")
    got = decode_all(d, data)
    assert got == [(1, 4, 0, 2, 0, 0, (0x4366, 0x3333)), (1, 4, 2, 0, 0, 0, ()),
                   (1, 6, 0, 0, 0x12, 0xFF, ()), (1, 16, 0, 2, 0x1C, 2, ())]
    d2 = RtuDecoder()
    used, r = d2.decode(data)
    assert used == 9 and values.f32(r.data, r.offset) == pytest.approx(230.2, abs=1e-4)
    assert d.stats == {"frames": 4, "exceptions": 1, "crc_errors": 0, "garbage_bytes": 0,
                       "unexpected": 0, "bytes": len(data)}


def test_garbage_then_frame_resynchronises():
    frame = _answer("01040443663333")  # 230.2 V
    bad = bytearray(frame)
    bad[4] ^= 0x10  # a CRC error
    d = RtuDecoder()
    got = decode_all(d, b"\x00\xff\x01\x04" + bytes(bad) + frame, cuts=(3, 7))
    assert got == [(1, 4, 0, 2, 0, 0, (0x4366, 0x3333))]
    s = d.stats
    assert s["crc_errors"] == 1 and s["frames"] == 1 and s["garbage_bytes"] > 0


def test_frame_inside_a_bad_candidate_is_found():
    # "01 03 08" announces 13 bytes; a 5-byte exception answer sits inside them
    exc = _answer("018302")
    data = bytes.fromhex("010308") + exc + bytes(5)
    got = decode_all(RtuDecoder(), data)
    assert (1, 3, 2, 0, 0, 0, ()) in got


def test_expect_filters_other_answers():
    d = RtuDecoder()
    d.expect(2, 4, 2)
    data = _answer("01040443663333") + _answer("0204020001") + _answer("02040443663333")
    got = decode_all(d, data)
    assert got == [(2, 4, 0, 2, 0, 0, (0x4366, 0x3333))]
    assert d.stats["unexpected"] == 2
    d.flush()
    assert d.pending == 0


def test_decode_usage_errors_and_empty():
    d = RtuDecoder()
    assert d.decode(b"abc", 3, 3) == (0, None)
    with pytest.raises(UsageError):
        d.decode(b"abc", 2, 5)
    with pytest.raises(UsageError):
        d.decode(b"abc", 2, 1)


def test_values_types():
    b = bytes.fromhex("fffe000180000000")
    assert values.u16(b, 0) == 0xFFFE and values.s16(b, 0) == -2
    assert values.get(values.U32, b, 0) == 0xFFFE0001
    assert values.get(values.S32, b, 0) == -131071
    assert values.get(values.U32_SW, b, 0) == 0x0001FFFE
    assert values.get(values.S32_SW, b, 4) == 0x00008000
    assert values.get(values.S32_SW, bytes.fromhex("0000ffff"), 0) == -65536
    assert values.f32(bytes.fromhex("43663333"), 0) == struct.unpack(">f", bytes.fromhex("43663333"))[0]
    assert math.isnan(values.float_of_bits(0x7FC00000)) and not values.finite(float("nan"))
    assert values.float_of_bits(0xFF800000) == -math.inf and not values.finite(-math.inf)
    assert values.finite(0) and values.finite(1.5)
    assert values.width(values.S16) == 1 and values.width(values.F32) == 2


# --- properties --------------------------------------------------------------------------

@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition(data):
    assert crc16(data) == mst.crc16_bitwise(data)
    assert crc16(mst.adu(data)) == 0


@given(mst.requests())
def test_requests_are_well_formed(req):
    address, function, register, arg = req
    r = request(address, function, register, arg)
    assert crc16(r) == 0 and r[0] == address and r[1] == function
    assert (r[2] << 8 | r[3]) == register
    if function == 16:
        assert len(r) == 9 + 2 * len(arg) and r[6] == 2 * len(arg)
        assert [r[7 + 2 * i] << 8 | r[8 + 2 * i] for i in range(len(arg))] == arg
    else:
        assert len(r) == 8 and (r[4] << 8 | r[5]) == arg


@given(mst.requests())
def test_requests_match_pymodbus(req):
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU
    from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest,
                                               ReadInputRegistersRequest,
                                               WriteMultipleRegistersRequest,
                                               WriteSingleRegisterRequest)
    address, function, register, arg = req
    if function == 3:
        pdu = ReadHoldingRegistersRequest(address=register, count=arg, dev_id=address)
    elif function == 4:
        pdu = ReadInputRegistersRequest(address=register, count=arg, dev_id=address)
    elif function == 6:
        pdu = WriteSingleRegisterRequest(address=register, registers=[arg], dev_id=address)
    else:
        pdu = WriteMultipleRegistersRequest(address=register, registers=arg, dev_id=address)
    assert request(address, function, register, arg) == FramerRTU(DecodePDU(False)).buildFrame(pdu)


@given(st.integers(-10, 300), st.integers(-5, 10), st.integers(-10, 0x10010),
       st.one_of(st.integers(-10, 0x10010), st.lists(st.integers(-2, 0x10001), max_size=130)))
def test_encoders_raise_only_documented_errors(address, function, register, arg):
    try:
        request(address, function, register, arg)
    except ProtocolError:
        pass


@given(mst.responses())
def test_response_round_trip(resp):
    d = RtuDecoder()
    used, r = d.decode(resp.data)
    assert used == len(resp.data) and r is not None and fields(r) == resp.fields
    assert d.decode(resp.data, used) == (0, None)


@st.composite
def stream_and_cuts(draw, garbage=True):
    s = draw(mst.streams(garbage=garbage))
    return s, draw(mst.chunkings(s.data))


@given(stream_and_cuts())
def test_chunking_invariance(sc):
    s, cuts = sc
    whole = RtuDecoder()
    ref = decode_all(whole, s.data)
    chunked = RtuDecoder()
    assert decode_all(chunked, s.data, cuts) == ref
    bytewise = RtuDecoder()
    assert decode_all(bytewise, s.data, range(1, len(s.data))) == ref
    assert whole.stats == chunked.stats == bytewise.stats


@given(stream_and_cuts(garbage=False))
def test_clean_streams_decode_exactly(sc):
    s, cuts = sc
    d = RtuDecoder()
    assert decode_all(d, s.data, cuts) == [r.fields for r in s.responses]
    st_ = d.stats
    assert st_["garbage_bytes"] == st_["crc_errors"] == 0 and st_["frames"] == len(s.responses)


def _subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@given(stream_and_cuts())
def test_garbage_resync_finds_every_frame(sc):
    s, cuts = sc
    d = RtuDecoder()
    got = decode_all(d, s.data, cuts, silence=True)
    assert _subsequence([r.fields for r in s.responses], got)
    assert d.pending == 0


def test_silence_ends_a_frame_cut_short():
    # "01 03 04" announces 9 bytes; the exception answer after it is only 5
    exc = _answer("018301")
    d = RtuDecoder()
    assert decode_all(d, bytes.fromhex("010304") + exc) == []
    assert d.pending == 8
    assert fields(d.silence()) == (1, 3, 1, 0, 0, 0, ())
    assert d.silence() is None and d.pending == 0 and d.stats["garbage_bytes"] == 3


@given(st.lists(st.binary(max_size=400), max_size=6))
def test_bounded_buffer_and_no_raise_on_wire_data(chunks):
    d = RtuDecoder()
    for c in chunks:
        decode_all(d, c)
        assert 0 <= d.pending < ADU_MAX and len(d._w) == ADU_MAX
    assert d.stats["bytes"] == sum(len(c) for c in chunks)


@given(mst.float_bits())
def test_float32_matches_struct(bits):
    ref = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
    v = values.float_of_bits(bits)
    if math.isnan(ref):
        assert math.isnan(v) and not values.finite(v)
    else:
        assert v == ref and math.copysign(1, v) == math.copysign(1, ref)
        assert values.finite(v) == math.isfinite(ref)


# --- set-up writes: value encoding, write confirmations, echoes ---------------------------

@given(mst.float_bits())
def test_f32_bits_inverts_float_of_bits(bits):
    v = values.float_of_bits(bits)
    if values.finite(v) or not math.isnan(v):
        assert values.f32_bits(v) == bits
    else:
        assert values.f32_bits(v) == 0x7FC00000  # NaN: the quiet NaN


@given(mst.typed_values())
def test_regs_match_struct_and_invert_get(tv):
    t, v = tv
    if t == values.F32:
        v = math.ldexp(v[0], v[1])
        try:
            want = struct.unpack(">I", struct.pack(">f", v))[0]
        except OverflowError:  # beyond the float32 range once rounded: infinity
            want = 0x7F800000 | (0x80000000 if v < 0 else 0)
        assert values.f32_bits(v) == want
    r = values.regs(t, v)
    assert len(r) == values.width(t) and all(0 <= x <= 0xFFFF for x in r)
    b = bytes(x for reg in r for x in (reg >> 8, reg & 0xFF))
    back = values.get(t, b, 0)
    if t == values.F32:
        assert back == struct.unpack(">f", struct.pack(">I", values.f32_bits(v)))[0]
    else:
        assert back == v


@given(mst.write_exchanges())
def test_write_answers_confirm_their_request(ex):
    """What the bus driver compares: FC 6 register + value, FC 16 register + count."""
    (address, function, register, arg), answer = ex
    d = RtuDecoder()
    d.expect(address, function, len(arg) if function == 16 else 0)
    used, r = d.decode(answer)
    assert used == len(answer) and r is not None and not r.exception
    assert r.register == register
    assert (r.value == arg) if function == 6 else (r.count == len(arg))


def test_maps_setup_registers():
    from protocols.modbus import maps
    for model in maps.MODELS:
        for key, reg, t, allowed in maps.setup(model):
            assert t in (values.F32, values.U16) and allowed
            for v in allowed:
                assert values.get(t, bytes(x for w in values.regs(t, v)
                                            for x in (w >> 8, w & 0xFF)), 0) == v
    assert [k for k, *_ in maps.setup("sdm630")] == ["demand_period", "pulse1_width",
                                                      "pulse1_energy"]
    assert maps.setup("em111") == () and values.regs(values.F32, 15) == [0x4170, 0]


@pytest.mark.parametrize("req", [(1, 4, 0x0000, 76), (1, 4, 0x0156, 2), (7, 3, 0x0002, 2),
                                 (2, 16, 0x0002, [0x4170, 0])])
def test_a_stray_echo_is_dropped_and_counted(req):
    """A transceiver that hears the request (RE tied low) without "echo": true: a read
    or FC 16 request in front of its answer is not a valid answer; the decoder drops it
    while resynchronising and counts it.  (A FC 6 request is its own answer: set-up
    writes use FC 16 and read back.)"""
    address, function, register, arg = req
    if function == 16:
        answer = _answer("%02x10%04x%04x" % (address, register, len(arg)))
        count = len(arg)
    else:
        count = arg
        answer = mst.adu(bytes([address, function, 2 * arg]) + bytes(range(2 * arg)))
    echo = request(address, function, register, arg)
    d = RtuDecoder()
    d.expect(address, function, count)
    got = decode_all(d, echo + answer, silence=True)
    assert got == decode_all(RtuDecoder(), answer)
    assert d.stats["garbage_bytes"] == len(echo) and d.stats["frames"] == 1
