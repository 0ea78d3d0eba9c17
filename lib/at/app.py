# Wiring: the loop, the UART writer, the settings, the engine and the command
# groups. main.py calls run() with the port's Board.
import gc
import sys
from at.loop import Loop
from at import output
from at.output import Output
from at.store import Store
from at.engine import Engine, READY, DATA_MAX, DATA_SMALL
from at import commands
from at.net import WINDOW

RX_CHUNK = 4096  # UART bytes per read
RX_CHUNK_SMALL = 1024  # ... on a board with a small heap (board.small_heap: an ESP32 without PSRAM)
RX_TURN = 4  # UART reads per loop turn at most, while each one fills the buffer


def build(board):
    loop = Loop()
    small = board.small_heap
    out = Output(loop, board.uart, output.SIZE_SMALL if small else output.SIZE)
    eng = Engine(loop, out, board.log, DATA_SMALL if small else DATA_MAX, (commands.TABLE, commands.LISTED))
    eng.board = board
    eng.cfg = Store(board.log)
    gc.collect()  # the groups' objects live for good: below the boot's garbage, not among it
    commands.load(eng)
    gc.collect()
    from at import fwstate
    if not fwstate.boot(eng):
        commands.drop("at.fwstate")  # no version on trial: not needed again until an OTA
    return eng


def run(board):
    # The big, long-lived buffers first, while the heap is still in one piece: after
    # the command groups are in, the free heap can be in holes smaller than 4 KB.
    # A small heap's one passive receive window too (net.Windows), or passive links
    # may never find 5,760 bytes in one block. Collections between the steps keep the
    # long-lived objects packed low: the largest free block at `ready` (a 63 KB heap,
    # 32-bit frozen) went from 2,112 bytes to 6,048 with them.
    small = board.small_heap
    chunk = RX_CHUNK_SMALL if small else RX_CHUNK
    gc.collect()
    rx = bytearray(chunk)
    window = bytearray(WINDOW) if small else None
    eng = build(board)
    if window:
        eng.net.windows.keep(window)
    loop = eng.loop
    uart = board.uart

    def resume():
        # Read the UART again unless a full sink (or a host that never reads) holds it.
        if eng.out.full():
            eng.out.when_drained(resume)
        elif not eng.holding():
            loop.on_read(uart.obj, on_uart)

    def on_uart(obj, ev):
        if eng.out.full():
            # The host sends and sends and never reads our answers: pause its input.
            loop.on_read(uart.obj, None)
            eng.out.when_drained(resume)
            return
        # A full read says more is waiting: take a few more chunks in this turn
        # (fewer polls per byte), then let the sockets have theirs.
        for _ in range(RX_TURN):
            n = uart.readinto(rx)
            if not n:
                return
            eng.feed(rx, n)
            if n < chunk or eng.holding() or eng.out.full():
                return

    def pause():
        loop.on_read(uart.obj, None)

    eng.pause_input = pause
    eng.resume_input = resume
    loop.on_read(uart.obj, on_uart)
    gc.collect()
    # MicroPython's own heap (AT+SYSRAM reports the chip's, the IDF heap, on an ESP32)
    board.log.write("at: ready; GC heap %d bytes used, %d free\n" % (gc.mem_alloc(), gc.mem_free()))
    eng.out.write(READY)
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
