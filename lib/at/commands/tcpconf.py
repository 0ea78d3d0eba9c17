# TCP/IP settings a host sends to set up (TCP-IP_AT_Commands.rst): AT+CIPDINFO,
# AT+CIPV6, AT+CIPCONNPERSIST, AT+CIPSERVERMAXCONN, AT+CIPSTO, AT+CIPRECVTYPE and
# AT+CIPTCPOPT. A passing group (at/commands/__init__.py): what they set lives in
# the link table (eng.net, at/net.py) and the settings; the links' own commands
# are at/commands/tcpip.py's.
from at import parse, caps
from at.errors import fail, not_here, EXEC_FAIL
from at.net import MAX_LINKS
from at.commands import row
from at.commands.tcpip import lid_arg


def q_cipdinfo(eng):
    eng.reply("+CIPDINFO:%s" % ("true" if eng.net.dinfo else "false"))


def s_cipdinfo(eng, a):
    parse.count(a, 1, 1)
    eng.net.dinfo = parse.num(a, 0, 0, 1)


def q_cipv6(eng):
    eng.reply("+CIPV6:%d" % eng.cfg.get("cipv6"))


def s_cipv6(eng, a):
    parse.count(a, 1, 1)
    v = parse.num(a, 0, 0, 1)
    if v and not caps.IPV6:
        raise not_here()  # the ESP32 port's sockets are IPv4-only (README "Supported targets")
    eng.cfg.set("cipv6", v)


def q_cipconnpersist(eng):
    p = eng.net.persist
    eng.reply("+CIPCONNPERSIST:" + ",".join(str(x) for x in (p if eng.net.mux else p[:1])))


def s_cipconnpersist(eng, a):
    lid, i = lid_arg(eng, a)
    parse.count(a, i + 1, i + 1)
    eng.net.persist[lid] = parse.num(a, i, 0, 1)


def q_cipservermaxconn(eng):
    eng.reply("+CIPSERVERMAXCONN:%d" % eng.net.maxconn)


def s_cipservermaxconn(eng, a):
    parse.count(a, 1, 1)
    n = parse.num(a, 0, 1, MAX_LINKS)
    if eng.net.server is not None:
        raise fail(EXEC_FAIL)  # "call it before creating a server"
    eng.net.maxconn = n


def q_cipsto(eng):
    eng.reply("+CIPSTO:%d" % eng.net.sto)


def s_cipsto(eng, a):
    parse.count(a, 1, 1)
    eng.net.sto = parse.num(a, 0, 0, 7200)
    eng.net.arm_sto()


def q_ciprecvtype(eng):
    net = eng.net
    for lid in (range(MAX_LINKS) if net.mux else (0,)):
        eng.reply("+CIPRECVTYPE:%d,%d" % (lid, net.recvtype[lid]))


def s_ciprecvtype(eng, a):
    net = eng.net
    lid, i = lid_arg(eng, a, True)
    parse.count(a, i + 1, i + 2)
    mode = parse.num(a, i, 0, 1)
    lenmode = parse.num(a, i + 1, 0, 1, 0)
    if net.mode:
        raise fail(EXEC_FAIL)  # not in passthrough mode
    for k in (range(MAX_LINKS) if lid == MAX_LINKS else (lid,)):
        net.set_passive(k, mode, lenmode)


def q_ciptcpopt(eng):
    net = eng.net
    for lid in (range(MAX_LINKS) if net.mux else (0,)):
        eng.reply("+CIPTCPOPT:%d,%d,%d,%d,%d" % ((lid,) + tuple(net.tcpopt[lid])))


def s_ciptcpopt(eng, a):
    net = eng.net
    lid, i = lid_arg(eng, a, True)
    parse.count(a, i + 1, i + 4)
    ids = range(MAX_LINKS) if lid == MAX_LINKS else (lid,)
    cur = net.tcpopt[ids[0]]
    opt = [parse.num(a, i, -1, 7200, cur[0]),
           parse.num(a, i + 1, 0, 1, cur[1]),
           parse.num(a, i + 2, 0, 0x7FFFFFFF, cur[2]),
           parse.num(a, i + 3, 0, 7200, cur[3])]
    applied = True
    for k in ids:
        net.tcpopt[k] = list(opt)
        link = net.links[k]
        if link is not None and not link.udp:
            applied = net.apply_tcpopt(link) and applied
    net.keepalive = opt[3]
    eng.cfg.set("tcpopt", net.tcpopt)
    if not applied:
        # The port cannot apply an option (a stock ESP32 image has no SO_LINGER or
        # keep-alive): say so instead of pretending.
        raise fail(EXEC_FAIL, 0x20)


COMMANDS = [
    row("+CIPDINFO", query=q_cipdinfo, set=s_cipdinfo),
    row("+CIPV6", query=q_cipv6, set=s_cipv6),
    row("+CIPCONNPERSIST", query=q_cipconnpersist, set=s_cipconnpersist),
    row("+CIPSERVERMAXCONN", query=q_cipservermaxconn, set=s_cipservermaxconn),
    row("+CIPSTO", query=q_cipsto, set=s_cipsto),
    row("+CIPRECVTYPE", query=q_ciprecvtype, set=s_ciprecvtype),
    row("+CIPTCPOPT", query=q_ciptcpopt, set=s_ciptcpopt),
]
