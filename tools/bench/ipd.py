"""Section ipd: +IPD receive (CIPMUX=0) beside the raw TCP->pty copy; the +IPD frame parser."""
import hashlib
import statistics
import threading
import time

from peers import TcpServer
from bench.baseline import BaseCopy
from bench.common import FINAL, Flow, MiB, hold_open, mbps, payload, spread


def parse_ipd(buf, pos, flow, state):
    """Consume "+IPD,[<id>,]<len>[,...]:<data>" frames from buf[pos:] into flow; return the
    new pos. state = [payload still owed, mux, list of the text found between frames]."""
    end = len(buf)
    mv = memoryview(buf)
    try:
        while pos < end:
            need = state[0]
            if need:
                take = min(need, end - pos)
                flow.add(mv[pos:pos + take])
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
            state[0] = int(f[1] if state[1] else f[0])
            if buf[pos:i].strip(b"\r\n"):
                state[2].append(bytes(buf[pos:i][:80]))
            pos = j + 1
        return pos
    finally:
        mv.release()


def fw_ipd(ctx, n, typ="TCP", host=None, wrap=None):
    """One +IPD run: a fresh CIPMUX=0 link of type typ to a peer on host (default ctx.host), the
    peer sends n bytes, the host parses the frames. wrap(conn) makes the peer's end (TLS).
    Returns (MB/s, whole, frames, text found between frames, bytes that arrived, MB/s to the last
    byte that arrived)."""
    w = ctx.wire
    data, want = payload(n, b"ipd")
    go = threading.Event()
    started = [None]
    host = host or ctx.host

    def source(c, srv):
        if wrap is not None:
            c = wrap(c)
        if go.wait(ctx.run_s + 5):
            started[0] = time.perf_counter()
            c.sendall(data)
        hold_open(c, srv)

    srv = TcpServer(host, source)
    try:
        w.ok('AT+CIPSTART="%s","%s",%d' % (typ, host, srv.port), timeout=20)
        srv.wait_conn(5)
        w.quiet(0.05)
        flow = Flow(n)
        state = [0, 0, []]  # owed, mux, text between frames
        frames = 0
        deadline = time.monotonic() + ctx.run_s
        buf = w.buf
        pos = 0
        go.set()
        while not flow.done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            w.read_some(min(left, 0.1))
            pos = parse_ipd(buf, pos, flow, state)
            if pos > 65536:
                frames += buf.count(b"+IPD,", 0, pos)
                del buf[:pos]
                pos = 0
        frames += buf.count(b"+IPD,", 0, pos)
        whole = flow.done.is_set()
        t_end = flow.t_last if whole else time.perf_counter()
        del buf[:pos]
        if whole and flow.digest() != want:
            raise AssertionError("+IPD payload: SHA-256 mismatch")
        if not whole and flow.digest() != hashlib.sha256(data[:flow.n]).hexdigest():
            raise AssertionError("+IPD payload: the %d bytes that arrived differ from what was sent" % flow.n)
        w.write(b"AT+CIPCLOSE\r\n")
        w.read_until(FINAL, 10)
        w.quiet(0.1)
        t0 = started[0] or t_end
        return (mbps(flow.n, t_end - t0), whole, frames, state[2], flow.n,
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
