# gw/drivers/ds18b20.py - DS18B20 temperatures on 1-Wire buses
# MIT license.  Imported by gw.app only when the config has sensors.
#
# Config (sensors[]): {"id": "salon", "type": "ds18b20", "pin": 4,
#                      "rom": "28ff4a1b011603bf", "period_s": 60}
# Sensors are addressed by their ROM id (family 0x28, CRC checked when the config is
# validated); several sensors on one GPIO share a bus.  Every min(period_s) of a bus:
# one CONVERT T for all its sensors, 750 ms (12-bit conversion), then each scratchpad
# is read and decoded by protocols.onewire.ds18b20_decode: a bad CRC (noise, a sensor
# gone: the line reads 0xFF), 85.00 degC (the power-on value, no conversion done),
# out of -55..125 degC, or no presence pulse at all (missing) are rejected and counted
# per sensor in stats (crc, power_on, range, missing); nothing is published for them.
# State, retained, on <base>/<device_id>/<id>/state: {"temperature": 21.44} (degC,
# two decimals) after every valid reading.
import asyncio

from protocols import onewire
from protocols.compat import const

_CONVERT_MS = const(750)


class Sensors:
    def __init__(self, gw):
        self.gw = gw
        hal = gw.hal
        self.buses = []  # [gpio, bus, period ms, [sensor, ...], present]
        self.buf = bytearray(9)
        self.disc = True
        for c in gw.cfg["sensors"]:
            b = None
            for bus in self.buses:
                if bus[0] == c["pin"]:
                    b = bus
            if b is None:
                b = [c["pin"], hal.onewire(c["pin"]), c["period_s"] * 1000, [], False]
                self.buses.append(b)
            b[2] = min(b[2], c["period_s"] * 1000)
            # sensor: [cfg, rom bytes, counters [ok, crc, power_on, range, missing]]
            b[3].append([c, onewire.rom_from_hex(c["rom"]), [0, 0, 0, 0, 0]])

    def rediscover(self):
        self.disc = True  # states follow with the next conversion (within period_s)

    def stats(self):
        out = {}
        for b in self.buses:
            for s in b[3]:
                n = s[2]
                out[s[0]["id"]] = {"ok": n[0], "crc": n[1], "power_on": n[2], "range": n[3],
                                   "missing": n[4]}
        return out

    def entities(self):
        out = []
        for b in self.buses:
            for s in b[3]:
                out.append(("sensor", s[0]["id"], {
                    "value_template": "{{ value_json.temperature }}",
                    "device_class": "temperature", "state_class": "measurement",
                    "unit_of_measurement": "°C"}))
        return out

    def read_bus(self, b):
        """One conversion on bus b and a reading of each sensor -> [(sensor, centi)]
        for the valid readings (blocking for ~1 ms per sensor on a board)."""
        bus = b[1]
        buf = self.buf
        out = []
        for s in b[3]:
            if not bus.read(s[1], buf):
                s[2][4] += 1
                continue
            status, centi = onewire.ds18b20_decode(buf)
            s[2][status] += 1
            if status == onewire.OK:
                out.append((s, centi))
        return out

    async def run(self):
        gw = self.gw
        period = self.buses[0][2]
        for b in self.buses:
            period = min(period, b[2])
        while True:
            if self.disc and gw.client.connected:
                from gw.devdisc import announce

                self.disc = not await announce(gw, self.entities())
            for b in self.buses:
                b[4] = b[1].convert()  # presence pulse: at least one sensor answered
            await asyncio.sleep(_CONVERT_MS / 1000)
            for b in self.buses:
                if not b[4]:
                    for s in b[3]:
                        s[2][4] += 1
                    continue
                for s, centi in self.read_bus(b):
                    if gw.client.connected:
                        await gw._publish_json("%s/%s/state" % (gw.base, s[0]["id"]),
                                               {"temperature": centi / 100}, True)
            await asyncio.sleep(max(period - _CONVERT_MS, 250) / 1000)
