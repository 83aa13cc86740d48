"""Register maps of DIN-rail energy meters (data only, compact).

``model(name)`` -> ``(function, max_regs, keys, table)`` or None; only the model
asked for is built (a gateway holds the maps of the meters it has, not all of them).
``function`` is the read function (4 = input registers), ``max_regs`` the most
registers the meter returns in one read, ``keys`` the published keys sorted by
register, ``table`` a ``bytes`` constant with 6 bytes per key (ENTRY):

    register (2 bytes, big-endian), value type (protocols.modbus.values),
    scale (index into SCALES: the factor to the published unit),
    decimals (the rounding; 0: an int), kind (index into KINDS)

A tuple per entry would cost ~64 bytes of heap each on a board; the bytes constant
costs nothing (it stays in flash).  ``entries(m)`` expands a model into
``(key, register, type, scale, decimals, kind)`` tuples (host side, tests).
``hints(kind)`` gives the unit and the Home Assistant classes of a kind.  Energies
are published as integer Wh (HA energy dashboard: device_class energy, state_class
total_increasing); power in W, voltage V, current A, frequency Hz.

Sources: Eastron SDM120 / SDM630 / SDM72D-M Modbus protocol sheets (input
registers, IEEE 754 float32, high word first; energies in kWh), Carlo Gavazzi
EM111 communication protocol (INT32 low word first, fixed-point weights).
"""

from protocols.compat import const

ENTRY = const(6)  # bytes per key in a table
KINDS = ("energy", "power", "voltage", "current", "frequency", "apparent_power",
         "reactive_power", "power_factor")
# per kind: (unit, device_class, state_class)
HINTS = (("Wh", "energy", "total_increasing"), ("W", "power", "measurement"),
         ("V", "voltage", "measurement"), ("A", "current", "measurement"),
         ("Hz", "frequency", "measurement"), ("VA", "apparent_power", "measurement"),
         ("var", "reactive_power", "measurement"), (None, "power_factor", "measurement"))
SCALES = (1, 1000, 0.1, 0.001, 100)
MODELS = ("sdm120", "sdm630", "sdm72d", "em111")


def hints(kind):
    """(unit, device_class, state_class) of a kind (a name or a KINDS index), or None."""
    if isinstance(kind, str):
        kind = KINDS.index(kind) if kind in KINDS else -1
    return HINTS[kind] if 0 <= kind < len(HINTS) else None


def _sdm120():
    return (4, 80, (
        "voltage", "current", "power", "apparent_power", "reactive_power",
        "power_factor", "frequency", "energy_import", "energy_export",
        "energy_total",
    ), (
        b"\x00\x00\x00\x00\x01\x02"  # voltage        0x0000 f32    x1     1  voltage
        b"\x00\x06\x00\x00\x03\x03"  # current        0x0006 f32    x1     3  current
        b"\x00\x0c\x00\x00\x01\x01"  # power          0x000C f32    x1     1  power
        b"\x00\x12\x00\x00\x01\x05"  # apparent_power 0x0012 f32    x1     1  apparent_power
        b"\x00\x18\x00\x00\x01\x06"  # reactive_power 0x0018 f32    x1     1  reactive_power
        b"\x00\x1e\x00\x00\x03\x07"  # power_factor   0x001E f32    x1     3  power_factor
        b"\x00\x46\x00\x00\x02\x04"  # frequency      0x0046 f32    x1     2  frequency
        b"\x00\x48\x00\x01\x00\x00"  # energy_import  0x0048 f32    x1000  0  energy
        b"\x00\x4a\x00\x01\x00\x00"  # energy_export  0x004A f32    x1000  0  energy
        b"\x01\x56\x00\x01\x00\x00"  # energy_total   0x0156 f32    x1000  0  energy
    ))


