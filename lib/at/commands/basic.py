# Basic AT commands (Basic_AT_Commands.rst): AT, ATE, AT+RST, AT+GMR, AT+CMD,
# AT+RESTORE, AT+SYSSTORE, AT+SYSMSG, AT+SYSLOG, AT+SYSRAM, AT+UART_CUR/DEF.
import sys
from at import parse
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID
from at.version import VERSION, AT_VERSION, BUILD
from at.commands import row


def exe_at(at):
    pass


def exe_e0(at):
    at.echo = False


def exe_e1(at):
    at.echo = True


def _reset(at):
    # OK has been written; make sure it left the UART before the reset.
    at.out.flush()
    at.board.reset()


def exe_rst(at):
    at.then(lambda: _reset(at))


def exe_gmr(at):
    impl = sys.implementation
    mp = "v%d.%d.%d" % impl.version[:3]
    at.reply(
        "AT version:%s(%s - %s - %s)" % (AT_VERSION, VERSION, at.board.chip, BUILD),
        "SDK version:MicroPython %s" % mp,
        "compile time(%s):%s" % (VERSION, BUILD),
        "Bin version:%s(%s)" % (VERSION, at.board.module),
    )


def q_cmd(at):
    for i, row in enumerate(at.rows):
        at.reply('+CMD:%d,"AT%s",%d,%d,%d,%d' % (
            i, row[0], row[1] is not None, row[2] is not None, row[3] is not None, row[4] is not None))


def exe_restore(at):
    at.cfg.erase()
    at.then(lambda: _reset(at))


def _flag(key, hi=1, always=False, apply=None):
    """Query and set handlers for a small integer setting kept in the store."""
    name = "+" + key.upper()

    def q(at):
        at.reply("%s:%d" % (name, at.cfg.get(key)))

    def s(at, a):
        parse.count(a, 1, 1)
        v = parse.num(a, 0, 0, hi)
        at.cfg.set(key, v, always)
        if apply:
            apply(at, v)

    return q, s


q_sysstore, s_sysstore = _flag("sysstore", always=True)
q_sysmsg, s_sysmsg = _flag("sysmsg", 7)


def q_syslog(at):
    at.reply("+SYSLOG:%d" % at.syslog)


def s_syslog(at, a):
    parse.count(a, 1, 1)
    at.syslog = parse.num(a, 0, 0, 1)


def q_sysram(at):
    at.reply("+SYSRAM:%d,%d" % at.board.heap()[1:3])


def s_sysram(at, a):
    parse.count(a, 1, 1)
    at.reply("+SYSRAM:%d,%d,%d,%d" % at.board.heap(parse.num(a, 0, 0, 0x7FFFFFFF)))


# AT+RFPOWER: Wi-Fi's TX power in 0.25 dBm, as an ESP32 gets it back: the chip has
# levels, and ESP-AT reports the level a value falls in (Basic_AT_Commands.rst's
# table: (lowest value set, value got)). Bluetooth LE's three are kept and shown
# only (this firmware has no BLE; 5 is ESP-IDF's default level). Not saved.
_RF_LEVELS = ((78, 78), (72, 72), (66, 66), (60, 60), (56, 56), (52, 52), (44, 44), (40, 34))


def _rf(at):
    if at.cfg.get("cwmode") == 0:
        raise fail(EXEC_FAIL)  # Wi-Fi off: nothing to set or query (the spec's note)
    return at.rfpower or [78, 5, 5, 5]


def q_rfpower(at):
    at.reply("+RFPOWER:%d,%d,%d,%d" % tuple(_rf(at)))


def s_rfpower(at, a):
    cur = _rf(at)
    parse.count(a, 1, 4)
    v = parse.num(a, 0, 40, 84)
    wifi = next(got for lo, got in _RF_LEVELS if v >= lo)
    ble = [parse.num(a, i, 0, 7, cur[i]) for i in (1, 2, 3)]
    if not at.board.radio.set_txpower(wifi / 4):
        raise fail(EXEC_FAIL)
    at.rfpower = [wifi] + ble


# AT+SYSTIMESTAMP: the board's clock in Unix seconds, the one SNTP sets (at/sntp.py,
# loaded on first use). WiFiEspAT asks for it.
def q_systimestamp(at):
    from at import sntp
    at.reply("+SYSTIMESTAMP:%d" % int(sntp.clock(at).now()))


def s_systimestamp(at, a):
    from at import sntp
    parse.count(a, 1, 1)
    sntp.clock(at).set(parse.num(a, 0, 0, 0x7FFFFFFF))


UART_RANGES = ((80, 5000000), (5, 8), (1, 3), (0, 2), (0, 3))


def _uart_args(a):
    parse.count(a, 5, 5)
    return [parse.num(a, i, lo, hi) for i, (lo, hi) in enumerate(UART_RANGES)]


def init(at):
    # The UART comes up with the saved AT+UART_DEF configuration, as ESP-AT's does
    # (AT+UART_CUR is never saved). A value out of range means the factory default.
    c = at.cfg.get("uart_def")
    for v, (lo, hi) in zip(c, UART_RANGES):
        if not lo <= v <= hi:
            at.log.write("at: bad saved UART configuration %r; using 115200,8,1,0,0\n" % (c,))
            c = [115200, 8, 1, 0, 0]
            break
    if list(c) != list(at.board.uart.config):
        at.board.uart.configure(*c)


def q_uart_cur(at):
    at.reply("+UART_CUR:%d,%d,%d,%d,%d" % tuple(at.board.uart.config))


def _switch(at, c):
    # Answer at the old rate, then switch: OK (and anything before it) must have
    # left the backlog for the UART, which then drains it at the old rate.
    at.out.flush()
    at.board.uart.configure(*c)


def s_uart_cur(at, a):
    c = _uart_args(a)
    at.then(lambda: _switch(at, c))


def q_uart_def(at):
    at.reply("+UART_DEF:%d,%d,%d,%d,%d" % tuple(at.cfg.get("uart_def")))


def s_uart_def(at, a):
    c = _uart_args(a)
    at.cfg.set("uart_def", c, True)
    at.then(lambda: _switch(at, c))


COMMANDS = [
    row("", execute=exe_at),
    row("E0", execute=exe_e0),
    row("E1", execute=exe_e1),
    row("+RST", execute=exe_rst),
    row("+GMR", execute=exe_gmr),
    row("+CMD", query=q_cmd),
    row("+RESTORE", execute=exe_restore),
    row("+SYSSTORE", query=q_sysstore, set=s_sysstore),
    row("+SYSMSG", query=q_sysmsg, set=s_sysmsg),
    row("+SYSLOG", query=q_syslog, set=s_syslog),
    row("+SYSRAM", query=q_sysram, set=s_sysram),
    row("+RFPOWER", query=q_rfpower, set=s_rfpower),
    row("+SYSTIMESTAMP", query=q_systimestamp, set=s_systimestamp),
    row("+UART_CUR", query=q_uart_cur, set=s_uart_cur),
    row("+UART_DEF", query=q_uart_def, set=s_uart_def),
]
