# SSL client settings (TCP-IP_AT_Commands.rst, AT+CIPSSLCCONF). Host drivers
# (Adafruit's, for one) query it at start-up; SSL links themselves come later.
from at import parse
from at.links import MAX_LINKS

_DEFAULT = [0, 0, 0]  # auth_mode, pki_number, ca_number


def _conf(at):
    c = at.cfg.get("sslcconf")
    if not c:
        c = [list(_DEFAULT) for _ in range(MAX_LINKS)]
    return c


def q_cipsslcconf(at):
    c = _conf(at)
    for lid in (range(MAX_LINKS) if at.net.mux else (0,)):
        at.reply("+CIPSSLCCONF:%d,%d,%d,%d" % ((lid,) + tuple(c[lid])))


def s_cipsslcconf(at, a):
    i = 1 if at.net.mux else 0
    parse.count(a, i + 1, i + 3)
    lid = parse.num(a, 0, 0, MAX_LINKS) if i else 0
    auth = parse.num(a, i, 0, 3)
    pki = parse.num(a, i + 1, 0, 255, 0)
    ca = parse.num(a, i + 2, 0, 255, 0)
    c = _conf(at)
    for k in (range(MAX_LINKS) if lid == MAX_LINKS else (lid,)):
        c[k] = [auth, pki, ca]
    at.cfg.set("sslcconf", c, True)  # the spec: always saved


COMMANDS = [
    # name, test, query, set, execute
    ("+CIPSSLCCONF", None, q_cipsslcconf, s_cipsslcconf, None),
]
