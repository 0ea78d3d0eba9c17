# SSL client settings (TCP-IP_AT_Commands.rst): AT+CIPSSLCCONF, AT+CIPSSLCCIPHER,
# AT+CIPSSLCCN, AT+CIPSSLCSNI, AT+CIPSSLCALPN, AT+CIPSSLCPSK, AT+CIPSSLCPSKHEX,
# and the deprecated AT+CIPSSLSIZE. The TLS contexts are built in at/sslconf.py.
from at import parse, sslconf, caps
from at.errors import ATError, code, fail, not_here, EXEC_FAIL, PARA_INVALID, E_NOT_HERE
from at.net import MAX_LINKS
from at.commands import row

_DEFAULT = [0, 0, 0]  # auth_mode, pki_number, ca_number


def init(eng):
    sslconf.settings(eng)


def _conf(eng):
    c = eng.cfg.get("sslcconf")
    if not c:
        c = [list(_DEFAULT) for _ in range(MAX_LINKS)]
    return c


def _ids(eng):
    return range(MAX_LINKS) if eng.net.mux else (0,)


def _target(eng, a):
    """(link ids to set, index of the first value): "max" (5) means every link."""
    if not eng.net.mux:
        return (0,), 0
    lid = parse.num(a, 0, 0, MAX_LINKS)
    return (range(MAX_LINKS) if lid == MAX_LINKS else (lid,)), 1


def q_cipsslcconf(eng):
    c = _conf(eng)
    for lid in _ids(eng):
        eng.reply("+CIPSSLCCONF:%d,%d,%d,%d" % ((lid,) + tuple(c[lid])))


def s_cipsslcconf(eng, a):
    ids, i = _target(eng, a)
    parse.count(a, i + 1, i + 3)
    auth = parse.num(a, i, 0, 3)
    pki = parse.num(a, i + 1, 0, 255, 0)
    ca = parse.num(a, i + 2, 0, 255, 0)
    c = _conf(eng)
    for k in ids:
        c[k] = [auth, pki, ca]
    eng.cfg.set("sslcconf", c, True)  # the spec: always saved


def _names(attr, tag):
    def q(eng):
        vals = getattr(eng.ssl, attr)
        for lid in _ids(eng):
            eng.reply('%s:%d,"%s"' % (tag, lid, vals[lid]))

    def s(eng, a):
        ids, i = _target(eng, a)
        parse.count(a, i + 1, i + 1)
        v = parse.text(a, i, 64)
        vals = getattr(eng.ssl, attr)
        for k in ids:
            vals[k] = v

    return q, s


q_cipsslccn, s_cipsslccn = _names("cn", "+CIPSSLCCN")
q_cipsslcsni, s_cipsslcsni = _names("sni", "+CIPSSLCSNI")


def q_cipsslcalpn(eng):
    for lid in _ids(eng):
        eng.reply("+CIPSSLCALPN:%d" % lid)


def s_cipsslcalpn(eng, a):
    ids, i = _target(eng, a)
    n = parse.num(a, i, 0, 5)
    parse.count(a, i + 1 + n, i + 1 + n)
    for k in range(n):
        parse.text(a, i + 1 + k, 64, minlen=1)
    if n:
        # MicroPython's tls module cannot put ALPN in the ClientHello (and the
        # ESP32 build has it compiled out): refuse rather than pretend.
        raise fail(EXEC_FAIL, E_NOT_HERE)


def _psk_query(hexform):
    def q(eng):
        tag = b"+CIPSSLCPSKHEX" if hexform else b"+CIPSSLCPSK"
        for lid in _ids(eng):
            p = eng.ssl.psk[lid]
            key = (p[0].hex().encode() if hexform else p[0]) if p else b""  # bytes as they are
            eng.write(b'%s:%d,"%s","%s"\r\n' % (tag, lid, key, p[1].encode() if p else b""))
    return q


def _psk_set(hexform):
    def s(eng, a):
        ids, i = _target(eng, a)
        parse.count(a, i + 2, i + 2)
        key = parse.text(a, i, 64 if hexform else 32)
        hint = parse.text(a, i + 1, 32)
        if hexform:
            try:
                if len(key) % 2:
                    raise ValueError
                key = bytes.fromhex(key)
            except ValueError:
                raise ATError(code(PARA_INVALID, i))
        else:
            key = key.encode()
        if key and not caps.psk():
            raise not_here()  # no TLS-PSK in this MicroPython (README "Supported targets")
        for k in ids:
            eng.ssl.psk[k] = (key, hint) if key else None
    return s


def q_cipsslccipher(eng):
    for idx, (num, name) in enumerate(sslconf.supported()):
        eng.reply("+CIPSSLCCIPHER:%d,0x%04X" % (idx, num))


def s_cipsslccipher(eng, a):
    ids, i = _target(eng, a)
    n = parse.num(a, i, 0, 32)
    parse.count(a, i + 1 + n, i + 1 + n)
    have = [num for num, name in sslconf.supported()]
    suites = []
    for k in range(n):
        v = parse.num(a, i + 1 + k, 0, 0xFFFF)
        if v not in have:
            raise ATError(code(PARA_INVALID, i + 1 + k))  # the runtime lacks this suite
        suites.append(v)
    for k in ids:
        eng.ssl.ciphers[k] = suites or None


COMMANDS = [
    row("+CIPSSLCCONF", query=q_cipsslcconf, set=s_cipsslcconf),
    row("+CIPSSLCCIPHER", query=q_cipsslccipher, set=s_cipsslccipher),
    row("+CIPSSLCCN", query=q_cipsslccn, set=s_cipsslccn),
    row("+CIPSSLCSNI", query=q_cipsslcsni, set=s_cipsslcsni),
    row("+CIPSSLCALPN", query=q_cipsslcalpn, set=s_cipsslcalpn),
    row("+CIPSSLCPSK", query=_psk_query(False), set=_psk_set(False)),
    row("+CIPSSLCPSKHEX", query=_psk_query(True), set=_psk_set(True)),
]
