"""Sections machine (where the figures come from) and setup (the board: started or opened,
restored, joined)."""
import os
import pathlib
import subprocess
import tempfile

from board import VirtualBoard
from vboard import micropython

from bench.baseline import BASE_HEAP
from bench.common import MiB, Wire
from bench.heap import code_heap, empty_free, heap_bytes, heap_use, sysram
from bench.twin import TWIN_SECTIONS, board_args, twin_bauds


def bench_machine(ctx):
    """Where the figures come from."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mp = subprocess.run([micropython(), "-c", "import sys; print(sys.version)"],
                        capture_output=True, text=True, timeout=20).stdout.strip()
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    print("  nproc %s, CPU %s, load average %s" % (os.cpu_count(), cpu, load))
    print("  MicroPython %s" % mp)
    a = ctx.args
    if a.port:
        print("  board: %s" % a.port)
    elif a.board == "esp32":
        print("  board: virtual, the ESP32 twin (tools/vboard.py %s): lib/at/ports/esp32.py over tools/twin/, "
              "UART paced at the line rate" % " ".join(board_args(a)))
    else:
        print("  board: virtual (tools/vboard.py --board unix)")
    if a.board == "esp32" and not a.port:
        print("  twin sections: %s baud, about %g s of line per run (one run per figure)" % (
            ", ".join(format(b, ",") for b in twin_bauds(a)), a.line_seconds))
    if a.board == "unix" or a.port or set(filter(None, a.only.split(","))) - set(TWIN_SECTIONS):
        print("  throughput: %d runs per figure (copies, +IPD, CIPSENDL, passthrough %d MiB; CIPSEND, passive %d MiB "
              "each), baseline and firmware alternating" % (ctx.args.reps, ctx.args.bytes // MiB,
                                                             ctx.args.send_bytes // MiB))


def bench_setup(ctx):
    """Start (or open) the board, restore it, echo off, heap after boot, join Wi-Fi."""
    a = ctx.args
    if a.port:
        url = a.port
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-")
        ctx.at_exit(tmp.cleanup)
        d = pathlib.Path(tmp.name)
        ctx.vb = VirtualBoard(d / "flash", d / "log.txt", heap=a.heap, extra=board_args(a))
        ctx.at_exit(ctx.vb.close)
        url = ctx.vb.path
        # The heap the launcher gave the firmware, and what an empty interpreter has in it.
        try:
            heap = heap_bytes(a.heap)
        except (TypeError, ValueError):  # none given, or "auto": what the launcher chose
            heap = getattr(ctx.vb, "heap", None) or heap_bytes(BASE_HEAP)
        ctx.base["heap"] = empty_free(heap)
        # The unix personality's modules; the twin's heap holds its stand-ins besides (vboard.py).
        ctx.base["code"] = code_heap() if a.board == "unix" else None
        ctx.row("baseline", "heap given to the board", "%d B" % heap,
                note="(launcher %s%s)" % ("--heap %s" % a.heap if a.heap else "default",
                                         "; the ESP32 twin: firmware + the twin's stand-ins and rings"
                                         if a.board == "esp32" else ""))
        ctx.row("baseline", "free heap, empty interpreter", "%d B" % ctx.base["heap"])
        if ctx.base["code"] is not None:
            ctx.row("baseline", "heap of the firmware's modules", "%d B" % ctx.base["code"],
                    note="(compiled .mpy imported; none of it when frozen into an image)")
    ctx.wire = Wire(url, a.baud)
    ctx.at_exit(ctx.wire.close)
    w = ctx.wire
    w.quiet(0.3)
    # A virtual board has a scratch flash: restore it. A real one: only restart it.
    w.write(b"AT+RST\r\n" if a.port else b"AT+RESTORE\r\n")
    w.read_until(b"\r\nready\r\n", 15)
    w.quiet(0.2)
    w.ok("ATE0")
    free, _ = sysram(w)
    ctx.heap_boot = free
    base = ctx.base.get("heap")
    if base:
        ctx.row("heap", "free heap after boot", "%d B" % free, "empty interpreter %d B" % base,
                heap_use(ctx, base - free))
    else:
        ctx.row("heap", "free heap after boot", "%d B" % free)
    w.ok('AT+CWJAP="%s","%s"' % (a.ssid, a.password), timeout=30)
