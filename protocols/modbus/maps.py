"""Register maps of DIN-rail energy meters (data only).

``model(name)`` -> ``(function, max_regs, entries)`` or None; only the model asked
for is built (a gateway holds the maps of the meters it has, not all of them).
``function`` is the read function (4 = input registers), ``max_regs`` the most
registers the meter returns in one read; each entry is

    (key, register, type, scale, decimals, kind)

``type`` a protocols.modbus.values type, ``scale`` the factor to the published
unit, ``decimals`` the rounding (0: an int), ``kind`` one of KINDS, which gives
the unit and the Home Assistant classes (``hints(kind)``).  Energies are published
as integer Wh (HA energy dashboard: device_class energy, state_class
total_increasing); power in W, voltage V, current A, frequency Hz.

Sources: Eastron SDM120 / SDM630 / SDM72D-M Modbus protocol sheets (input
registers, IEEE 754 float32, high word first; energies in kWh), Carlo Gavazzi
EM111 communication protocol (INT32 low word first, fixed-point weights).
"""

from protocols.modbus.values import F32, S16, S32_SW

# kind -> (unit, device_class, state_class); a tuple, looked up by hints()
KINDS = (
    ("energy", "Wh", "energy", "total_increasing"),
    ("power", "W", "power", "measurement"),
    ("voltage", "V", "voltage", "measurement"),
    ("current", "A", "current", "measurement"),
    ("frequency", "Hz", "frequency", "measurement"),
    ("apparent_power", "VA", "apparent_power", "measurement"),
    ("reactive_power", "var", "reactive_power", "measurement"),
    ("power_factor", None, "power_factor", "measurement"),
)

MODELS = ("sdm120", "sdm630", "sdm72d", "em111")


def hints(kind):
    """(unit, device_class, state_class) of a kind, or None."""
    for k in KINDS:
        if k[0] == kind:
            return k[1:]
    return None


def _sdm120():
    return (4, 80, (
        ("voltage", 0x0000, F32, 1, 1, "voltage"),
        ("current", 0x0006, F32, 1, 3, "current"),
        ("power", 0x000C, F32, 1, 1, "power"),
        ("apparent_power", 0x0012, F32, 1, 1, "apparent_power"),
        ("reactive_power", 0x0018, F32, 1, 1, "reactive_power"),
        ("power_factor", 0x001E, F32, 1, 3, "power_factor"),
        ("frequency", 0x0046, F32, 1, 2, "frequency"),
        ("energy_import", 0x0048, F32, 1000, 0, "energy"),
        ("energy_export", 0x004A, F32, 1000, 0, "energy"),
        ("energy_total", 0x0156, F32, 1000, 0, "energy"),
    ))


def _sdm630():
    return (4, 80, (
        ("voltage_l1", 0x0000, F32, 1, 1, "voltage"),
        ("voltage_l2", 0x0002, F32, 1, 1, "voltage"),
        ("voltage_l3", 0x0004, F32, 1, 1, "voltage"),
        ("current_l1", 0x0006, F32, 1, 3, "current"),
        ("current_l2", 0x0008, F32, 1, 3, "current"),
        ("current_l3", 0x000A, F32, 1, 3, "current"),
        ("power_l1", 0x000C, F32, 1, 1, "power"),
        ("power_l2", 0x000E, F32, 1, 1, "power"),
        ("power_l3", 0x0010, F32, 1, 1, "power"),
        ("power", 0x0034, F32, 1, 1, "power"),
        ("apparent_power", 0x0038, F32, 1, 1, "apparent_power"),
        ("reactive_power", 0x003C, F32, 1, 1, "reactive_power"),
        ("power_factor", 0x003E, F32, 1, 3, "power_factor"),
        ("frequency", 0x0046, F32, 1, 2, "frequency"),
        ("energy_import", 0x0048, F32, 1000, 0, "energy"),
        ("energy_export", 0x004A, F32, 1000, 0, "energy"),
        ("current_n", 0x00E0, F32, 1, 3, "current"),
        ("energy_total", 0x0156, F32, 1000, 0, "energy"),
    ))


def _sdm72d():
    return (4, 80, (
        ("voltage_l1", 0x0000, F32, 1, 1, "voltage"),
        ("voltage_l2", 0x0002, F32, 1, 1, "voltage"),
        ("voltage_l3", 0x0004, F32, 1, 1, "voltage"),
        ("current_l1", 0x0006, F32, 1, 3, "current"),
        ("current_l2", 0x0008, F32, 1, 3, "current"),
        ("current_l3", 0x000A, F32, 1, 3, "current"),
        ("power", 0x0034, F32, 1, 1, "power"),
        ("frequency", 0x0046, F32, 1, 2, "frequency"),
        ("energy_import", 0x0048, F32, 1000, 0, "energy"),
        ("energy_export", 0x004A, F32, 1000, 0, "energy"),
        ("energy_total", 0x0156, F32, 1000, 0, "energy"),
    ))


def _em111():
    # INT32 low word first; weights: V x10, A x1000, W/VA/var x10, PF x1000, Hz x10,
    # kWh x10 (so Wh = raw x 100)
    return (4, 50, (
        ("voltage", 0x0000, S32_SW, 0.1, 1, "voltage"),
        ("current", 0x0002, S32_SW, 0.001, 3, "current"),
        ("power", 0x0004, S32_SW, 0.1, 1, "power"),
        ("apparent_power", 0x0006, S32_SW, 0.1, 1, "apparent_power"),
        ("reactive_power", 0x0008, S32_SW, 0.1, 1, "reactive_power"),
        ("power_factor", 0x000E, S16, 0.001, 3, "power_factor"),
        ("frequency", 0x000F, S16, 0.1, 1, "frequency"),
        ("energy_import", 0x0010, S32_SW, 100, 0, "energy"),
        ("energy_export", 0x0020, S32_SW, 100, 0, "energy"),
    ))


def model(name):
    """(function, max_regs, entries) of a model name (MODELS), else None."""
    if name == "sdm120":
        return _sdm120()
    if name == "sdm630":
        return _sdm630()
    if name == "sdm72d":
        return _sdm72d()
    if name == "em111":
        return _em111()
    return None


def plan(entries, max_regs, gap=40):
    """Group entries into reads: a list of (first register, count, entries of
    the read), registers sorted; two entries share a read when the hole between
    them is at most ``gap`` registers and the read stays within ``max_regs``."""
    from protocols.modbus.values import width

    order = sorted(entries, key=lambda e: e[1])
    reads = []
    cur = None
    for e in order:
        end = e[1] + width(e[2])
        if cur is not None and e[1] - (cur[0] + cur[1]) <= gap and end - cur[0] <= max_regs:
            cur[1] = end - cur[0]
            cur[2].append(e)
            continue
        cur = [e[1], end - e[1], [e]]
        reads.append(cur)
    return [(r[0], r[1], tuple(r[2])) for r in reads]
