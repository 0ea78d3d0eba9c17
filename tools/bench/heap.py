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
    the same stand-ins, lib/ as .mpy files (what `make deploy` puts on a board).
    Given 32-bit unix builds (tools/heap32/frozen.sh), each target's walk too:
    HEAP32_FROZEN=<lib/at frozen in>, HEAP32_MPY=<nothing frozen: frozen.sh --plain>."""
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
    mpy_targets(ctx)


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


MPY_WORKSET_RANGE = (96 * 1024, 320 * 1024)  # where the .mpy working-set bisection looks
CORE_TARGET = 100 * 1024  # issue 13: a WROOM's .mpy core within one doubling, code included


def mpy_targets(ctx):
    """The .mpy targets (`make deploy` on a stock image) on a 32-bit MicroPython with TLS and
    nothing of ours frozen in (HEAP32_MPY=<it>: tools/heap32/frozen.sh --plain): the WROOM
    and WROVER walks, and the smallest heap that serves the WROOM's core working set
    (tests/test_workset.py, link 2 TCP: the core has no SSL)."""
    exe = os.getenv("HEAP32_MPY")
    if not exe:
        ctx.row("heap32", ".mpy walks: not measured", "-", note="needs HEAP32_MPY=<32-bit build, nothing frozen>")
        return
    probe = subprocess.run([exe, "-c", "import at"], env=dict(os.environ, MICROPYPATH=".frozen"),
                           capture_output=True, timeout=20)
    if probe.returncode == 0:
        # its static qstr pool would hold our names and strings: the .mpy files would look cheaper
        ctx.row("heap32", ".mpy walks: not measured", "-", note="HEAP32_MPY has lib/at frozen in: use --plain")
        return
    live_walk(ctx, exe, "WROOM, .mpy", "wroom", no_frozen=True)
    found = workset_bisect(exe, *MPY_WORKSET_RANGE, no_frozen=True, core=True)
    if found is None:
        ctx.row("heap32", "WROOM, .mpy: core working set FAILED", "no heap up to %d B served it" % MPY_WORKSET_RANGE[1])
    else:
        heap, free = found
        ctx.row("heap32", "WROOM, .mpy: smallest heap serving the core's working set", "%d B" % heap,
                "the core's target %d B" % CORE_TARGET,
                "x%.2f; %d B free at ready there (the unix personality's adapter; bisection, %d B "
                "steps)" % (heap / CORE_TARGET, free, WORKSET_STEP))
    live_walk(ctx, exe, "WROVER, .mpy", "wrover", no_frozen=True)


def workset_run(exe, heap, target="wroom", no_frozen=False, core=False):
    """Bytes free at ready if tests/test_workset.py's dialogue passes on `exe` (the unix
    personality with `target`'s sizes) with this -X heapsize, else None. core: the
    core's set (link 2 TCP, not SSL: the `.mpy` WROOM target)."""
    import tempfile
    env = dict(os.environ, VBOARD_MICROPYTHON=exe, VBOARD_TARGET=target, VBOARD_HEAP=str(heap))
    if no_frozen:
        env["VBOARD_NO_FROZEN"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--board", "unix",
                            "--timeout", "120", "--basetemp", tmp,
                            # the dialogue on the board of the run (the file's other tests bring their own)
                            "tests/test_workset.py::test_five_%s_server_and_sendl"
                            % ("tcp_links" if core else "passive_links"),
                            "tests/test_workset.py::test_passthrough_both_ways"],
                           cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)
        if r.returncode:
            return None
        for log in pathlib.Path(tmp).glob("vboard*/log.txt"):
            m = re.search(r"at: ready; GC heap \d+ bytes used, (\d+) free", log.read_text())
            if m:
                return int(m.group(1))
    return None


def workset_free(exe, lo=48 * 1024, hi=96 * 1024):
    """Bytes free at ready with the smallest -X heapsize (from lo, WORKSET_STEP at a time)
    in which tests/test_workset.py passes on `exe` (the unix personality with a WROOM's
    sizes); None if none up to hi does."""
    for heap in range(lo, hi + 1, WORKSET_STEP):
        free = workset_run(exe, heap)
        if free is not None:
            return free
    return None


