# Basic commands a host sends to set up or to ask about the board
# (Basic_AT_Commands.rst): AT+GMR, AT+CMD, AT+SYSSTORE, AT+SYSMSG, AT+SYSLOG
# and AT+SYSRAM. A passing group (at/commands/__init__.py): what they set is the
# engine's and the settings'; AT, ATE, AT+RST and AT+RESTORE are
# at/commands/basic.py's, AT+UART_CUR/DEF, AT+RFPOWER and AT+SYSTIMESTAMP
# at/commands/sysconf.py's.
import sys
from at import parse
from at.version import VERSION, AT_VERSION, BUILD
from at import commands
from at.commands import row


def exe_gmr(eng):
    impl = sys.implementation
    mp = "v%d.%d.%d" % impl.version[:3]
    eng.reply(
        "AT version:%s(%s - %s - %s)" % (AT_VERSION, VERSION, eng.board.chip, BUILD),
        "SDK version:MicroPython %s" % mp,
        "compile time(%s):%s" % (VERSION, BUILD),
        "Bin version:%s(%s)" % (VERSION, eng.board.module),
    )


def _forms(r):
    return (r[1] is not None) << 3 | (r[2] is not None) << 2 | (r[3] is not None) << 1 | (r[4] is not None)


def _cmd(eng, i, name, f):
    eng.reply('+CMD:%d,"AT%s",%d,%d,%d,%d' % (i, name, f >> 3, f >> 2 & 1, f >> 1 & 1, f & 1))
    return i + 1


def q_cmd(eng):
    """Every command in ESP-AT's order: the core groups' rows, then the index of
    the groups imported on first use (a row in the table wins: the group's once
    imported, or user_commands.py's), then the commands user_commands.py adds."""
    index = commands.INDEX
    rows = eng.rows
    n = commands.core_rows
    i = 0
    for r in rows[:n]:
        i = _cmd(eng, i, r[0], _forms(r))
    e = 0
    while True:
        s = index.find("+", e)
        if s < 0:
            break
        e = index.find(" ", s)
        name = index[s:e]
        r = eng.table.get(name)
        i = _cmd(eng, i, name, _forms(r) if r else int(index[e + 1], 16))
    for r in rows[n:]:
        if commands.find(r[0]) is None:
            i = _cmd(eng, i, r[0], _forms(r))


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


COMMANDS = [
    row("+GMR", execute=exe_gmr),
    row("+CMD", query=q_cmd),
    row("+SYSSTORE", query=q_sysstore, set=s_sysstore),
    row("+SYSMSG", query=q_sysmsg, set=s_sysmsg),
    row("+SYSLOG", query=q_syslog, set=s_syslog),
    row("+SYSRAM", query=q_sysram, set=s_sysram),
]
