"""Section server: AT+CIPSERVER with 5 host clients, +IPD from all and CIPSEND=<id> round-robin."""
import re
import select
import socket
import statistics
import threading
import time

from board import FINAL, Timeout
from peers import free_port

from bench.baseline import BaseCopy
from bench.cipsend import BaseCipsend, cipsend_note
from bench.common import Flow, MiB, SEND_OK, base_row, mbps, payload, rate_note, send_all
from bench.ipd import read_frames


SERVER_CLIENTS = 5


class Client:
    """A host client of the board's server: a reader thread hashes what arrives into .flow (its
    socket stays blocking: fw_server_rx's threads send on it with MSG_DONTWAIT)."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=5)
        self.sock.settimeout(None)
        self.flow = None
        self.stop = False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        c = self.sock
        while not self.stop:
            try:
                if not select.select([c], [], [], 0.1)[0]:
                    continue
                d = c.recv(1 << 20)
            except (OSError, ValueError):
                return
            if not d:
                return
            if self.flow is not None:
                self.flow.add(d)

    def close(self):
        self.stop = True  # the reader sees it within 0.1 s, or an error on the closed socket
        self.sock.close()


def fw_server_rx(ctx, clients, per):
    """The 5 clients send `per` bytes each at once; the host demultiplexes the +IPD frames.
    Returns (MB/s aggregate, whole, frames, text between frames)."""
    w = ctx.wire
    flows, wants, datas = {}, {}, {}
    for lid in clients:
        datas[lid], wants[lid] = payload(per, b"srv%d" % lid)
        flows[lid] = Flow(per)
    until = time.monotonic() + ctx.run_s
    go = threading.Event()
    started = [None]

    def push(lid):
        go.wait(5)
        if started[0] is None:
            started[0] = time.perf_counter()
        send_all(clients[lid].sock, datas[lid], until + 1)

    threads = [threading.Thread(target=push, args=(lid,), daemon=True) for lid in clients]
    for t in threads:
        t.start()
    go.set()
    state = read_frames(w, flows, until)
    whole = all(f.done.is_set() for f in flows.values())
    for t in threads:
        t.join(2)
    if whole:
        for lid, f in flows.items():
            if f.digest() != wants[lid] or f.n != per:
                raise AssertionError("server +IPD, link %d: SHA-256 mismatch (%d of %d bytes)" % (lid, f.n, per))
        t_end = max(f.t_last for f in flows.values())
    else:
        t_end = time.perf_counter()
        # Out of time: what the clients still send must not spill into the next run.
        stop = time.monotonic() + 15
        while w.quiet(0.3) and time.monotonic() < stop:
            pass
    total = sum(f.n for f in flows.values())
    return mbps(total, t_end - started[0]), whole, state[3], state[2], total


def fw_server_tx(ctx, clients, per, size):
    """AT+CIPSEND=<id>,<size> round-robin over the clients, `per` bytes each.
    Returns (MB/s aggregate, whole, sends)."""
    w = ctx.wire
    lids = sorted(clients)
    datas, wants = {}, {}
    for lid in lids:
        datas[lid], wants[lid] = payload(per, b"stx%d" % lid)
        clients[lid].flow = Flow(per)
    mvs = {lid: memoryview(datas[lid]) for lid in lids}
    until = time.monotonic() + ctx.run_s
    sends = 0
    off = 0
    t0 = time.perf_counter()
    while off < per and time.monotonic() < until:
        n = min(size, per - off)
        for lid in lids:
            w.write(b"AT+CIPSEND=%d,%d\r\n" % (lid, n))
            w.read_until(b">", 5)
            w.write(mvs[lid][off:off + n])
            r = w.read_until(FINAL, 5)
            if not r.endswith(SEND_OK):
                raise AssertionError("AT+CIPSEND=%d,%d -> %r" % (lid, n, r[-200:]))
            sends += 1
        off += n
    whole = off == per
    flows = [clients[lid].flow for lid in lids]
    if whole:
        for lid in lids:
            f = clients[lid].flow
            if not f.done.wait(10):
                raise Timeout("client of link %d got %d of %d bytes" % (lid, f.n, per))
            if f.digest() != wants[lid]:
                raise AssertionError("client of link %d: SHA-256 mismatch" % lid)
        t_end = max(f.t_last for f in flows)
        total = per * len(lids)
    else:
        t_end = time.perf_counter()
        total = off * len(lids)
    for lid in lids:
        clients[lid].flow = None
    return mbps(total, t_end - t0), whole, sends


def bench_server(ctx):
    """Server, 5 clients (CIPMUX=1): +IPD from all, CIPSEND=<id>,2048 round-robin; ceilings: raw copies, minimal loop."""
    w = ctx.wire
    k = SERVER_CLIENTS
    per_rx = ctx.args.bytes // k
    per_tx = ctx.args.send_bytes // k
    reps = ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    proto = ctx.baseline(BaseCipsend)
    if ctx.args.port:  # a real board: its own address, from AT+CIPSTA?
        m = re.search(rb'\+CIPSTA:ip:"([^"]+)"', w.ok("AT+CIPSTA?"))
        board = m.group(1).decode()
        port = 3333
    else:  # the virtual board listens on this host
        board = ctx.host
        port = free_port(ctx.host)
    w.ok("AT+CIPMUX=1")
    w.ok("AT+CIPSERVER=1,%d" % port)
    opened = []
    try:
        clients, opened = server_clients(ctx, board, port, k)
        raw_dn, raw_up, rx, tx = [], [], [], []
        for _ in range(reps):
            raw_dn.append(copy.down(per_rx * k))
            rx.append(fw_server_rx(ctx, clients, per_rx))
        mins = []
        for _ in range(reps):
            raw_up.append(copy.up(per_tx * k))
            mins.append(proto.run(2048, per_tx * k))
            tx.append(fw_server_tx(ctx, clients, per_tx, 2048))
        dn = base_row(ctx, "raw copy TCP->pty (server rx)", raw_dn, per_rx * k)
        up = base_row(ctx, "raw copy pty->TCP (server tx)", raw_up, per_tx * k)
        rate = statistics.median(r[0] for r in rx)
        note = rate_note(rx, "%d clients x %.1f MiB" % (k, per_rx / MiB))
        note = note[:-1] + "; last run %d frames, %.0f B/frame)" % (rx[-1][2], rx[-1][4] / max(1, rx[-1][2]))
        junk = [j for r in rx for j in r[3]]
        if junk:
            note += " UNEXPECTED text between frames: %r" % junk[:3]
        ctx.row("server", "server +IPD receive, 5 clients", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * rate / dn), note)
        p = statistics.median(r[0] for r in mins)
        ctx.row("baseline", "minimal CIPSEND loop 2048B (server tx)", "%.2f MB/s" % p,
                note=cipsend_note(mins, per_tx * k))
        rate = statistics.median(r[0] for r in tx)
        note = rate_note(tx, "%d clients x %.1f MiB" % (k, per_tx / MiB))
        one = ctx.base.get("cipsend2048")
        if one:
            note = note[:-1] + "; one link with CIPMUX=0 earlier in this run: %.2f MB/s)" % one
        ctx.row("server", "server CIPSEND 2048B round-robin, 5 clients", "%.2f MB/s" % rate,
                "raw copy %.1f MB/s" % up, "%.1f%%" % (100 * rate / up), note)
        ctx.row("server", "server CIPSEND 2048B round-robin vs minimal loop", "%.2f MB/s" % rate,
                "minimal CIPSEND loop %.2f MB/s" % p, "%.0f%%" % (100 * rate / p))
    finally:
        server_off(w, opened)


def server_off(w, opened):
    """AT+CIPSERVER=0,1 (which closes every link), the clients closed, CIPMUX=0 again."""
    w.write(b"AT+CIPSERVER=0,1\r\n")
    try:
        w.read_until(FINAL, 10)
    finally:
        for c in opened:
            c.close()
        w.quiet(0.2)
        w.ok("AT+CIPMUX=0")


def server_clients(ctx, board, port, k):
    """k host clients of the board's server (AT+CIPSERVER already on): {link id: Client}, and
    every Client opened (to close)."""
    w = ctx.wire
    clients, opened = {}, []
    for _ in range(k):
        c = Client((board, port))
        opened.append(c)
        r = w.read_until(re.compile(rb"(\d),CONNECT\r\n"), 5)
        lid = int(re.search(rb"(\d),CONNECT\r\n$", r).group(1))
        if lid in clients:
            raise AssertionError("two clients on link %d" % lid)
        clients[lid] = c
    w.quiet(0.05)
    return clients, opened
