"""Shared by the Modbus codec tests (CPython) and the MicroPython runner script."""


def fields(r):
    """A decoded Response as the tuple the strategies expect."""
    regs = tuple(r.reg(i) for i in range(r.count)) if r.function in (3, 4) and not r.exception \
        else ()
    return (r.address, r.function, r.exception, r.count, r.register, r.value, regs)


def decode_all(d, data, cuts=(), silence=False):
    """Feed data to decoder d in chunks cut at ``cuts`` -> list of fields; with
    ``silence``, the line then goes quiet (what a frame cut short still hides)."""
    out = []
    bounds = [0] + list(cuts) + [len(data)]
    for i in range(len(bounds) - 1):
        chunk = data[bounds[i]:bounds[i + 1]]
        pos = 0
        while True:
            used, r = d.decode(chunk, pos, len(chunk))
            pos += used
            if r is not None:
                out.append(fields(r))
            elif pos >= len(chunk):
                break
    while silence:
        r = d.silence()
        if r is None:
            break
        out.append(fields(r))
    return out
