"""gw.outbox and gw.store on the MicroPython unix port, without network: order, reboot
survival, the flash-full policy, a message dropped while in flight, power-cut leftovers,
and the flash wear budget stated in firmware/README.md ("Flash wear budget")."""

import json

SCRIPT = r"""
import json, os, sys
import hal
from gw import outbox, store

root = sys.argv[1]
out = {}

def box(h, name, ram=1024, flash=64 * 1024):
    st = {}
    for k in outbox.STAT_KEYS:
        st[k] = 0
    return outbox.Outbox(h, h.data_dir + "/" + name, ram, flash, st), st

def state(i):  # a three-phase standard state is ~1.1 KB
    return b'{"seq": %d, "pad": "%s"}' % (i, b"x" * 1080)

def drain(ob):
    got = []
    while True:
        r = ob.peek()
        if r is None:
            return got
        got.append(json.loads(bytes(r[1]))["seq"])
        ob.pop(ob.first)

# 1. one hour offline at the default period_s (60 s): 60 states (66 KB: more than the
#    default flash_kb 64, which keeps ~58 minutes of three-phase states), 2 KB ring
h = hal.open("emu", {"root": root})
ob, st = box(h, "wear", flash=128 * 1024)
for i in range(60):
    ob.put(b"passerelle/t/linky/state", state(i))
out["writes_offline_hour"] = h.flash_writes
out["ram_peak"] = st["ram_peak"]
out["order"] = drain(ob) == list(range(60))
out["left_after_drain"] = os.listdir(h.data_dir + "/wear")
out["sent"] = st["sent"]

# 2. a reboot (flush before the reset, or what was spilled): nothing lost, in order
ob, st = box(h, "boot")
for i in range(10):
    ob.put(b"t/s", state(i))
ob.flush()
ob, st = box(h, "boot")
out["after_reboot"] = drain(ob)

# 3. flash full (a 5 KB data partition): the oldest go first, every loss counted
h2 = hal.open("emu", {"root": root + "/small", "flash_kb": 5})
ob, st = box(h2, "full")
for i in range(20):
    ob.put(b"t/s", state(i))
got = drain(ob)
out["full_got"] = got
out["full_dropped"] = st["dropped"]
out["full_spill_errors"] = st["spill_errors"]

# 4. the message in flight is dropped by the flash-full policy: pop(first) removes
#    nothing more and it does not count as lost
ob, st = box(h2, "inflight")
for i in range(4):
    ob.put(b"t/s", state(i))
r = ob.peek()
first = ob.first
seq0 = json.loads(bytes(r[1]))["seq"]
for i in range(4, 14):
    ob.put(b"t/s", state(i))
ob.pop(first)
rest = drain(ob)
out["inflight"] = [seq0, rest, st["dropped"], st["sent"]]

# 5. power-cut leftovers: a .tmp file is removed, a torn segment keeps its whole records
d = h.data_dir + "/cut"
store.makedirs(d)
with open(d + "/00000007.seg.tmp", "wb") as f:
    f.write(b"partial")
rec = b"\x01\x03\x00\x02t/s{}"
with open(d + "/00000003.seg", "wb") as f:
    f.write(rec + rec + rec[:5])
ob, st = box(h, "cut")
out["cut_files"] = sorted(os.listdir(d))
out["cut_waiting"] = len(ob)

# 6. store.write is atomic and counted; ENOSPC leaves the old file and no .tmp
store.write(root + "/small/data/x.json", b'{"a": 1}', h2)
try:
    store.write(root + "/small/data/x.json", b"y" * 8000, h2)
    out["enospc"] = False
except OSError as e:
    out["enospc"] = e.args[0] == 28
out["old_kept"] = store.read(root + "/small/data/x.json") == b'{"a": 1}'
out["no_tmp"] = not [n for n in os.listdir(root + "/small/data") if n.endswith(".tmp")]
print(json.dumps(out))
"""

# Flash wear budget (firmware/README.md): writes per hour at the default settings
OFFLINE_WRITES_PER_HOUR = 60  # outbox segments while the broker is unreachable
RAM_LIMIT = 16 * 1024


def test_outbox_on_micropython(run_micropython, tmp_path):
    script = tmp_path / "outbox_check.py"
    script.write_text(SCRIPT)
    r = run_micropython(script, args=[str(tmp_path)], heapsize="256K", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print("\nOUTBOX wear: %d flash writes for one hour offline at period_s 60 (budget %d); "
          "ring peak %d B; flash full: kept %d of 20, dropped %d"
          % (out["writes_offline_hour"], OFFLINE_WRITES_PER_HOUR, out["ram_peak"],
             len(out["full_got"]), out["full_dropped"]))
    assert out["order"] and out["sent"] == 60 and out["left_after_drain"] == []
    assert out["writes_offline_hour"] <= OFFLINE_WRITES_PER_HOUR
    assert out["ram_peak"] <= RAM_LIMIT
    assert out["after_reboot"] == list(range(10))
    got = out["full_got"]
    assert got == sorted(got) and got[-1] == 19 and got == list(range(20 - len(got), 20))
    assert out["full_dropped"] == 20 - len(got) and out["full_spill_errors"] >= 1
    seq0, rest, dropped, sent = out["inflight"]
    assert seq0 == 0 and rest == sorted(rest) and rest[-1] == 13
    assert dropped == 13 - len(rest)  # seq 0 was delivered: not counted as lost
    assert out["cut_files"] == ["00000003.seg"] and out["cut_waiting"] == 2
    assert out["enospc"] and out["old_kept"] and out["no_tmp"]
