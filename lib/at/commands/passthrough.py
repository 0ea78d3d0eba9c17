# Passthrough settings (Basic_AT_Commands.rst, TCP-IP_AT_Commands.rst):
# AT+TRANSINTVL (packing interval), AT+CIPRECONNINTV (reconnect interval) and
# AT+SAVETRANSLINK (boot straight into passthrough to a saved link). A passing
# group (at/commands/__init__.py). The mode itself, and the boot into it, are
# at/passthrough.py's; AT+CIPSEND enters it (commands/tcpip.py).
from at import parse
from at.errors import fail, EXEC_FAIL
from at.commands import row

CLIENT_TYPES = ("TCP", "TCPv6", "UDP", "UDPv6", "SSL", "SSLv6")


def q_transintvl(eng):
    eng.reply("+TRANSINTVL:%d" % eng.cfg.get("transintvl"))


def s_transintvl(eng, a):
    parse.count(a, 1, 1)
    eng.cfg.set("transintvl", parse.num(a, 0, 0, 1000))


def q_cipreconnintv(eng):
    eng.reply("+CIPRECONNINTV:%d" % eng.cfg.get("cipreconnintv"))


def s_cipreconnintv(eng, a):
    parse.count(a, 1, 1)
    eng.cfg.set("cipreconnintv", parse.num(a, 0, 1, 36000))


def s_savetranslink(eng, a):
    parse.count(a, 1, 5)
    mode = parse.num(a, 0, 0, 3)
    if mode == 0:
        parse.count(a, 1, 1)
        eng.cfg.set("savetranslink", None, True)
        return
    if mode != 1:
        raise fail(EXEC_FAIL, 0x30)  # 2: Bluetooth LE, 3: server passthrough: not in this firmware
    host = parse.text(a, 1, 64, minlen=1)
    port = parse.num(a, 2, 0, 65535)
    typ = parse.choice(a, 3, CLIENT_TYPES, "TCP")
    if typ[0] == "U":
        extra = parse.num(a, 4, 0, 65535, 0)  # <local port>
    else:
        extra = parse.num(a, 4, 0, 7200, eng.net.keepalive)  # <keep_alive>
    eng.cfg.set("savetranslink", [typ, host, port, extra], True)


COMMANDS = [
    row("+TRANSINTVL", query=q_transintvl, set=s_transintvl),
    row("+CIPRECONNINTV", query=q_cipreconnintv, set=s_cipreconnintv),
    row("+SAVETRANSLINK", set=s_savetranslink),
]
