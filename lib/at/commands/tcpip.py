# TCP/IP commands in normal transmission mode (TCP-IP_AT_Commands.rst):
# AT+CIPMUX, AT+CIPMODE, AT+CIPSTART(EX), AT+CIPSEND, AT+CIPCLOSE, AT+CIPSTATE,
# AT+CIPSTATUS, AT+CIFSR, the server (AT+CIPSERVER), passive receive
# (AT+CIPRECVMODE, AT+CIPRECVDATA, AT+CIPRECVLEN) and AT+CIPCLOSEMODE.
# The link table itself lives in at/net.py; the long and extended sends
# (AT+CIPSENDL, AT+CIPSENDEX) in at/commands/sendx.py; the settings a host sends
# once (AT+CIPDINFO, AT+CIPV6, AT+CIPSTO, AT+CIPTCPOPT ...) in at/commands/tcpconf.py.
from at import parse
from at.engine import SEND_OK, SEND_FAIL, DATA_MAX
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, PARA_NUM
from at.net import Net, MAX_LINKS
from at.sock import errno_of, ETIMEDOUT
from at import passthrough
from at.commands import row

TYPES = ("TCP", "UDP", "TCPv6", "UDPv6")


def init(eng):
    eng.net = Net(eng)
    passthrough.boot(eng)  # AT+SAVETRANSLINK's link, if one is saved


def _no_links(eng):
    if eng.net.count():
        raise fail(EXEC_FAIL)


# -- modes --------------------------------------------------------------------------
def q_cipmux(eng):
    eng.reply("+CIPMUX:%d" % eng.net.mux)


def s_cipmux(eng, a):
    parse.count(a, 1, 1)
    v = parse.num(a, 0, 0, 1)
    if v != eng.net.mux:
        _no_links(eng)
        if v and eng.net.mode:
            raise fail(EXEC_FAIL)
        if not v and eng.net.server:
            raise fail(EXEC_FAIL)
        eng.net.mux = v


def q_cipmode(eng):
    eng.reply("+CIPMODE:%d" % eng.net.mode)


def s_cipmode(eng, a):
    parse.count(a, 1, 1)
    v = parse.num(a, 0, 0, 1)
    net = eng.net
    if v and net.mux:
        raise fail(EXEC_FAIL)
    net.mode = v
    if not v:
        # Back to normal mode: data held for passthrough flows as +IPD again.
        for link in net.links:
            if link is not None and link.stalled and link.rxb is None:
                link.stalled = False
                net.resume_read(link)


# -- opening links ------------------------------------------------------------------------
def _start(eng, a, lid, i):
    """Parse CIPSTART's parameters from index i on; return the connect generator."""
    net = eng.net
    typ = parse.choice(a, i, TYPES + ("SSL", "SSLv6"))
    if typ.endswith("v6") and not eng.cfg.get("cipv6"):
        raise fail(EXEC_FAIL)
    host = parse.text(a, i + 1, 64, minlen=1)
    port = parse.num(a, i + 2, 0, 65535)
    if typ[0] == "U":
        parse.count(a, i + 3, i + 7)
        lport = parse.num(a, i + 3, 0, 65535, 0)
        mode = parse.num(a, i + 4, 0, 2, 0)
        if mode and (len(a) <= i + 3 or a[i + 3] is None):
            # <mode> 1 or 2 needs a <local port>; 0 (the default) may come without
            # one: lwESP opens every UDP link as "UDP","<ip>",<port>,,0 (lwesp_int.c)
            raise ATError(code(PARA_INVALID, i + 4))
        local_ip = parse.text(a, i + 5, 64, "")
        timeout = parse.num(a, i + 6, 0, 60000, 0)
        keep = 0
    else:
        parse.count(a, i + 3, i + 6)
        keep = parse.num(a, i + 3, 0, 7200, net.keepalive)
        local_ip = parse.text(a, i + 4, 64, "")
        timeout = parse.num(a, i + 5, 0, 60000, 0)
        lport = mode = 0
        net.keepalive = keep
    if net.links[lid] is not None:
        raise ATError(code(EXEC_FAIL), ["ALREADY CONNECTED"])
    if not eng.wifi.has_ip() and eng.cfg.get("cwmode") not in (2, 3):
        raise fail(EXEC_FAIL)  # no IP yet: join an AP first
    return net.open(lid, typ, host, port, keep, local_ip, timeout, lport, mode)


def s_cipstart(eng, a):
    if eng.net.mux:
        if len(a) < 4:
            raise ATError(code(PARA_NUM, (4 << 8) | len(a)))
        return _start(eng, a, parse.num(a, 0, 0, MAX_LINKS - 1), 1)
    return _start(eng, a, 0, 0)


def s_cipstartex(eng, a):
    lid = eng.net.free_id() if eng.net.mux else 0
    if lid < 0:
        raise fail(EXEC_FAIL)
    return _start(eng, a, lid, 0)


