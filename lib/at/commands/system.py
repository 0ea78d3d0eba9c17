# Basic commands a host sends to set up or to ask about the board
# (Basic_AT_Commands.rst): AT+GMR, AT+CMD, AT+RESTORE, AT+SYSSTORE, AT+SYSMSG,
# AT+SYSLOG and AT+SYSRAM. A passing group (at/commands/__init__.py): what they
# set is the engine's and the settings'; AT, ATE and AT+RST are
# at/commands/basic.py's, AT+UART_CUR/DEF, AT+RFPOWER and AT+SYSTIMESTAMP
# at/commands/sysconf.py's.
import sys
from at import parse
from at.version import VERSION, AT_VERSION, BUILD
from at.commands import row
from at.commands.basic import reset


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


COMMANDS = [
    row("+GMR", execute=exe_gmr),
    row("+CMD", query=q_cmd),
    row("+RESTORE", execute=exe_restore),
    row("+SYSSTORE", query=q_sysstore, set=s_sysstore),
    row("+SYSMSG", query=q_sysmsg, set=s_sysmsg),
    row("+SYSLOG", query=q_syslog, set=s_syslog),
    row("+SYSRAM", query=q_sysram, set=s_sysram),
]
