# Parse one AT command line (bytes, terminator removed) into name, type and
# parameters, following the syntax in AT_Command_Set_index.rst. Pure: no I/O,
# imports nothing platform-specific, so it can be fuzzed under CPython.
from at.errors import ATError, code, NO_AT, PARA_TYPE, PARA_PARSE, PARA_NUM, PARA_INVALID, PARA_LENGTH, UNSUPPORTED

TEST = 1
QUERY = 2
SET = 3
EXEC = 4

REQUIRED = object()  # sentinel default: the parameter may not be omitted


def split(line):
    """Return (name, kind, rest) for b"AT+NAME=..."; name keeps its "+" ("+CIPMUX", "E0", "")."""
    if line[:2] != b"AT":
        raise ATError(code(NO_AT))
    n = len(line)
    e = line.find(b"=", 2)
    q = line.find(b"?", 2)
    if e < 0 and q < 0:
        return _name(line[2:]), EXEC, None
    if e < 0 or (0 <= q < e):
        if q != n - 1:
            raise ATError(code(PARA_PARSE))
        return _name(line[2:q]), QUERY, None
    rest = line[e + 1:]
    if rest == b"?":
        return _name(line[2:e]), TEST, None
    return _name(line[2:e]), SET, rest


def _name(b):
    try:
        return b.decode()
    except Exception:  # UnicodeError; MicroPython and CPython differ in class
        # The line starts with "AT": no command has such a name.
        raise ATError(code(UNSUPPORTED))


def args(s):
    """Split the text after "=" into ints, strs and None (omitted)."""
    out: list = []
    i = 0
    n = len(s)
    while True:
        idx = len(out)
        if i < n and s[i] == 34:  # '"'
            buf = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ATError(code(PARA_PARSE, idx))
                c = s[i]
                if c == 92:  # backslash: keep the next byte as is
                    i += 1
                    if i >= n:
                        raise ATError(code(PARA_PARSE, idx))
                    buf.append(s[i])
                elif c == 34:
                    break
                else:
                    buf.append(c)
                i += 1
            i += 1
            if i < n and s[i] != 44:
                raise ATError(code(PARA_PARSE, idx))
            try:
                out.append(buf.decode())
            except Exception:
                raise ATError(code(PARA_PARSE, idx))
        else:
            j = s.find(b",", i)
            if j < 0:
                j = n
            tok = s[i:j]
            if not tok:
                out.append(None)
            else:
                out.append(_int(tok, idx))
            i = j
        if i >= n:
            return out
        i += 1  # the comma


_HEX = b"0123456789abcdefABCDEF"


def _int(tok, idx):
    neg = tok[0] == 45  # '-'
    digits = tok[1:] if neg or tok[0] == 43 else tok  # a leading '+' too ([+|-][hh]mm)
    base = 10
    if digits[:2] in (b"0x", b"0X"):
        # Hexadecimal, as Basic_AT_Commands.rst shows for AT+SYSRAM=0x1800.
        digits = digits[2:]
        base = 16
    if not digits or len(digits) > 10:
        raise ATError(code(PARA_TYPE, idx))
    ok = _HEX if base == 16 else _HEX[:10]
    for c in digits:  # at most 10 bytes
        if c not in ok:
            raise ATError(code(PARA_TYPE, idx))
    v = int(digits, base)
    return -v if neg else v


# --- helpers handlers use to read their parameters --------------------------------

def count(a, lo, hi):
    """Check that between lo and hi parameters were given."""
    if not lo <= len(a) <= hi:
        raise ATError(code(PARA_NUM, (hi << 8) | len(a)))


def num(a, i, lo, hi, default=REQUIRED):
    v = a[i] if i < len(a) else None
    if v is None:
        if default is REQUIRED:
            raise ATError(code(PARA_NUM, ((i + 1) << 8) | len(a)))
        return default
    if not isinstance(v, int):
        raise ATError(code(PARA_TYPE, i))
    if not lo <= v <= hi:
        raise ATError(code(PARA_INVALID, i))
    return v


def text(a, i, maxlen, default=REQUIRED, minlen=0):
    v = a[i] if i < len(a) else None
    if v is None:
        if default is REQUIRED:
            raise ATError(code(PARA_NUM, ((i + 1) << 8) | len(a)))
        return default
    if not isinstance(v, str):
        raise ATError(code(PARA_TYPE, i))
    # Limits are in bytes, as ESP-AT counts them ("MAX: 64-byte ASCII"), not characters.
    n = len(v)
    if n > maxlen:
        raise ATError(code(PARA_LENGTH, i))
    if n * 4 > maxlen or n < minlen:  # else the UTF-8 length is surely within bounds
        n = len(v.encode())
    if not minlen <= n <= maxlen:
        raise ATError(code(PARA_LENGTH, i))
    return v


def choice(a, i, values, default=REQUIRED):
    """A string parameter that must be one of `values` (e.g. "TCP", "UDP")."""
    v = text(a, i, 16, default)
    if v is not default and v not in values:
        raise ATError(code(PARA_INVALID, i))
    return v
