# Basic AT commands (Basic_AT_Commands.rst): AT, ATE, AT+RST, AT+RESTORE, and
# the UART's setup at boot (AT+UART_DEF's). The others (AT+GMR, AT+CMD,
# AT+SYSSTORE, AT+SYSRAM, AT+UART_CUR ...) are at/commands/system.py's.
# AT+RESTORE is here, not in a group imported on use: it is how a host recovers
# a board, so it must work when the heap has no room for an import.
from at.commands import row


def exe_at(eng):
    pass


def exe_e0(eng):
    eng.echo = False


def exe_e1(eng):
    eng.echo = True


def reset(eng):
    # OK has been written; make sure it left the UART before the reset.
    eng.out.flush()
    eng.board.reset()


def exe_rst(eng):
    eng.then(lambda: reset(eng))


def exe_restore(eng):
    eng.cfg.erase()
    eng.then(lambda: reset(eng))


UART_RANGES = ((80, 5000000), (5, 8), (1, 3), (0, 2), (0, 3))


def init(eng):
    # The UART comes up with the saved AT+UART_DEF configuration, as ESP-AT's does
    # (AT+UART_CUR is never saved). A value out of range means the factory default.
    c = eng.cfg.get("uart_def")
    for v, (lo, hi) in zip(c, UART_RANGES):
        if not lo <= v <= hi:
            eng.log.write("at: bad saved UART configuration %r; using 115200,8,1,0,0\n" % (c,))
            c = [115200, 8, 1, 0, 0]
            break
    switch(eng, c)


def switch(eng, c):
    # Answer at the old rate, then switch: OK (and anything before it) must have
    # left the backlog for the UART, which then drains it at the old rate. The
    # same settings again are no switch: UART.init() flushes the input on an
    # ESP32 (machine_uart.c v1.27.0 l.485), where the host's next command may be.
    if list(c) == list(eng.board.uart.config):
        return
    eng.out.flush()
    eng.board.uart.configure(*c)


COMMANDS = [
    row("", execute=exe_at),
    row("E0", execute=exe_e0),
    row("E1", execute=exe_e1),
    row("+RST", execute=exe_rst),
    row("+RESTORE", execute=exe_restore),
]
