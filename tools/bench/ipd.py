"""Section ipd: +IPD receive (CIPMUX=0) beside the raw TCP->pty copy; the +IPD frame parser."""
import hashlib
import statistics
import threading
import time

from board import FINAL
from peers import TcpServer, sink

from bench.baseline import BaseCopy
from bench.common import Flow, MiB, mbps, payload, spread


def parse_ipd(buf, pos, flows, state):
    """Consume "+IPD,[<id>,]<len>[,...]:<data>" frames from buf[pos:]; return the new pos. flows:
    the Flow of a CIPMUX=0 link, or {link id: Flow} with CIPMUX=1. state = [payload still owed,
    the flow it goes to, list of the text found between frames, frames]."""
    mux = isinstance(flows, dict)
    end = len(buf)
    mv = memoryview(buf)
    try:
        while pos < end:
            need = state[0]
            if need:
                take = min(need, end - pos)
                state[1].add(mv[pos:pos + take])
                state[0] = need - take
                pos += take
                continue
            i = buf.find(b"+IPD,", pos)
            if i < 0:
                return max(pos, end - 4)  # keep a possible partial "+IPD"
            j = buf.find(b":", i, i + 80)
            if j < 0:
                if end - i > 80:
                    raise AssertionError("bad +IPD header: %r" % bytes(buf[i:i + 80]))
                return i
            f = bytes(buf[i + 5:j]).split(b",")
            if mux:
                flow = flows.get(int(f[0]))
                if flow is None:
                    raise AssertionError("+IPD for link %s, which no client of this run has" % f[0].decode())
                state[0], state[1] = int(f[1]), flow
            else:
                state[0], state[1] = int(f[0]), flows
            state[3] += 1
            if buf[pos:i].strip(b"\r\n"):
                state[2].append(bytes(buf[pos:i][:80]))
            pos = j + 1
        return pos
    finally:
        mv.release()


def read_frames(w, flows, until):
    """Read the port, its +IPD frames parsed into flows (as parse_ipd's), until every flow is
    complete or `until` (time.monotonic()) passes. Returns parse_ipd's state."""
    if isinstance(flows, dict):
        def complete():
            return all(f.done.is_set() for f in flows.values())
    else:
        complete = flows.done.is_set
    state = [0, None, [], 0]
    buf = w.buf
    pos = 0
    while not complete():
        left = until - time.monotonic()
        if left <= 0:
            break
        w.read_some(min(left, 0.1))
        pos = parse_ipd(buf, pos, flows, state)
        if pos > 65536:
            del buf[:pos]
            pos = 0
    del buf[:pos]
    return state


def fw_ipd(ctx, n, typ="TCP", host=None, server=TcpServer):
    """One +IPD run: a fresh CIPMUX=0 link of type typ to a peer on host (default ctx.host), the
    peer sends n bytes, the host parses the frames. server(host, handler) makes the peer (TcpServer;
    BenchPki.tls_server for "SSL").
    Returns (MB/s, whole, frames, text found between frames, bytes that arrived, MB/s to the last
    byte that arrived)."""
    w = ctx.wire
    data, want = payload(n, b"ipd")
    go = threading.Event()
    started = [None]
    host = host or ctx.host

    def source(c, srv):
        if go.wait(ctx.run_s + 5):
            started[0] = time.perf_counter()
            c.sendall(data)
        sink(c, srv)

    srv = server(host, source)
    try:
        w.ok('AT+CIPSTART="%s","%s",%d' % (typ, host, srv.port), timeout=20)
        srv.wait_conn(5)
        w.quiet(0.05)
        flow = Flow(n)
        deadline = time.monotonic() + ctx.run_s
        go.set()
        state = read_frames(w, flow, deadline)
        whole = flow.done.is_set()
        t_end = flow.t_last if whole else time.perf_counter()
        if whole and flow.digest() != want:
            raise AssertionError("+IPD payload: SHA-256 mismatch")
        if not whole and flow.digest() != hashlib.sha256(data[:flow.n]).hexdigest():
            raise AssertionError("+IPD payload: the %d bytes that arrived differ from what was sent" % flow.n)
        w.write(b"AT+CIPCLOSE\r\n")
        w.read_until(FINAL, 10)
        w.quiet(0.1)
        t0 = started[0] or t_end
        return (mbps(flow.n, t_end - t0), whole, state[3], state[2], flow.n,
                mbps(flow.n, (flow.t_last or t_end) - t0))
    finally:
        srv.close()


def bench_ipd(ctx):
    """+IPD receive from a local TCP source (CIPMUX=0); ceiling: the raw TCP->pty copy."""
    n, reps = ctx.args.bytes, ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    ctx.wire.ok("AT+CIPMUX=0")
    raw, runs = [], []
    for _ in range(reps):
        raw.append(copy.down(n))
        runs.append(fw_ipd(ctx, n))
    down = ctx.base["down"] = statistics.median(raw)
    ctx.row("baseline", "raw copy TCP->pty", "%.1f MB/s" % down,
            note="(%s; %d MiB each, SHA-256 ok)" % (spread(raw), n // MiB))
    rate = statistics.median(r[0] for r in runs)
    whole = all(r[1] for r in runs)
    frames = runs[-1][2]
    note = "(%s; %s; %d frames, %.0f B/frame)" % (
        spread([r[0] for r in runs]), "%d MiB each, SHA-256 ok" % (n // MiB) if whole else "time limit hit",
        frames, n / max(1, frames))
    junk = [j for r in runs for j in r[3]]
    if junk:
        note += " UNEXPECTED text between frames: %r" % junk[:3]
    ctx.row("ipd", "+IPD receive", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % down,
            "%.1f%%" % (100 * rate / down), note)