# -- sending ------------------------------------------------------------------------------------
def send_args(eng, a, maxlen):
    """[<link ID>,]<length>[,<"remote host">,<remote port>] of CIPSEND/SENDEX/SENDL."""
    net = eng.net
    i = 1 if net.mux else 0
    parse.count(a, i + 1, i + 3)
    link = net.link(parse.num(a, 0, 0, MAX_LINKS - 1)) if net.mux else net.link(0)
    n = parse.num(a, i, 1, maxlen)
    dest = None
    if len(a) > i + 1:
        host = parse.text(a, i + 1, 64, minlen=1)
        port = parse.num(a, i + 2, 0, 65535)
        if not link.udp:
            raise ATError(code(PARA_INVALID, i + 1))
        dest = (host, port)
    if net.mode:
        raise fail(EXEC_FAIL)  # CIPMODE=1 sends with the execute form
    return link, n, dest


def dest_addr(eng, link, dest):
    """Generator: the sockaddr of a UDP remote given in the command (or None)."""
    if dest is None:
        return None
    return (yield from eng.net.resolve(dest[0], dest[1], link.type.endswith("v6")))[1]


def s_cipsend(eng, a):
    return _send(eng, *send_args(eng, a, DATA_MAX))


def _send(eng, link, n, dest):
    dest = yield from dest_addr(eng, link, dest)
    mv = yield eng.data(n)
    return (yield from send_result(eng, link, mv, dest))


def send_result(eng, link, mv, dest=None):
    """Generator: "Recv <n> bytes", then send mv: SEND OK, or SEND FAIL (then
    CLOSED unless it was a timeout). When the stack takes the data at once,
    both lines leave in one UART write."""
    note = ("\r\nRecv %d bytes\r\n" % len(mv)).encode()
    try:
        note = yield from eng.net.send(link, mv, dest, note)
    except OSError as e:
        eng.log.write("at: send on link %d failed: %r\n" % (link.id, e))
        if errno_of(e) != ETIMEDOUT:
            eng.then(lambda: eng.net.close(link))  # SEND FAIL first, then CLOSED
        return SEND_FAIL
    return note + SEND_OK if note else SEND_OK


def exe_cipsend(eng):
    """Passthrough mode: needs AT+CIPMODE=1, single connection, link 0 open
    (a UDP link only with a fixed remote, <mode> 0)."""
    net = eng.net
    link = net.links[0]
    if not net.mode or net.mux or link is None or (link.udp and link.udp_mode):
        raise fail(EXEC_FAIL)
    return passthrough.run(eng, link)


# -- closing ---------------------------------------------------------------------------------------
def s_cipclose(eng, a):
    net = eng.net
    parse.count(a, 1, 1)
    if not net.mux:
        raise ATError(code(PARA_INVALID, 0))
    lid = parse.num(a, 0, 0, MAX_LINKS)
    if lid == MAX_LINKS:
        for link in net.links:
            if link is not None:
                net.close(link)
        return
    net.close(net.link(lid))


def exe_cipclose(eng):
    net = eng.net
    if net.mux:
        raise ATError(code(PARA_NUM, 1 << 8))
    net.close(net.link(0))


# -- status -------------------------------------------------------------------------------------------
def _state_lines(eng, tag):
    for link in eng.net.links:
        if link is not None:
            eng.reply('%s:%d,"%s","%s",%d,%d,%d' % (
                tag, link.id, link.type, link.host, link.port, link.lport, link.server))


def q_cipstate(eng):
    _state_lines(eng, "+CIPSTATE")


def exe_cipstatus(eng):
    net = eng.net
    if not eng.wifi.has_ip():
        st = 5
    elif net.count():
        st = 3
    elif net.had_link:
        st = 4
    else:
        st = 2
    eng.reply("STATUS:%d" % st)
    _state_lines(eng, "+CIPSTATUS")


def exe_cifsr(eng):
    mode = eng.cfg.get("cwmode")
    radio = eng.wifi.radio
    if mode in (2, 3):
        eng.reply('+CIFSR:APIP,"%s"' % radio.ap_ifconfig()[0], '+CIFSR:APMAC,"%s"' % radio.mac(1))
    if mode in (1, 3):
        ip = radio.ifconfig()[0] if eng.wifi.has_ip() else "0.0.0.0"
        eng.reply('+CIFSR:STAIP,"%s"' % ip)
        v6 = eng.wifi.ip6()
        if v6:
            eng.reply('+CIFSR:STAIP6LL,"%s"' % v6[0])
            if v6[1]:
                eng.reply('+CIFSR:STAIP6GL,"%s"' % v6[1])
        eng.reply('+CIFSR:STAMAC,"%s"' % radio.mac(0))


# -- the server ------------------------------------------------------------------------------------
SERVER_TYPES = ("TCP", "TCPv6", "SSL", "SSLv6")


def q_cipserver(eng):
    srv = eng.net.server
    if srv is None:
        eng.reply("+CIPSERVER:0")
    else:
        eng.reply('+CIPSERVER:1,%d,"%s",%d,%d' % (srv.port, srv.type, srv.ca, srv.netif))


