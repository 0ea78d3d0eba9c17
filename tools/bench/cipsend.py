"""Section cipsend: AT+CIPSEND into a TCP sink beside the raw copy and a minimal CIPSEND loop."""
import statistics
import time

from board import FINAL, Timeout

from bench.baseline import BaseCopy, BaselineProc
from bench.common import Flow, MiB, SEND_OK, Sink, mbps, mib, payload, spread


CIPSEND_SIZES = (2048, 8192)  # 2048 is the figure asked for; 8192 (the largest) for contrast


def cipsend_loop(w, size, data, deadline):
    """AT+CIPSEND=<size> / '>' / data / SEND OK until data is sent or the deadline.
    Returns (bytes sent, start time, per-send ms command -> '>', per-send ms data -> SEND OK)."""
    total = len(data)
    cmd = b"AT+CIPSEND=%d\r\n" % size
    mv = memoryview(data)
    sent = 0
    s1 = s2 = 0.0
    perf = time.perf_counter
    t0 = perf()
    while sent < total and time.monotonic() < deadline:
        n = min(size, total - sent)
        a = perf()
        w.write(cmd if n == size else b"AT+CIPSEND=%d\r\n" % n)
        w.read_until(b">", 5)
        b = perf()
        w.write(mv[sent:sent + n])
        r = w.read_until(FINAL, 5)
        c = perf()
        if not r.endswith(SEND_OK):
            raise AssertionError("CIPSEND -> %r" % r[-200:])
        s1 += b - a
        s2 += c - b
        sent += n
    k = max(1, (sent + size - 1) // size)
    return sent, t0, s1 / k * 1000, s2 / k * 1000


def cipsend_finish(flow, want, sent, t0):
    """Wait until the sink has all that was sent; return (MB/s, whole)."""
    if sent == flow.total:
        if not flow.done.wait(10):
            raise Timeout("the sink got %d of %d bytes" % (flow.n, flow.total))
        if flow.digest() != want:
            raise AssertionError("sink: SHA-256 mismatch")
        return mbps(sent, flow.t_last - t0), True
    return mbps(sent, time.perf_counter() - t0), False  # out of time: over what was acknowledged


class BaseCipsend:
    """The least AT+CIPSEND can cost: the same host loop against a minimal responder."""

    def __init__(self, ctx):
        self.sink = Sink("127.0.0.1")
        self.bp = BaselineProc("cipsend", "127.0.0.1", self.sink.port)
        self.sink.srv.wait_conn(10)
        self.wire = self.bp.open()
        self.ctx = ctx

    def run(self, size, n):
        """Returns (MB/s, whole, ms to '>', ms to SEND OK)."""
        data, want = payload(n, b"cipsend")
        flow = self.sink.flow = Flow(n)
        sent, t0, s1, s2 = cipsend_loop(self.wire, size, data, time.monotonic() + self.ctx.run_s)
        rate, whole = cipsend_finish(flow, want, sent, t0)
        return rate, whole, s1, s2

    def close(self):
        self.bp.close()
        self.sink.close()


def fw_cipsend(ctx, sink, size, n, typ="TCP", host=None):
    """One firmware CIPSEND run over a fresh CIPMUX=0 link of type typ ("TCP", "SSL", "TCPv6") to
    sink on host (default ctx.host); (MB/s, whole, ms to '>', ms to SEND OK)."""
    w = ctx.wire
    data, want = payload(n, b"cipsend")
    flow = sink.flow = Flow(n)
    w.ok('AT+CIPSTART="%s","%s",%d' % (typ, host or ctx.host, sink.port), timeout=20)
    sent, t0, s1, s2 = cipsend_loop(w, size, data, time.monotonic() + ctx.run_s)
    rate, whole = cipsend_finish(flow, want, sent, t0)
    w.ok("AT+CIPCLOSE", timeout=5)
    w.quiet(0.05)
    return rate, whole, s1, s2


def bench_cipsend(ctx):
    """CIPSEND into a local TCP sink (CIPMUX=0); ceilings: the raw pty->TCP copy and a minimal CIPSEND loop."""
    n, reps = ctx.args.send_bytes, ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    proto = ctx.baseline(BaseCipsend)
    sink = Sink(ctx.host)
    try:
        ctx.wire.ok("AT+CIPMUX=0")
        raw = []
        for size in CIPSEND_SIZES:
            p_runs, f_runs = [], []
            for _ in range(reps):
                if size == CIPSEND_SIZES[0]:
                    raw.append(copy.up(ctx.args.bytes))
                p_runs.append(proto.run(size, n))
                f_runs.append(fw_cipsend(ctx, sink, size, n))
            if size == CIPSEND_SIZES[0]:
                ctx.base["up"] = statistics.median(raw)
                ctx.row("baseline", "raw copy pty->TCP", "%.1f MB/s" % ctx.base["up"],
                        note="(%s; %d MiB each, SHA-256 ok)" % (spread(raw), ctx.args.bytes // MiB))
            p = statistics.median(r[0] for r in p_runs)
            f = statistics.median(r[0] for r in f_runs)
            up = ctx.base["up"]
            ctx.base["cipsend%d" % size] = f
            ctx.row("baseline", "minimal CIPSEND loop %dB" % size, "%.2f MB/s" % p, note=cipsend_note(p_runs, n))
            ctx.row("cipsend", "CIPSEND %dB" % size, "%.2f MB/s" % f, "raw copy %.1f MB/s" % up,
                    "%.1f%%" % (100 * f / up), cipsend_note(f_runs, n))
            ctx.row("cipsend", "CIPSEND %dB vs minimal loop" % size, "%.2f MB/s" % f,
                    "minimal CIPSEND loop %.2f MB/s" % p, "%.0f%%" % (100 * f / p))
    finally:
        sink.close()


def cipsend_note(runs, n):
    whole = all(r[1] for r in runs)
    return "(%s; %s; per send %.3f ms command->'>' + %.3f ms data->SEND OK)" % (
        spread([r[0] for r in runs], "%.2f"),
        "%s, SHA-256 ok" % mib(n) if whole else "time limit hit: rate over what was acknowledged",
        statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs))