def _sdm630():
    return (4, 80, (
        "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2",
        "current_l3", "power_l1", "power_l2", "power_l3", "power", "apparent_power",
        "reactive_power", "power_factor", "frequency", "energy_import",
        "energy_export", "current_n", "energy_total",
    ), (
        b"\x00\x00\x00\x00\x01\x02"  # voltage_l1     0x0000 f32    x1     1  voltage
        b"\x00\x02\x00\x00\x01\x02"  # voltage_l2     0x0002 f32    x1     1  voltage
        b"\x00\x04\x00\x00\x01\x02"  # voltage_l3     0x0004 f32    x1     1  voltage
        b"\x00\x06\x00\x00\x03\x03"  # current_l1     0x0006 f32    x1     3  current
        b"\x00\x08\x00\x00\x03\x03"  # current_l2     0x0008 f32    x1     3  current
        b"\x00\x0a\x00\x00\x03\x03"  # current_l3     0x000A f32    x1     3  current
        b"\x00\x0c\x00\x00\x01\x01"  # power_l1       0x000C f32    x1     1  power
        b"\x00\x0e\x00\x00\x01\x01"  # power_l2       0x000E f32    x1     1  power
        b"\x00\x10\x00\x00\x01\x01"  # power_l3       0x0010 f32    x1     1  power
        b"\x00\x34\x00\x00\x01\x01"  # power          0x0034 f32    x1     1  power
        b"\x00\x38\x00\x00\x01\x05"  # apparent_power 0x0038 f32    x1     1  apparent_power
        b"\x00\x3c\x00\x00\x01\x06"  # reactive_power 0x003C f32    x1     1  reactive_power
        b"\x00\x3e\x00\x00\x03\x07"  # power_factor   0x003E f32    x1     3  power_factor
        b"\x00\x46\x00\x00\x02\x04"  # frequency      0x0046 f32    x1     2  frequency
        b"\x00\x48\x00\x01\x00\x00"  # energy_import  0x0048 f32    x1000  0  energy
        b"\x00\x4a\x00\x01\x00\x00"  # energy_export  0x004A f32    x1000  0  energy
        b"\x00\xe0\x00\x00\x03\x03"  # current_n      0x00E0 f32    x1     3  current
        b"\x01\x56\x00\x01\x00\x00"  # energy_total   0x0156 f32    x1000  0  energy
    ))


def _sdm72d():
    return (4, 80, (
        "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2",
        "current_l3", "power", "frequency", "energy_import", "energy_export",
        "energy_total",
    ), (
        b"\x00\x00\x00\x00\x01\x02"  # voltage_l1     0x0000 f32    x1     1  voltage
        b"\x00\x02\x00\x00\x01\x02"  # voltage_l2     0x0002 f32    x1     1  voltage
        b"\x00\x04\x00\x00\x01\x02"  # voltage_l3     0x0004 f32    x1     1  voltage
        b"\x00\x06\x00\x00\x03\x03"  # current_l1     0x0006 f32    x1     3  current
        b"\x00\x08\x00\x00\x03\x03"  # current_l2     0x0008 f32    x1     3  current
        b"\x00\x0a\x00\x00\x03\x03"  # current_l3     0x000A f32    x1     3  current
        b"\x00\x34\x00\x00\x01\x01"  # power          0x0034 f32    x1     1  power
        b"\x00\x46\x00\x00\x02\x04"  # frequency      0x0046 f32    x1     2  frequency
        b"\x00\x48\x00\x01\x00\x00"  # energy_import  0x0048 f32    x1000  0  energy
        b"\x00\x4a\x00\x01\x00\x00"  # energy_export  0x004A f32    x1000  0  energy
        b"\x01\x56\x00\x01\x00\x00"  # energy_total   0x0156 f32    x1000  0  energy
    ))


