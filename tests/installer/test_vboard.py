"""The virtual board driven by the real mpremote (1.29.0), unmodified."""

import hashlib
import time

import serial

from passerelle.vboard import VBoard


def test_exec_eval_run(mpremote, tmp_path):
    assert mpremote("exec", "print(6 * 7)").stdout.strip() == "42"
    assert mpremote("eval", "[1, 'a', b'\\x00']").stdout.strip() == "[1, 'a', b'\\x00']"
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('run', sys.platform, sys.path)\n")
    out = mpremote("run", str(script)).stdout
    assert "run linux ['', '.frozen', '/lib']" in out


def test_fs_commands_work_on_the_board_root(vboard, mpremote, tmp_path):
    data = bytes(range(256)) * 20 + b"\r\n\n"
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    mpremote("fs", "mkdir", ":lib", "+", "fs", "cp", str(src), ":lib/blob.bin")
    assert (vboard.root / "lib" / "blob.bin").read_bytes() == data      # the root IS the flash
    assert "lib/" in mpremote("fs", "ls").stdout
    assert "%12d blob.bin" % len(data) in mpremote("fs", "ls", ":lib").stdout
    out = mpremote("fs", "sha256sum", ":lib/blob.bin").stdout
    assert hashlib.sha256(data).hexdigest() in out
    back = tmp_path / "back.bin"
    mpremote("fs", "cp", ":lib/blob.bin", str(back))
    assert back.read_bytes() == data
    (vboard.root / "hello.txt").write_text("bonjour\n")
    assert mpremote("fs", "cat", ":hello.txt").stdout.replace("\r\n", "\n") == "bonjour\n"
    mpremote("fs", "rm", ":lib/blob.bin", "+", "fs", "rmdir", ":lib")
    assert not (vboard.root / "lib").exists()
    # the board cannot see outside its root
    assert mpremote("eval", "__import__('os').listdir('/')").stdout.strip() == "['hello.txt']"


def test_soft_reset_restarts_the_interpreter(vboard, mpremote):
    (vboard.root / "boot.py").write_text("print('boot.py ran')\n")
    r = mpremote("exec", "x = 1", "+", "soft-reset", "+", "exec", "print('x' in globals())")
    assert r.stdout.split()[-1] == "False"
    assert vboard.output.count(b"MPY: soft reboot\r\n") == 2    # connect + soft-reset
    assert b"MPY: soft reboot\r\nboot.py ran\r\n" in vboard.output  # boot.py, not main.py


def test_machine_reset_runs_boot_then_main(vboard, mpremote):
    (vboard.root / "boot.py").write_text("print('BOOT')\n")
    (vboard.root / "main.py").write_text("print('MAIN', __name__)\n")
    start = len(vboard.output)
    mpremote("reset")
    assert vboard.wait_output(b"MAIN __main__", timeout=10, start=start)
    tail = bytes(vboard.output[start:])
    assert tail.index(b"BOOT") < tail.index(b"MAIN")
    assert [kind for _, kind, _ in vboard.resets][-1] == "hard"
    # hal.unix's watchdog (75) and reset (76) exit codes are board resets too
    start = len(vboard.output)
    mpremote("exec", "--no-follow", "import sys; sys.exit(75)")
    assert vboard.wait_output(b"MAIN __main__", timeout=10, start=start)
    assert vboard.resets[-1][1:] == ("hard", 75)


def test_ctrl_c_interrupts_running_code(vboard):
    with serial.Serial(vboard.port, 115200, timeout=5) as s:
        s.write(b"\r\x03\r\x01")
        assert b"raw REPL; CTRL-B to exit\r\n>" in s.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        s.write(b"while True:\n pass\n\x04")
        assert s.read(2) == b"OK"
        time.sleep(0.3)
        s.write(b"\x03")
        out = s.read_until(b"\x04>")
        assert b"KeyboardInterrupt" in out
        s.write(b"print('alive')\x04")               # same interpreter, still usable
        assert b"alive" in s.read_until(b"\x04>")


def test_a_busy_main_py_is_interrupted_by_mpremote(tmp_path, mpremote, vboard):
    (vboard.root / "main.py").write_text("import time\nprint('busy')\nwhile True:\n time.sleep_ms(10)\n")
    start = len(vboard.output)
    mpremote("reset")
    assert vboard.wait_output(b"busy", timeout=10, start=start)
    assert mpremote("eval", "1 + 1").stdout.strip() == "2"


def test_emu_options_reach_the_firmware_env(tmp_path):
    with VBoard(tmp_path / "r", tmp_path / "p", emu={"uart": {"1": 4242}}) as vb:
        with serial.Serial(vb.port, 115200, timeout=5) as s:
            s.write(b"\r\x03\r\x01")
            s.read_until(b"raw REPL; CTRL-B to exit\r\n>")
            s.write(b"import os\nprint(os.getenv('PASSERELLE_EMU'))\x04")
            assert b'{"uart": {"1": 4242}}' in s.read_until(b"\x04>")
    assert not (tmp_path / "p").exists()      # the link is removed on stop



def test_interactive_repl(vboard):
    """`mpremote repl` needs a terminal: run it on a PTY, type a line, leave with Ctrl-]."""
    import os
    import pty
    import select
    import subprocess
    import sys
    from pathlib import Path

    mp = str(Path(sys.executable).parent / "mpremote")
    master, slave = pty.openpty()
    proc = subprocess.Popen([mp, "connect", str(vboard.port), "repl"], stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(needle, timeout=10):
        nonlocal seen
        end = time.monotonic() + timeout
        while needle not in seen and time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return needle in seen

    try:
        assert read_until(b"Connected to MicroPython"), seen
        os.write(master, b"\r")
        assert read_until(b">>> "), seen
        os.write(master, b"print(6 * 7)\r")
        assert read_until(b"42\r\n"), seen
        os.write(master, b"\x1d")                      # Ctrl-] leaves mpremote
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_output_nobody_read_does_not_pile_up(vboard, mpremote):
    (vboard.root / "main.py").write_text(
        "import time\nfor i in range(3000):\n print('log line %05d ' % i + 'x' * 60)\n"
        "while True:\n time.sleep_ms(50)\n")
    start = len(vboard.output)
    mpremote("reset")
    assert vboard.wait_output(b"log line 02999", timeout=20, start=start)
    time.sleep(1.5)
    t0 = time.monotonic()
    assert mpremote("eval", "1 + 1").stdout.strip() == "2"
    assert time.monotonic() - t0 < 5


def test_big_output_to_a_reader_is_complete(vboard, mpremote):
    text = "".join("line %06d %s\n" % (i, "y" * 50) for i in range(1500))     # ~95 KB: more than the pty queue
    (vboard.root / "big.txt").write_text(text)
    out = mpremote("fs", "cat", ":big.txt", timeout=60).stdout
    assert out.replace("\r\n", "\n") == text
