"""Section sendl: AT+CIPSENDL into a TCP sink beside the raw pty->TCP copy."""
import re
import statistics
import threading
import time

from board import Timeout

from bench.baseline import BaseCopy
from bench.common import Flow, SEND_OK, Sink, base_row, mbps, mib, payload, plus, rate_note


def fw_sendl(ctx, sink, n, typ="TCP"):
    """One AT+CIPSENDL=<n> run into a fresh CIPMUX=0 link of type typ: a thread writes, this one
    reads the reports. Returns (MB/s, whole, reports, seconds to SEND OK)."""
    w = ctx.wire
    data, want = payload(n, b"sendl")
    flow = sink.flow = Flow(n)
    w.ok('AT+CIPSTART="%s","%s",%d' % (typ, ctx.host, sink.port), timeout=20)
    w.write(b"AT+CIPSENDL=%d\r\n" % n)
    r = w.read_until(b">", 5)
    if r != b"\r\nOK\r\n\r\n>":
        raise AssertionError("AT+CIPSENDL -> %r" % r)
    stop = threading.Event()
    err = []
    t0 = time.perf_counter()

    def writer():
        try:
            w.write(data, 10, stop=stop)
        except Exception as e:  # noqa: BLE001  (reported below)
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    end = re.compile(rb"\r\n(SEND OK|SEND FAIL|SEND CANCELLED)\r\n")
    whole = True
    try:
        r = w.read_until(end, ctx.run_s + 1)
    except Timeout:
        whole = False
        stop.set()
        t.join(5)
        plus(w)
        r = w.read_until(end, 10)
    t_ok = time.perf_counter() - t0
    t.join(5)
    if err:
        raise err[0]
    reports = [(int(a), int(b)) for a, b in re.findall(rb"\+CIPSENDL:(\d+),(\d+)\r\n", r)]
    if whole:
        if not r.endswith(SEND_OK):
            raise AssertionError("AT+CIPSENDL=%d ended %r" % (n, r[-200:]))
        if not reports or reports[-1][0] != n or any(s > g for s, g in reports):
            raise AssertionError("AT+CIPSENDL reports: %r" % reports)
        if not flow.done.wait(10):
            raise Timeout("the sink got %d of %d bytes" % (flow.n, n))
        if flow.digest() != want:
            raise AssertionError("AT+CIPSENDL: SHA-256 mismatch at the sink")
        rate = mbps(n, flow.t_last - t0)
    else:
        rate = mbps(flow.n, (flow.t_last or time.perf_counter()) - t0)
    w.ok("AT+CIPCLOSE", timeout=5)
    w.quiet(0.05)
    return rate, whole, len(reports), t_ok


def bench_sendl(ctx):
    """AT+CIPSENDL into a local TCP sink (CIPMUX=0, AT+CIPSENDLCFG=1048576); ceiling: the raw pty->TCP copy."""
    w = ctx.wire
    n = ctx.args.bytes
    copy = ctx.baseline(BaseCopy)
    sink = Sink(ctx.host)
    w.ok("AT+CIPMUX=0")
    w.ok("AT+CIPSENDLCFG=1048576")
    try:
        raw, runs = [], []
        for _ in range(ctx.args.reps):
            raw.append(copy.up(n))
            runs.append(fw_sendl(ctx, sink, n))
        up = base_row(ctx, "raw copy pty->TCP (sendl)", raw, n)
        rate = statistics.median(r[0] for r in runs)
        note = rate_note(runs, mib(n))[:-1] + "; %d +CIPSENDL reports per run)" % runs[-1][2]
        ctx.row("sendl", "CIPSENDL", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % up,
                "%.1f%%" % (100 * rate / up), note)
    finally:
        sink.close()
        w.ok("AT+CIPSENDLCFG=1024,2920")
