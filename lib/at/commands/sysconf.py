# Basic settings a host sends to set up (Basic_AT_Commands.rst): AT+RFPOWER,
# AT+SYSTIMESTAMP, AT+UART_CUR and AT+UART_DEF. A passing group
# (at/commands/__init__.py), apart from at/commands/system.py so that each passes
# through a small heap in less room. The UART's setup at boot is
# at/commands/basic.py's.
from at import parse
from at.errors import fail, EXEC_FAIL
from at.commands import row
from at.commands.basic import switch, UART_RANGES


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
    row("+RFPOWER", query=q_rfpower, set=s_rfpower),
    row("+SYSTIMESTAMP", query=q_systimestamp, set=s_systimestamp),
    row("+UART_CUR", query=q_uart_cur, set=s_uart_cur),
    row("+UART_DEF", query=q_uart_def, set=s_uart_def),
]
