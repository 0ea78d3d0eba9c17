# Names (TCP-IP_AT_Commands.rst): AT+CIPDNS and AT+CIPDOMAIN. The resolver is at/dns.py.
from at import parse, dns, caps
from at.addr import is_ipv4, is_ipv6
from at.errors import ATError, code, not_here, PARA_INVALID
from at.commands import row


def q_cipdns(eng):
    eng.reply("+CIPDNS:%d,%s" % (eng.cfg.get("cipdns_on"), ",".join('"%s"' % s for s in dns.servers(eng))))


def s_cipdns(eng, a):
    parse.count(a, 1, 4)
    on = parse.num(a, 0, 0, 1)
    servers = []
    if on:
        for i in range(1, len(a)):
            ip = parse.text(a, i, 64, None)
            if ip is None:
                continue
            if not (is_ipv4(ip) or is_ipv6(ip)):
                raise ATError(code(PARA_INVALID, i))
            if ip in servers:
                raise ATError(code(PARA_INVALID, i))  # "cannot be set to the same server"
            if not caps.IPV6 and not is_ipv4(ip):
                raise not_here()  # no IPv6 sockets on this runtime
            servers.append(ip)
    eng.cfg.set("cipdns_on", on)
    eng.cfg.set("cipdns", servers or None)


def s_cipdomain(eng, a):
    parse.count(a, 1, 4)
    name = parse.text(a, 0, 64, minlen=1)
    prefer = parse.num(a, 1, 1, 3, 1)
    timeout = parse.num(a, 2, 0, 60000, 0)
    show_all = parse.num(a, 3, 0, 1, 0)
    return _domain(eng, name, prefer, timeout, show_all)


def _domain(eng, name, prefer, timeout, show_all):
    ips = yield from dns.lookup(eng, name, prefer, timeout)
    for ip in (ips if show_all else ips[:1]):
        eng.reply('+CIPDOMAIN:"%s"' % ip)


COMMANDS = [
    row("+CIPDNS", query=q_cipdns, set=s_cipdns),
    row("+CIPDOMAIN", set=s_cipdomain),
]
