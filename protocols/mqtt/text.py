# protocols/mqtt/text.py  MQTT string rules: strict UTF-8 (1.5.3) and topic filters (4.7.1).
# SPDX-License-Identifier: MIT
#
# MicroPython's str(b, "utf-8") accepts overlong forms, surrogates and code points
# above U+10FFFF; MQTT 3.1.1 (MQTT-1.5.3-1) says those are malformed.  So non-ASCII
# strings are checked here, byte by byte but without allocating.


def valid_utf8(buf, a, b):
    """True if buf[a:b] is well-formed UTF-8 (RFC 3629: no overlong forms, no
    surrogates, nothing above U+10FFFF)."""
    i = a
    while i < b:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif c == 0xE0:
            n = 2
            lo = 0xA0
        elif 0xE1 <= c <= 0xEF:
            n = 2
            if c == 0xED:
                hi = 0x9F          # U+D800..U+DFFF are surrogates
        elif c == 0xF0:
            n = 3
            lo = 0x90
        elif 0xF1 <= c <= 0xF3:
            n = 3
        elif c == 0xF4:
            n = 3
            hi = 0x8F
        else:
            return False
        if i + n >= b:
            return False
        d = buf[i + 1]
        if d < lo or d > hi:
            return False
        j = i + 2
        i += n + 1
        while j < i:
            if buf[j] & 0xC0 != 0x80:
                return False
            j += 1
    return True


def filter_ok(f):
    """True if ``f`` (str) is a valid topic filter: not empty, '#' last and alone in
    its level, '+' alone in its level."""
    n = len(f)
    if not n:
        return False
    i = f.find("#")
    if i >= 0 and (i != n - 1 or (i and f[i - 1] != "/")):
        return False
    i = f.find("+")
    while i >= 0:
        if (i and f[i - 1] != "/") or (i + 1 < n and f[i + 1] != "/"):
            return False
        i = f.find("+", i + 1)
    return True
