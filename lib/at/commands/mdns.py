# AT+MDNS (TCP-IP_AT_Commands.rst): mode 1 starts a responder for one host
# name and one service, mode 0 stops it with a goodbye, mode 2 queries the
# network and prints each result as a "+MDNS:<len>," block. The protocol is
# at/mdns.py, imported on first use: a board that never runs AT+MDNS keeps
# its heap.
from at import parse
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, PARA_NUM, PARA_LENGTH, E_MDNS_NO_RESULT
from at.commands import row

LABEL = 63  # a DNS label's limit (the spec's 64-byte buffers hold 63 and a NUL)
TXT_MAX = 20  # <txt_number>: [1,20]

_responder = None
_queries = 0  # AT+MDNS=2 queries running (at/mdns.py stays while any does)


def _label(a, i, default=parse.REQUIRED):
    """A name used as one DNS label: 1-63 bytes, no dot."""
    v = parse.text(a, i, LABEL, default, minlen=1)
    if v is not None and "." in v:
        raise ATError(code(PARA_INVALID, i))
    return v


def _start(eng, a):
    global _responder
    parse.count(a, 4, 7 + 2 * TXT_MAX)
    host = _label(a, 1)
    stype = _label(a, 2)
    port = parse.num(a, 3, 0, 65535)
    instance = parse.text(a, 4, LABEL, None) or host  # instances may hold dots (RFC 6763 4.3)
    proto = "_tcp" if len(a) <= 5 or a[5] in (None, "") else _label(a, 5)
    n = parse.num(a, 6, 1, TXT_MAX, 0)
    if len(a) != 7 + 2 * n if n else len(a) > 7:  # exactly <txt_number> pairs
        raise ATError(code(PARA_NUM, ((7 + 2 * n) << 8) | len(a)))
    txt = []
    for i in range(7, 7 + 2 * n, 2):
        k = parse.text(a, i, 255, minlen=1)
        v = parse.text(a, i + 1, 255)
        if "=" in k:
            raise ATError(code(PARA_INVALID, i))
        if len(k.encode()) + 1 + len(v.encode()) > 255:  # one TXT string
            raise ATError(code(PARA_LENGTH, i + 1))
        txt.append((k, v))
    if _responder is not None:
        raise fail(EXEC_FAIL)  # already on: AT+MDNS=0 first
    from at import mdns
    _responder = mdns.Responder(eng, host, stype, port, instance, proto, txt)
    _responder.start()  # announces now, or once the station has an address


def _stop(eng, a):
    global _responder
    parse.count(a, 1, 1)
    if _responder is not None:
        _responder.stop()
        _responder = None
        _drop_if_idle()


def _drop_if_idle():
    """at/mdns.py (some 11 KB of heap as .mpy) goes once neither the responder nor
    a query uses it, until the next AT+MDNS."""
    if _responder is None and not _queries:
        from at import commands

        commands.drop("at.mdns")


def _name(a, i, suffix=None):
    """A query name as one label (less a ".local" suffix for a host name);
    longer ones are cut, as the spec cuts them at its buffer size."""
    b = parse.text(a, i, 256, minlen=1).encode()
    if suffix and b.lower().endswith(suffix):
        b = b[:-len(suffix)]
        if not b:
            raise ATError(code(PARA_LENGTH, i))
    return b[:LABEL]


def _query(eng, a):
    parse.count(a, 2, 7)
    kind = parse.num(a, 1, 0, 6)
    n = 2 if kind == 0 else (3 if kind <= 3 else 1)
    parse.count(a, 2 + n, 4 + n)
    # [instance,] service, proto + local; or host + local
    name = [_name(a, 2 + i, b".local" if kind >= 4 else None) for i in range(n)] + [b"local"]
    timeout = parse.num(a, 2 + n, 1000, 180000, 5000)
    max_results = parse.num(a, 3 + n, 1, 255, 1)
    if not eng.wifi.has_ip():
        raise fail(EXEC_FAIL)
    return _run_query(eng, kind, name, timeout, max_results)


def _run_query(eng, kind, name, timeout, max_results):
    global _queries
    from at import mdns
    _queries += 1
    try:
        found = yield from mdns.query(eng, kind, name, timeout, max_results, bool(eng.wifi.ip6()))
    finally:
        _queries -= 1
        _drop_if_idle()
    if not found:
        raise fail(EXEC_FAIL, E_MDNS_NO_RESULT)
    for b in found:
        eng.write("+MDNS:%d,\r\n%s" % (len(b.encode()), b))


def s_mdns(eng, a):
    mode = parse.num(a, 0, 0, 2)
    if mode == 1:
        return _start(eng, a)
    if mode == 2:
        return _query(eng, a)
    return _stop(eng, a)


COMMANDS = [
    row("+MDNS", set=s_mdns),
]
