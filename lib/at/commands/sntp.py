# SNTP (TCP-IP_AT_Commands.rst): AT+CIPSNTPCFG, AT+CIPSNTPTIME?, AT+CIPSNTPINTV.
# The client and the clock are at/sntp.py.
from at import parse, sntp
from at.errors import ATError, code, PARA_INVALID
from at.commands import row


def init(eng):
    sntp.clock(eng)
    eng.sntp = sntp.Sntp(eng)


def q_cipsntpcfg(eng):
    s = eng.sntp
    tz = int(s.tz / 60)  # the query shows whole hours (the spec's 015 -> 0)
    if s.enabled:
        eng.reply("+CIPSNTPCFG:1,%d,%s" % (tz, ",".join('"%s"' % n for n in s.names())))
    else:
        eng.reply("+CIPSNTPCFG:0,%d" % tz)


def s_cipsntpcfg(eng, a):
    parse.count(a, 1, 5)
    s = eng.sntp
    enable = parse.num(a, 0, 0, 1)
    tz = parse.num(a, 1, -1259, 1459, None)
    minutes = s.tz if tz is None else sntp.parse_tz(tz)
    if minutes is None:
        raise ATError(code(PARA_INVALID, 1))
    names = []
    for i in range(2, len(a)):
        n = parse.text(a, i, 64, None, minlen=1)
        if n is not None:
            names.append(n)
    s.enabled = enable
    s.tz = minutes
    if enable and len(a) > 2:
        s.servers = names
    s.start()


def q_cipsntptime(eng):
    eng.reply("+CIPSNTPTIME:" + sntp.asctime(eng.clock.now() + eng.sntp.tz * 60))


def q_cipsntpintv(eng):
    eng.reply("+CIPSNTPINTV:%d" % eng.sntp.interval)


def s_cipsntpintv(eng, a):
    parse.count(a, 1, 1)
    eng.sntp.interval = parse.num(a, 0, 15, 4294967)
    if eng.sntp.enabled and eng.sntp.waiting():
        eng.sntp.start()


COMMANDS = [
    row("+CIPSNTPCFG", query=q_cipsntpcfg, set=s_cipsntpcfg),
    row("+CIPSNTPTIME", query=q_cipsntptime),
    row("+CIPSNTPINTV", query=q_cipsntpintv, set=s_cipsntpintv),
]
