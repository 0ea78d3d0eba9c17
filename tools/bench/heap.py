"""Sections heap (free heap after boot and with 5 links open) and heap32 (the GC heap in the
chip's units), and the heap figures the other sections use."""
import json
import os
import pathlib
import re
import subprocess
import sys

from board import GC_HEAP_COMMAND, gc_heap, own_board, two_numbers
from peers import TcpServer, echo, sink
import vboard

from bench import ROOT


def heap_bytes(text):
    """'110k' / '2m' / '112640' -> bytes."""
    t = str(text).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def empty_free(heap):
    """gc.mem_free() of an interpreter that has loaded nothing, at this heap size."""
    r = subprocess.run([vboard.micropython(), "-X", "heapsize=%s" % heap, "-c",
                        "import gc; gc.collect(); print(gc.mem_free())"],
                       capture_output=True, text=True, timeout=20)
    return int(r.stdout.split()[-1])


def code_heap():
    """Heap the firmware's compiled modules take once imported, as tools/vboard.py measures it
    (None if unknown)."""
    lib = ROOT / "build" / "vboard" / "lib"
    if not lib.is_dir():
        return None
    try:
        return vboard.code_heap(lib)
    except (ValueError, IndexError, subprocess.SubprocessError):
        return None


def sysram(w):
    return two_numbers(w, "AT+SYSRAM?")


def heap_use(ctx, used):
    code = ctx.base.get("code")
    if ctx.args.board == "esp32" and not ctx.args.port:
        return "firmware + the twin's stand-ins take %d B" % used
    if code is None:
        return "firmware takes %d B" % used
    return "firmware takes %d B = %d B modules + %d B data" % (used, code, used - code)