def workset_bisect(exe, lo, hi, **kw):
    """(heap, free at ready) at the smallest heap, to WORKSET_STEP, that serves the working
    set, by bisection between lo (assumed to fail) and hi; None if hi does not serve it."""
    free = workset_run(exe, hi, **kw)
    if free is None:
        return None
    best = (hi, free)
    while hi - lo > WORKSET_STEP:
        mid = (lo + hi) // 2 // WORKSET_STEP * WORKSET_STEP
        free = workset_run(exe, mid, **kw)
        if free is None:
            lo = mid
        else:
            hi, best = mid, (mid, free)
    return best


WALK_HEAP = str(256 * 1024)  # plenty: live bytes do not depend on the heap
WALK_HEAP_MPY = str(512 * 1024)  # the same, with the .mpy files' code in the heap
WALK_SENDL = 10 * 1024 * 1024  # the 10 MB AT+CIPSENDL
WALK_PASSTHROUGH = 1024 * 1024  # up through passthrough, echoed back down
WALK_SAMPLE_MS = 20  # AT+GCHEAP's sampling while a transfer runs


def has_tls(exe):
    r = subprocess.run([exe, "-c", "import tls"], capture_output=True, timeout=20)
    return r.returncode == 0


def live_walk(ctx, exe, label="WROOM, frozen", target="wroom", no_frozen=False):
    """A target's live GC heap (after a collection, 32-bit bytes) step by step, on a
    32-bit build with the target's sizes (unix personality): at ready, five TCP links
    open, then one of them an SSL link (when the build has TLS), the peak sampled during a
    10 MB AT+CIPSENDL with those links open and during a passthrough transfer. Read
    through a command of the bench's own (tests/board.py GC_HEAP_COMMAND). The frozen
    image by default; no_frozen: the .mpy files, on a build without lib/at frozen in."""
    import tempfile
    from test_workset import passthrough_both_ways  # the tests' dialogue, its bytes checked
    from tlspeers import Pki, TlsServer, tls_sink
    tls = has_tls(exe)
    with tempfile.TemporaryDirectory() as tmp:
        flash = pathlib.Path(tmp) / "flash"
        flash.mkdir()
        (flash / "user_commands.py").write_text(GC_HEAP_COMMAND)
        extra = ["--board", "unix", "--target", target, "--micropython", exe] + (["--no-frozen"] if no_frozen else [])
        sinks = TcpServer(ctx.host, sink)
        echoes = TcpServer(ctx.host, echo)
        tls_sinks = TlsServer(ctx.host, Pki(ctx.host).server_ctx(), tls_sink) if tls else None
        try:
            with own_board(flash, pathlib.Path(tmp) / "log.txt", heap=WALK_HEAP_MPY if no_frozen else WALK_HEAP,
                           extra=extra) as d:
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
            ctx.row("heap32", label + ": live walk FAILED", "-", note=str(e)[:120])
            return
        finally:
            sinks.close()
            echoes.close()
            if tls_sinks:
                tls_sinks.close()
    how = ("32-bit, after a collection (the interpreter's own objects in too; the unix personality's "
           "adapter, not the ESP32 one: frozen, it holds ~5.4 KB more at ready); peaks: %d ms samples"
           % WALK_SAMPLE_MS)
    ctx.row("heap32", label + ": live at ready (with AT+GCHEAP)", "%d B" % ready, note=how)
    ctx.row("heap32", label + ": live, 5 TCP links open", "%d B" % links, "at ready %d B" % ready,
            "+%d B" % (links - ready))
    if tls:
        ctx.row("heap32", label + ": live, 4 TCP links + 1 SSL link open", "%d B" % with_ssl,
                "at ready %d B" % ready, "+%d B (the SSL link +%d B over a TCP one; the SSL group "
                "loaded; mbedTLS's own buffers are outside the GC heap, as on a chip)" % (
                    with_ssl - ready, with_ssl - links))
    else:
        ctx.row("heap32", label + ": an SSL link", "not measured",
                note="this build has no TLS (tools/heap32/frozen.sh builds it with lib/mbedtls in the source)")
    ctx.row("heap32", label + ": live peak during a 10 MB AT+CIPSENDL", "%d B" % sendl,
            "at ready %d B" % ready, "+%d B (%s open)" % (sendl - ready, "4 TCP + 1 SSL links" if tls
                                                           else "5 TCP links"))
    ctx.row("heap32", label + ": live, every link closed", "%d B" % closed, "at ready %d B" % ready,
            "+%d B (what stays: groups loaded on first use)" % (closed - ready))
    ctx.row("heap32", label + ": live peak during passthrough (1 MiB each way)", "%d B" % through,
            "at ready %d B" % ready, "+%d B" % (through - ready))
