# Wiring: the loop, the UART writer, the settings, the engine and the command
# groups. main.py calls run() with the port's Board.
import gc
import sys
from at.loop import Loop
from at.output import Output
from at.store import Store
from at.engine import Engine, READY
from at import commands

RX_CHUNK = 4096


def build(board):
    loop = Loop()
    out = Output(loop, board.uart)
    at = Engine(loop, out, board.log)
    at.board = board
    at.cfg = Store(board.log)
    commands.load(at)
    return at


def run(board):
    at = build(board)
    loop = at.loop
    uart = board.uart
    rx = bytearray(RX_CHUNK)

    def resume():
        # Read the UART again unless the backlog or a full sink still holds it.
        if at.out.blocked:
            at.out.when_drained(resume)
        elif at._held is None:
            loop.on_read(uart.obj, on_uart)

    def on_uart(obj, ev):
        if at.out.blocked:
            # The host is not reading our answers: stop taking its input too.
            loop.on_read(uart.obj, None)
            at.out.when_drained(resume)
            return
        n = uart.readinto(rx)
        if n:
            at.feed(rx, n)

    def pause():
        loop.on_read(uart.obj, None)

    at.pause_input = pause
    at.resume_input = resume
    loop.on_read(uart.obj, on_uart)
    gc.collect()
    at.out.write(READY)
    while True:
        try:
            loop.run()
        except Exception as e:
            # Never let one bad event take the board down (and never print a
            # traceback on the AT UART): log it, free what we can, go on.
            board.log.write("at: loop error: ")
            if hasattr(sys, "print_exception"):
                sys.print_exception(e, board.log)
            gc.collect()
