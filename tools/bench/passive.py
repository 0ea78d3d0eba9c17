"""Section passive: AT+CIPRECVDATA reads beside the raw copy and a minimal CIPRECVDATA loop."""
import re
import statistics
import threading
import time

from peers import TcpServer, sink

from bench.baseline import BaseCopy, BaselineProc
from bench.common import Flow, JobPeer, OK, base_row, mbps, mib, payload, rate_note, send_all


class BaseRecvdata:
    """The least AT+CIPRECVDATA can cost: the same host loop against a minimal responder."""

    def __init__(self, ctx):
        self.peer = JobPeer("127.0.0.1")
        self.bp = BaselineProc("recvdata", "127.0.0.1", self.peer.port)
        self.peer.srv.wait_conn(10)
        self.wire = self.bp.open()
        self.ctx = ctx

    def run(self, n, chunk):
        """Returns (MB/s, whole)."""
        data, want = payload(n, b"passive")
        flow = Flow(n)
        started = [None]
        until = time.monotonic() + self.ctx.run_s
        self.peer.jobs.put(("send", data, started, until + 2))
        cmd = b"AT+CIPRECVDATA=0,%d\r\n" % chunk
        recvdata_drain(self.wire, cmd, flow, until)
        whole = flow.done.is_set()
        got, t_end = flow.n, flow.t_last
        if not whole:  # read the rest, untimed, so that it does not spill into the next run
            recvdata_drain(self.wire, cmd, flow, time.monotonic() + 10)
        if flow.digest() != want:
            raise AssertionError("minimal CIPRECVDATA loop: SHA-256 mismatch")
        return mbps(got, t_end - started[0]), whole

    def close(self):
        self.bp.close()
        self.peer.close()


RECVDATA_ANSWER = re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:(\d+),")


def recvdata_drain(w, cmd, flow, until, notice=None):
    """Read flow.total bytes with `cmd` (AT+CIPRECVDATA=...) as a host would: read while
    data is there; when the answer is ERROR (nothing buffered), wait for the next
    `notice` (+IPD,<id>,<len>) unless one came already. Returns (reads, empty reads)."""
    reads = empty = 0
    while not flow.done.is_set():
        left = until - time.monotonic()
        if left <= 0:
            break
        w.write(cmd)
        r = w.read_until(RECVDATA_ANSWER, 5)
        if r.endswith(b"ERROR\r\n"):
            empty += 1
            if notice is not None and not notice.search(r):
                w.read_until(notice, max(0.1, until - time.monotonic()))
            continue
        k = int(RECVDATA_ANSWER.search(r).group(1))
        flow.add(w.read_exactly(k, 5))
        w.read_until(OK, 5)
        reads += 1
    return reads, empty


def fw_passive(ctx, n, chunk):
    """One passive run: link 0 in passive mode (CIPMUX=1), the peer sends n bytes, the host reads them
    with AT+CIPRECVDATA=0,<chunk>. Returns (MB/s, whole, reads, empty reads)."""
    w = ctx.wire
    data, want = payload(n, b"passive")
    go = threading.Event()
    started = [None]

    def source(c, srv):
        if go.wait(ctx.run_s + 5):
            started[0] = time.perf_counter()
            send_all(c, data, time.monotonic() + ctx.run_s + 2)
        sink(c, srv)

    srv = TcpServer(ctx.host, source)
    try:
        w.ok('AT+CIPSTART=0,"TCP","%s",%d' % (ctx.host, srv.port), timeout=10)
        srv.wait_conn(5)
        w.quiet(0.05)
        flow = Flow(n)
        until = time.monotonic() + ctx.run_s
        go.set()
        reads, empty = recvdata_drain(w, b"AT+CIPRECVDATA=0,%d\r\n" % chunk, flow, until,
                                      re.compile(rb"\+IPD,0,\d+\r\n"))
        whole = flow.done.is_set()
        if whole and flow.digest() != want:
            raise AssertionError("passive receive: SHA-256 mismatch")
        t_end = flow.t_last if whole else time.perf_counter()
        r = w.cmd("AT+CIPCLOSE=0", 10)
        if not r.endswith(OK):
            raise AssertionError("AT+CIPCLOSE=0 -> %r" % r[-200:])
        w.quiet(0.05)
        return mbps(flow.n, t_end - (started[0] or t_end)), whole, reads, empty
    finally:
        srv.close()


def bench_passive(ctx):
    """Passive receive (CIPRECVTYPE=0,1; CIPRECVDATA=0,2048); ceilings: raw TCP->pty copy, minimal CIPRECVDATA loop."""
    w = ctx.wire
    n = ctx.args.send_bytes
    copy = ctx.baseline(BaseCopy)
    proto = ctx.baseline(BaseRecvdata)
    w.ok("AT+CIPMUX=1")
    w.ok("AT+CIPRECVTYPE=0,1")
    try:
        raw, mins, runs = [], [], []
        for _ in range(ctx.args.reps):
            raw.append(copy.down(n))
            mins.append(proto.run(n, 2048))
            runs.append(fw_passive(ctx, n, 2048))
        dn = base_row(ctx, "raw copy TCP->pty (passive)", raw, n)
        p = statistics.median(r[0] for r in mins)
        ctx.row("baseline", "minimal CIPRECVDATA loop 2048B", "%.2f MB/s" % p, note=rate_note(mins, mib(n)))
        rate = statistics.median(r[0] for r in runs)
        per_read = statistics.median(2048 / (r[0] * 1e6) * 1000 for r in runs)
        note = rate_note(runs, mib(n))[:-1] + "; %.3f ms per 2048-byte read; last run %d reads, %d answered ERROR)" % (
            per_read, runs[-1][2], runs[-1][3])
        ctx.row("passive", "passive receive, CIPRECVDATA 2048B", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * rate / dn), note)
        ctx.row("passive", "passive receive vs minimal loop", "%.2f MB/s" % rate,
                "minimal CIPRECVDATA loop %.2f MB/s" % p, "%.0f%%" % (100 * rate / p))
    finally:
        w.ok("AT+CIPRECVTYPE=0,0")
        w.ok("AT+CIPMUX=0")
