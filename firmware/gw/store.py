# gw/store.py - atomic, power-cut safe files on the board's flash (used by every part
# of the firmware that persists something: outbox segments, counters, config updates).
# MIT license.
#
#   write(path, data, hal=None)   write path.tmp, flush (+ fsync where the platform has
#                                 it), rename over path: after a power cut at any instant
#                                 the file holds the old or the new content, never a mix
#                                 (littlefs on the ESP32 and POSIX rename are atomic).
#                                 ``hal``: hal.fs_check(path, n) is asked first and may
#                                 raise OSError(ENOSPC) (flash full, quota of the
#                                 emulated board); every successful write is counted in
#                                 hal.flash_writes (the wear budget, firmware/README.md).
#   read(path) -> bytearray | None  None when absent or unreadable
#   remove(path), listdir(path), makedirs(path)  never raise for "already so"
#   clean(dir)                    removes the *.tmp left by a write cut short
#
# No module-level mutable state; nothing happens at import.
import os

ENOSPC = 28  # errno.ENOSPC: MicroPython's errno module does not name it


def _sync(f):
    f.flush()
    sync = getattr(os, "fsync", None)  # CPython; MicroPython flushes on close
    if sync is not None:
        try:
            sync(f.fileno())
        except (AttributeError, OSError):
            pass


def write(path, data, hal=None):
    """Atomically replace ``path`` by ``data`` (bytes-like, or a tuple of them written
    one after the other).  Raises OSError (e.g. ENOSPC); then ``path`` is unchanged and
    no .tmp file is left behind."""
    parts = data if isinstance(data, tuple) else (data,)
    if hal is not None:
        n = 0
        for d in parts:
            n += len(d)
        hal.fs_check(path, n)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            for d in parts:
                n = f.write(d)
                if n is not None and n != len(d):
                    raise OSError(ENOSPC)
            _sync(f)
        os.rename(tmp, path)
    except OSError:
        remove(tmp)
        raise
    if hal is not None:
        hal.flash_writes += 1


def read(path):
    """The file's content as one bytearray of its size (a single allocation)."""
    try:
        buf = bytearray(os.stat(path)[6])
        with open(path, "rb") as f:
            n = f.readinto(buf)
        return buf if n == len(buf) else buf[:n or 0]
    except OSError:
        return None


def remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def makedirs(path):
    """mkdir -p (relative or absolute, "/" separated)."""
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if (not cur or cur.endswith("/")) else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


def size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def clean(path):
    """Remove the temporary files a cut-short write() left in directory ``path``."""
    for name in listdir(path):
        if name.endswith(".tmp"):
            remove(path + "/" + name)
