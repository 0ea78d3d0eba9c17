# Basic commands a host sends to set up or to ask about the board
# (Basic_AT_Commands.rst): AT+GMR, AT+CMD, AT+RESTORE, AT+SYSSTORE, AT+SYSMSG,
# AT+SYSLOG, AT+SYSRAM, AT+RFPOWER, AT+SYSTIMESTAMP, AT+UART_CUR and AT+UART_DEF.
# A passing group (at/commands/__init__.py): what they set is the engine's and
# the settings'; AT, ATE and AT+RST, and the UART's setup at boot, are
# at/commands/basic.py's.
import sys
from at import parse
from at.errors import fail, EXEC_FAIL
from at.version import VERSION, AT_VERSION, BUILD
from at.commands import row
from at.commands.basic import reset, switch, UART_RANGES


def exe_gmr(eng):
    impl = sys.implementation
    mp = "v%d.%d.%d" % impl.version[:3]
    eng.reply(
        "AT version:%s(%s - %s - %s)" % (AT_VERSION, VERSION, eng.board.chip, BUILD),
        "SDK version:MicroPython %s" % mp,
        "compile time(%s):%s" % (VERSION, BUILD),
        "Bin version:%s(%s)" % (VERSION, eng.board.module),
    )


def q_cmd(eng):
    for i, row in enumerate(eng.rows):
        eng.reply('+CMD:%d,"AT%s",%d,%d,%d,%d' % (
            i, row[0], row[1] is not None, row[2] is not None, row[3] is not None, row[4] is not None))


def exe_restore(eng):
    eng.cfg.erase()
    eng.then(lambda: reset(eng))


def _flag(key, hi=1, always=False, apply=None):
    """Query and set handlers for a small integer setting kept in the store."""
    name = "+" + key.upper()

    def q(eng):
        eng.reply("%s:%d" % (name, eng.cfg.get(key)))

    def s(eng, a):
        parse.count(a, 1, 1)
        v = parse.num(a, 0, 0, hi)
        eng.cfg.set(key, v, always)
        if apply:
            apply(eng, v)

    return q, s


q_sysstore, s_sysstore = _flag("sysstore", always=True)
q_sysmsg, s_sysmsg = _flag("sysmsg", 7)


def q_syslog(eng):
    eng.reply("+SYSLOG:%d" % eng.syslog)


def s_syslog(eng, a):
    parse.count(a, 1, 1)
    eng.syslog = parse.num(a, 0, 0, 1)


def q_sysram(eng):
    eng.reply("+SYSRAM:%d,%d" % eng.board.heap()[1:3])


def s_sysram(eng, a):
    parse.count(a, 1, 1)
    eng.reply("+SYSRAM:%d,%d,%d,%d" % eng.board.heap(parse.num(a, 0, 0, 0x7FFFFFFF)))


# AT+RFPOWER: Wi-Fi's TX power in 0.25 dBm, as an ESP32 gets it back: the chip has
# levels, and ESP-AT reports the level a value falls in (Basic_AT_Commands.rst's
# table: (lowest value set, value got)). Bluetooth LE's three are kept and shown
# only (this firmware has no BLE; 5 is ESP-IDF's default level). Not saved.
_RF_LEVELS = ((78, 78), (72, 72), (66, 66), (60, 60), (56, 56), (52, 52), (44, 44), (40, 34))


def _rf(eng):
    if eng.cfg.get("cwmode") == 0:
        raise fail(EXEC_FAIL)  # Wi-Fi off: nothing to set or query (the spec's note)
    return eng.rfpower or [78, 5, 5, 5]


def q_rfpower(eng):
    eng.reply("+RFPOWER:%d,%d,%d,%d" % tuple(_rf(eng)))


def s_rfpower(eng, a):
    cur = _rf(eng)
    parse.count(a, 1, 4)
    v = parse.num(a, 0, 40, 84)
    wifi = next(got for lo, got in _RF_LEVELS if v >= lo)
    ble = [parse.num(a, i, 0, 7, cur[i]) for i in (1, 2, 3)]
    if not eng.board.radio.set_txpower(wifi / 4):
        raise fail(EXEC_FAIL)
    eng.rfpower = [wifi] + ble


# AT+SYSTIMESTAMP: the board's clock in Unix seconds, the one SNTP sets (at/sntp.py,
# loaded on first use). WiFiEspAT asks for it.
def q_systimestamp(eng):
    from at import sntp
    eng.reply("+SYSTIMESTAMP:%d" % int(sntp.clock(eng).now()))


def s_systimestamp(eng, a):
    from at import sntp
    parse.count(a, 1, 1)
    sntp.clock(eng).set(parse.num(a, 0, 0, 0x7FFFFFFF))


def _uart_args(a):
    parse.count(a, 5, 5)
    return [parse.num(a, i, lo, hi) for i, (lo, hi) in enumerate(UART_RANGES)]


def q_uart_cur(eng):
    eng.reply("+UART_CUR:%d,%d,%d,%d,%d" % tuple(eng.board.uart.config))


def s_uart_cur(eng, a):
    c = _uart_args(a)
    eng.then(lambda: switch(eng, c))


def q_uart_def(eng):
    eng.reply("+UART_DEF:%d,%d,%d,%d,%d" % tuple(eng.cfg.get("uart_def")))


def s_uart_def(eng, a):
    c = _uart_args(a)
    eng.cfg.set("uart_def", c, True)
    eng.then(lambda: switch(eng, c))


COMMANDS = [
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