def s_cipserver(eng, a):
    net = eng.net
    parse.count(a, 1, 5)
    mode = parse.num(a, 0, 0, 1)
    if mode == 0:
        parse.count(a, 1, 2)  # <"type"> and <CA enable> must be omitted
        close_all = parse.num(a, 1, 0, 1, 0)
        if net.server is None:
            raise fail(EXEC_FAIL)
        net.unlisten(close_all)
        return
    port = parse.num(a, 1, 1, 65535, 333)
    typ = parse.choice(a, 2, SERVER_TYPES, "TCP")
    ca = parse.num(a, 3, 0, 1, 0)
    netif = parse.num(a, 4, 0, 2, 0)
    if not net.mux or net.server is not None:
        raise fail(EXEC_FAIL)
    if typ.endswith("v6") and not eng.cfg.get("cipv6"):
        raise fail(EXEC_FAIL)
    net.listen(port, typ, ca, netif)


# -- passive receive ----------------------------------------------------------------------------------
def lid_arg(eng, a, allow_all=False):
    """(link id, index of the next parameter): the id is there only with CIPMUX=1."""
    if not eng.net.mux:
        return 0, 0
    return parse.num(a, 0, 0, MAX_LINKS if allow_all else MAX_LINKS - 1), 1


# AT+CIPRECVMODE: ESP-AT's name up to v3.x for one receive mode on every link
# (host drivers send it: lwESP, WiFiEspAT, Zephyr's esp_at). 0 active, 1 passive.
def q_ciprecvmode(eng):
    eng.reply("+CIPRECVMODE:%d" % eng.net.recvtype[0])


def s_ciprecvmode(eng, a):
    parse.count(a, 1, 1)
    mode = parse.num(a, 0, 0, 1)
    if eng.net.mode:
        raise fail(EXEC_FAIL)  # not in passthrough mode
    for k in range(MAX_LINKS):
        eng.net.set_passive(k, mode, 0)


def s_ciprecvdata(eng, a):
    net = eng.net
    lid, i = lid_arg(eng, a)
    parse.count(a, i + 1, i + 2)
    n = parse.num(a, i, 1, 0x7FFFFFFF)
    whole = parse.num(a, i + 1, 0, 1, 0)
    link = net.link(lid)
    if link.rxb is None or not net.recvdata(link, n, whole):
        raise fail(EXEC_FAIL)
    eng.then(lambda: net.after_read(link))
    return b"\r\n\r\nOK\r\n"  # the data's CR LF and OK in one write


def q_ciprecvlen(eng):
    net = eng.net
    out = []
    for link in net.links:
        if link is None:
            # -1 for a link that is not open, as ESP-AT's firmware prints it (the
            # spec's example leaves it empty; WiFiEspAT's parser needs the -1)
            out.append("-1")
        elif link.rxb is None:
            out.append("0")
        elif net.lenmode[link.id] and link.rxb.dgrams:
            out.append(str(link.rxb.dgrams[0][0]))
        else:
            out.append(str(link.rxb.used()))
    eng.reply("+CIPRECVLEN:" + ",".join(out))


# -- socket options ---------------------------------------------------------------------------------------
# AT+CIPCLOSEMODE=[<link ID>,]<enable_abort> (ESP-AT up to v3.x; WiFiEspAT sends
# it before AT+CIPCLOSE and goes on whatever it answers): 1 makes the next close
# of this connection an abort (RST, through SO_LINGER 0), 0 a normal close. A
# runtime without SO_LINGER (a stock ESP32 image) answers ERROR, as AT+CIPTCPOPT.
def s_cipclosemode(eng, a):
    net = eng.net
    lid, i = lid_arg(eng, a)
    parse.count(a, i + 1, i + 1)
    abort = parse.num(a, i, 0, 1)
    link = net.links[lid]
    if link is None or link.udp:
        raise fail(EXEC_FAIL)  # for an established TCP connection only
    o = net.tcpopt[lid]
    if not eng.board.tcpopt(link.sock, 0 if abort else o[0], o[1], o[3]):
        raise fail(EXEC_FAIL, 0x20)


COMMANDS = [
    row("+CIPMUX", query=q_cipmux, set=s_cipmux),
    row("+CIPMODE", query=q_cipmode, set=s_cipmode),
    row("+CIPSTART", set=s_cipstart),
    row("+CIPSTARTEX", set=s_cipstartex),
    row("+CIPSEND", set=s_cipsend, execute=exe_cipsend),
    row("+CIPCLOSE", set=s_cipclose, execute=exe_cipclose),
    row("+CIPSTATE", query=q_cipstate),
    row("+CIPSTATUS", execute=exe_cipstatus),
    row("+CIFSR", execute=exe_cifsr),
    row("+CIPSERVER", query=q_cipserver, set=s_cipserver),
    row("+CIPRECVMODE", query=q_ciprecvmode, set=s_ciprecvmode),
    row("+CIPRECVDATA", set=s_ciprecvdata),
    row("+CIPRECVLEN", query=q_ciprecvlen),
    row("+CIPCLOSEMODE", set=s_cipclosemode),
]