def _em111():
    return (4, 50, (
        "voltage", "current", "power", "apparent_power", "reactive_power",
        "power_factor", "frequency", "energy_import", "energy_export",
    ), (
        b"\x00\x00\x06\x02\x01\x02"  # voltage        0x0000 s32_sw x0.1   1  voltage
        b"\x00\x02\x06\x03\x03\x03"  # current        0x0002 s32_sw x0.001 3  current
        b"\x00\x04\x06\x02\x01\x01"  # power          0x0004 s32_sw x0.1   1  power
        b"\x00\x06\x06\x02\x01\x05"  # apparent_power 0x0006 s32_sw x0.1   1  apparent_power
        b"\x00\x08\x06\x02\x01\x06"  # reactive_power 0x0008 s32_sw x0.1   1  reactive_power
        b"\x00\x0e\x02\x03\x03\x07"  # power_factor   0x000E s16    x0.001 3  power_factor
        b"\x00\x0f\x02\x02\x01\x04"  # frequency      0x000F s16    x0.1   1  frequency
        b"\x00\x10\x06\x04\x00\x00"  # energy_import  0x0010 s32_sw x100   0  energy
        b"\x00\x20\x06\x04\x00\x00"  # energy_export  0x0020 s32_sw x100   0  energy
    ))


def setup(name):
    """The documented holding registers (FC 3 / FC 16) of a model that a config may set
    at start (meters[].setup): a tuple of (key, register, value type, allowed values),
    () for a model without any here.  Built only when asked (a meter with set-up).

    Eastron protocol sheets (holding registers are written with FC 16 only, float32
    unless "Hex").  Left out on purpose: the line settings (slave address, baud rate,
    parity: changing them from the gateway loses the meter), passwords, resets and
    SDM630 system_type (password protected)."""
    if name == "sdm630":
        return (
            ("demand_period", 0x0002, 0, (0, 5, 8, 10, 15, 20, 30, 60)),  # f32, minutes
            ("pulse1_width", 0x000C, 0, (60, 100, 200)),  # f32, ms
            # f32: 1 import, 2 import + export, 4 export, 5/6/8 the same for kvarh
            ("pulse1_energy", 0x0056, 0, (1, 2, 4, 5, 6, 8)),
        )
    if name == "sdm120":
        return (
            ("pulse1_width", 0x000C, 0, (60, 100, 200)),  # f32, ms
            ("pulse1_rate", 0xF910, 1, (0, 1, 2, 3)),  # u16: 0.001/0.01/0.1/1 kWh per pulse
            ("measurement_mode", 0xF920, 1, (1, 2, 3)),  # u16: total = imp / imp+exp / imp-exp
        )
    return ()


def model(name):
    """(function, max_regs, keys, table) of a model name (MODELS), else None."""
    if name == "sdm120":
        return _sdm120()
    if name == "sdm630":
        return _sdm630()
    if name == "sdm72d":
        return _sdm72d()
    if name == "em111":
        return _em111()
    return None


def register(m, i):
    """Register of key i of model m."""
    t = m[3]
    return (t[ENTRY * i] << 8) | t[ENTRY * i + 1]


def entries(m):
    """Model m as (key, register, type, scale, decimals, kind name) tuples."""
    t = m[3]
    out = []
    for i in range(len(m[2])):
        o = ENTRY * i
        out.append((m[2][i], (t[o] << 8) | t[o + 1], t[o + 2], SCALES[t[o + 3]], t[o + 4],
                    KINDS[t[o + 5]]))
    return out


def plan(m, gap=40):
    """The reads of a poll: a bytes object of 5 bytes per read (first register, 2
    bytes; register count; first and past-the-last key index).  Two keys share a read
    when the hole between them is at most ``gap`` registers and the read stays within
    the model's max_regs (holes are read and ignored)."""
    from protocols.modbus.values import width

    t = m[3]
    n = len(m[2])
    out = bytearray()
    i = 0
    while i < n:
        first = register(m, i)
        end = first + width(t[ENTRY * i + 2])
        j = i + 1
        while j < n:
            r = register(m, j)
            e = r + width(t[ENTRY * j + 2])
            if r - end > gap or e - first > m[1]:
                break
            end = e
            j += 1
        out += bytes((first >> 8, first & 0xFF, end - first, i, j))
        i = j
    return bytes(out)