def bench_heap(ctx):
    """Free heap with AT+CIPMUX=1 and five TCP links open to a local server."""
    w = ctx.wire
    srv = TcpServer(ctx.host, sink)
    try:
        w.ok("AT+CIPMUX=1")
        for i in range(5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (i, ctx.host, srv.port), timeout=10)
        free, _ = sysram(w)
        per = "%d B per link" % ((ctx.heap_boot - free) // 5)
        base = ctx.base.get("heap")
        if base:
            ctx.row("heap", "free heap, 5 links open", "%d B" % free, "empty interpreter %d B" % base,
                    heap_use(ctx, base - free) + "; " + per)
        else:
            ctx.row("heap", "free heap, 5 links open", "%d B" % free, note="(%s)" % per)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        w.ok("AT+CIPMUX=0")
    finally:
        srv.close()


def bench_heap32(ctx):
    """The firmware's GC heap in the chip's units: tools/heap32/run.py boots it
    on a 32-bit MicroPython 1.27.0 (WebAssembly) and on the 64-bit unix port over
    the same stand-ins, lib/ as .mpy files (what `make deploy` puts on a board)."""
    steps = heap32_steps(ctx, "32-bit heap measurement")
    if steps is None:
        return
    for key, label in (("boot", "WROVER, .mpy: GC heap at ready (32-bit)"),
                       ("firmware", "WROVER, .mpy: every group loaded (32-bit)")):
        st = steps[key]
        ctx.row("heap32", label, "%d B" % st["bytes32"], "64-bit unix port %d B" % st["bytes64"],
                "x%.2f on 64-bit" % st["factor"])
    romfs = heap32_steps(ctx, "WROOM, frozen as CI holds it (ROMFS, 64-bit)", "--romfs")
    if romfs is not None:
        b = romfs["boot"]
        ctx.row("heap32", "WROOM, frozen as CI holds it: at ready", "%d B" % (b["bytes32"] - b["qstr32"]),
                note="64-bit unix port, .mpy run in place from a ROMFS image, qstr pools left out "
                     "(tests/test_budget.py READY_ROMFS64)")
    frozen_targets(ctx)


def heap32_steps(ctx, what, *args):
    """tools/heap32/run.py --json [args]: its steps, or None (a FAILED row says why)."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "heap32" / "run.py"), "--json"] + list(args),
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        ctx.row("heap32", what + " FAILED", r.stderr.strip()[-200:])
        return None
    return json.loads(r.stdout)["steps"]


WORKSET_STEP = 1024  # -X heapsize steps of the working-set search
FIRST_AREA = 57344  # a WROOM's first GC heap area (MICROPY_GC_INITIAL_HEAP_SIZE, 56 KB)


def frozen_targets(ctx):
    """A WROOM's figures, frozen into a 32-bit MicroPython (HEAP32_FROZEN=<it>, built as
    BENCHMARKS.md "Heap" says): at ready, every group, and the working set: the
    smallest heap in which tests/test_workset.py passes on it, as bytes free at ready."""
    exe = os.getenv("HEAP32_FROZEN")
    if not exe:
        ctx.row("heap32", "WROOM, frozen: not measured", "-", note="needs HEAP32_FROZEN=<32-bit build>")
        return
    steps = heap32_steps(ctx, "WROOM, frozen: measurement", "--frozen", exe)
    if steps is None:
        return
    ready = steps["boot"]["bytes32"]
    ctx.row("heap32", "WROOM, frozen: GC heap at ready (32-bit)", "%d B" % ready)
    ctx.row("heap32", "WROOM, frozen: every group loaded (32-bit)", "%d B" % steps["firmware"]["bytes32"])
    need = workset_free(exe)
    if need is None:
        ctx.row("heap32", "WROOM, frozen: working set FAILED", "no heap up to 96 KB served it")
        return
    ctx.row("heap32", "WROOM, frozen: working set beyond ready", "%d B" % need,
            "first heap area %d B" % FIRST_AREA,
            "peak %d B = ready + working set (5 passive links, one SSL, server, CIPSENDL, passthrough)" % (ready + need))
    live_walk(ctx, exe)


def workset_free(exe, lo=48 * 1024, hi=96 * 1024):
    """Bytes free at ready with the smallest -X heapsize (from lo, WORKSET_STEP at a time)
    in which tests/test_workset.py passes on `exe` (the unix personality with a WROOM's
    sizes); None if none up to hi does."""
    import tempfile
    env = dict(os.environ, VBOARD_MICROPYTHON=exe, VBOARD_TARGET="wroom")
    for heap in range(lo, hi + 1, WORKSET_STEP):
        env["VBOARD_HEAP"] = str(heap)
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--board", "unix",
                                "--timeout", "120", "--basetemp", tmp,
                                # the dialogue on the board of the run (the file's other tests bring their own)
                                "tests/test_workset.py::test_five_passive_links_server_and_sendl",
                                "tests/test_workset.py::test_passthrough_both_ways"],
                               cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)
            if r.returncode:
                continue
            for log in pathlib.Path(tmp).glob("vboard*/log.txt"):
                m = re.search(r"at: ready; GC heap \d+ bytes used, (\d+) free", log.read_text())
                if m:
                    return int(m.group(1))
    return None


WALK_HEAP = str(256 * 1024)  # plenty: live bytes do not depend on the heap
WALK_SENDL = 10 * 1024 * 1024  # the 10 MB AT+CIPSENDL
WALK_PASSTHROUGH = 1024 * 1024  # up through passthrough, echoed back down
WALK_SAMPLE_MS = 20  # AT+GCHEAP's sampling while a transfer runs


def has_tls(exe):
    r = subprocess.run([exe, "-c", "import tls"], capture_output=True, timeout=20)
    return r.returncode == 0


def live_walk(ctx, exe):
    """The frozen WROOM's live GC heap (after a collection, 32-bit bytes) step by step, on
    the 32-bit build with a WROOM's sizes (unix personality): at ready, five TCP links
    open, then one of them an SSL link (when the build has TLS), the peak sampled during a
    10 MB AT+CIPSENDL with those links open and during a passthrough transfer. Read
    through a command of the bench's own (tests/board.py GC_HEAP_COMMAND)."""
    import tempfile
    from test_workset import passthrough_both_ways  # the tests' dialogue, its bytes checked
    from tlspeers import Pki, TlsServer, tls_sink
    tls = has_tls(exe)
    with tempfile.TemporaryDirectory() as tmp:
        flash = pathlib.Path(tmp) / "flash"
        flash.mkdir()
        (flash / "user_commands.py").write_text(GC_HEAP_COMMAND)
        extra = ["--board", "unix", "--target", "wroom", "--micropython", exe]
        sinks = TcpServer(ctx.host, sink)
        echoes = TcpServer(ctx.host, echo)
        tls_sinks = TlsServer(ctx.host, Pki(ctx.host).server_ctx(), tls_sink) if tls else None
        try:
            with own_board(flash, pathlib.Path(tmp) / "log.txt", heap=WALK_HEAP, extra=extra) as d:
                d.reset()
                d.ok("ATE0")
                ready = gc_heap(d)[0]
                d.ok('AT+CWJAP="%s","%s"' % (ctx.args.ssid, ctx.args.password), timeout=30)
                d.ok("AT+CIPMUX=1")
                for i in range(5):
                    d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (i, ctx.host, sinks.port), timeout=10)
                links = gc_heap(d)[0]
                if tls:
                    # link 4 again, as an SSL link (AT+CIPSSLCCONF 0): its first use loads the SSL group
                    d.ok("AT+CIPCLOSE=4", timeout=10)
                    d.ok('AT+CIPSTART=4,"SSL","%s",%d' % (ctx.host, tls_sinks.port), timeout=30)
                    with_ssl = gc_heap(d)[0]
                d.ok("AT+GCHEAP=%d" % WALK_SAMPLE_MS)
                d.write(b"AT+CIPSENDL=0,%d\r\n" % WALK_SENDL)
                d.read_until(b">")
                blob = os.urandom(64 * 1024)
                for _ in range(WALK_SENDL // len(blob)):
                    d.ser.write(blob)
                d.read_until(b"SEND OK\r\n", timeout=120)
                sendl = gc_heap(d)[1]
                d.ok("AT+GCHEAP=0")
                d.ok("AT+CIPCLOSE=5", timeout=10)
                d.quiet(0.3)
                closed = gc_heap(d)[0]  # and the peak from here on
                d.ok("AT+GCHEAP=%d" % WALK_SAMPLE_MS)
                passthrough_both_ways(d, ctx.host, echoes.port, WALK_PASSTHROUGH)
                through = gc_heap(d)[1]
                d.ok("AT+GCHEAP=0")
        except AssertionError as e:
            ctx.row("heap32", "WROOM, frozen: live walk FAILED", "-", note=str(e)[:120])
            return
        finally:
            sinks.close()
            echoes.close()
            if tls_sinks:
                tls_sinks.close()
    how = ("32-bit, after a collection (the interpreter's own objects in too; the unix personality "
           "holds ~5.4 KB more at ready than the ESP32 adapter); peaks: %d ms samples" % WALK_SAMPLE_MS)
    ctx.row("heap32", "WROOM, frozen: live at ready (with AT+GCHEAP)", "%d B" % ready, note=how)
    ctx.row("heap32", "WROOM, frozen: live, 5 TCP links open", "%d B" % links, "at ready %d B" % ready,
            "+%d B" % (links - ready))
    if tls:
        ctx.row("heap32", "WROOM, frozen: live, 4 TCP links + 1 SSL link open", "%d B" % with_ssl,
                "at ready %d B" % ready, "+%d B (the SSL link +%d B over a TCP one; the SSL group "
                "loaded; mbedTLS's own buffers are outside the GC heap, as on a chip)" % (
                    with_ssl - ready, with_ssl - links))
    else:
        ctx.row("heap32", "WROOM, frozen: an SSL link", "not measured",
                note="this build has no TLS (tools/heap32/frozen.sh builds it with lib/mbedtls in the source)")
    ctx.row("heap32", "WROOM, frozen: live peak during a 10 MB AT+CIPSENDL", "%d B" % sendl,
            "at ready %d B" % ready, "+%d B (%s open)" % (sendl - ready, "4 TCP + 1 SSL links" if tls
                                                           else "5 TCP links"))
    ctx.row("heap32", "WROOM, frozen: live, every link closed", "%d B" % closed, "at ready %d B" % ready,
            "+%d B (what stays: groups loaded on first use)" % (closed - ready))
    ctx.row("heap32", "WROOM, frozen: live peak during passthrough (1 MiB each way)", "%d B" % through,
            "at ready %d B" % ready, "+%d B" % (through - ready))
