# AT+SYSMFG (Basic_AT_Commands.rst): read, write and erase the manufacturing
# namespaces (certificates, keys, CAs) kept as files by at/mfg.py.
from at import parse, mfg
from at.engine import DATA_MAX
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID
from at.commands import row

# NVS integer types: (lowest, highest)
_INT = {1: (0, 0xFF), 2: (-0x80, 0x7F), 3: (0, 0xFFFF), 4: (-0x8000, 0x7FFF),
        5: (0, 0xFFFFFFFF), 6: (-0x80000000, 0x7FFFFFFF)}


def q_sysmfg(eng):
    for ns in mfg.NAMESPACES:
        eng.reply('+SYSMFG:"%s"' % ns)


def _ns(a, i):
    ns = parse.text(a, i, 15)
    if ns not in mfg.NAMESPACES:
        raise ATError(code(PARA_INVALID, i))
    return ns


def s_sysmfg(eng, a):
    op = parse.num(a, 0, 0, 2)
    if op == 0:
        parse.count(a, 2, 3)
        ns = _ns(a, 1)
        key = parse.text(a, 2, 15, None)
        if not mfg.erase(ns, key) and key is not None:
            raise fail(EXEC_FAIL)  # no such key
        return
    if op == 1:
        parse.count(a, 1, 5)
        if len(a) == 1:
            return q_sysmfg(eng)
        ns = _ns(a, 1)
        key = parse.text(a, 2, 15, None)
        if key is None:
            for k in mfg.keys(ns):
                eng.reply('+SYSMFG:"%s","%s",%d' % (ns, k, mfg.type_of(ns, k)))
            return
        value = mfg.read(ns, key)
        if value is None:
            raise fail(EXEC_FAIL)
        typ = mfg.type_of(ns, key)
        if typ in _INT:
            eng.reply('+SYSMFG:"%s","%s",%d,%d,%s' % (ns, key, typ, len(value), value.decode()))
            return
        off = parse.num(a, 3, 0, len(value), 0)
        n = parse.num(a, 4, 1, len(value) - off if len(value) > off else 1, len(value) - off)
        if off + n > len(value):
            raise ATError(code(PARA_INVALID, 4))
        eng.write('+SYSMFG:"%s","%s",%d,%d,' % (ns, key, typ, n))
        eng.write(memoryview(value)[off:off + n])
        eng.write(b"\r\n")
        return
    # op == 2: write
    parse.count(a, 5, 5)
    ns = _ns(a, 1)
    key = parse.text(a, 2, 15, minlen=1)
    typ = parse.num(a, 3, 1, 8)
    if typ in _INT:
        lo, hi = _INT[typ]
        mfg.write(ns, key, typ, str(parse.num(a, 4, lo, hi)).encode())
        return
    n = parse.num(a, 4, 1, DATA_MAX)
    return _write(eng, ns, key, typ, n)


def _write(eng, ns, key, typ, n):
    data = yield eng.data(n)
    mfg.write(ns, key, typ, bytes(data))


COMMANDS = [
    row("+SYSMFG", query=q_sysmfg, set=s_sysmfg),
]
