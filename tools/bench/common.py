"""What every section measures with: the board's port (Wire), round trips, transfers (Flow,
Sink, JobPeer, pipe_up/pipe_down, latency_up), payloads, the run's context (Ctx) and the
report's notes."""
import hashlib
import os
import queue
import select
import socket
import statistics
import sys
import threading
import time

import serial

from board import Dut, Timeout
from peers import TcpServer


MiB = 1 << 20
OK = b"\r\nOK\r\n"
SEND_OK = b"\r\nSEND OK\r\n"


class Wire(Dut):
    """tests/board.py's Dut on a serial port (a pty path, a device, or a pyserial URL) read
    and written as directly as possible: os.read/os.write on its fd with poll, so that the
    host adds as little as it can to what is measured (Dut reads through pyserial, 50 ms a
    wait). Dut's read_until, read_exactly, quiet, cmd and ok run on it as they are."""

    def __init__(self, url, baud=115200):
        super().__init__(serial.serial_for_url(url, baud, timeout=0))
        try:
            self.fd = self.ser.fileno()
        except Exception:
            self.fd = None  # a URL without an fd (socket://, rfc2217://): through pyserial
        if self.fd is not None:
            os.set_blocking(self.fd, False)
            self._pin = select.poll()
            self._pin.register(self.fd, select.POLLIN)
            self._pout = select.poll()
            self._pout.register(self.fd, select.POLLOUT)

    def close(self):
        try:
            self.ser.close()
        except Exception:
            pass

    def write(self, data, timeout=10.0, until=None, stop=None):
        """Write all of data; Timeout when the port takes nothing for `timeout` seconds.
        With `until` (a time.monotonic() deadline) or `stop` (an Event), stop early
        instead; returns the number of bytes written."""
        if isinstance(data, str):
            data = data.encode()
        if self.fd is None:
            self.ser.write(data)
            self.ser.flush()
            return len(data)
        mv = memoryview(data)
        total = len(mv)
        deadline = None
        step = 1 << 16 if until is not None or stop is not None else total
        while mv:
            if until is not None and time.monotonic() >= until or stop is not None and stop.is_set():
                break
            try:
                n = os.write(self.fd, mv[:step])
            except BlockingIOError:
                n = 0
            if n:
                mv = mv[n:]
                deadline = None
                continue
            if deadline is None:
                deadline = time.monotonic() + timeout
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("the port took no input for %.1fs" % timeout)
            self._pout.poll(min(left, 0.1) * 1000)
        return total - len(mv)

    def read_some(self, timeout):
        """Append what arrives within timeout (seconds) to self.buf; return the count."""
        if self.fd is None:
            self.ser.timeout = max(timeout, 0)
            d = self.ser.read(max(1, self.ser.in_waiting))
            self.buf += d
            return len(d)
        if not self._pin.poll(max(timeout, 0) * 1000):
            return 0
        try:
            d = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return 0
        self.buf += d
        return len(d)

    def _fill(self, deadline):
        """Dut's one read step (its reads wait in it): at most 0.1 s, False once the deadline passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.read_some(min(left, 0.1))
        return True


def round_trips(wire, n, line=b"AT\r\n", timeout=2.0):
    """Send line n times, each after the previous OK; return the round trips in seconds."""
    out = []
    perf = time.perf_counter
    wire.buf.clear()
    if wire.fd is None:
        for _ in range(n):
            t0 = perf()
            wire.write(line)
            wire.read_until(OK, timeout)
            out.append(perf() - t0)
        return out
    fd = wire.fd
    poll = wire._pin.poll
    ms = timeout * 1000
    for _ in range(n):
        t0 = perf()
        os.write(fd, line)
        got = b""
        while OK not in got:
            if not poll(ms):
                raise Timeout("no OK within %.1fs (got %r)" % (timeout, got))
            try:
                got += os.read(fd, 4096)
            except BlockingIOError:
                pass
        out.append(perf() - t0)
        if not got.endswith(OK):
            raise AssertionError("unexpected bytes around OK: %r" % got)
    return out


def stats_ms(samples):
    """(median, p99) in milliseconds."""
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    return statistics.median(s) * 1000, p99 * 1000


class Flow:
    """One measured transfer: counts and hashes bytes, notes the last arrival."""

    def __init__(self, total, mark=None):
        self.total = total
        self.n = 0
        self.h = hashlib.sha256()
        self.t_last = None
        self.mark = mark  # note when this many bytes are in (t_mark)
        self.t_mark = None
        self.done = threading.Event()

    def add(self, data):
        self.h.update(data)
        self.n += len(data)
        self.t_last = time.perf_counter()
        if self.mark is not None and self.t_mark is None and self.n >= self.mark:
            self.t_mark = self.t_last
        if self.n >= self.total:
            self.done.set()

    def digest(self):
        return self.h.hexdigest()


class Sink:
    """A TCP peer that reads every connection into the current flow. server(host, handler)
    makes the peer: tests/peers.py's TcpServer, or a tests/tlspeers.py TlsServer for TLS
    (ssl_links.BenchPki.tls_server)."""

    def __init__(self, host, server=TcpServer):
        self.flow = None
        self.srv = server(host, self._handler)
        self.port = self.srv.port

    def _handler(self, c, srv):
        c.settimeout(0.2)
        recv_flow(c, lambda: self.flow, lambda: not srv._stop)

    def close(self):
        self.srv.close()


def timed_out(e):
    return isinstance(e, TimeoutError) or "timed out" in str(e)


def recv_flow(s, flow, going):
    """Read a peer socket (with a timeout) into flow() (None: read and drop) while
    going(); False once the stream ended or failed."""
    while going():
        try:
            d = s.recv(1 << 20)
        except OSError as e:
            if timed_out(e):
                continue
            return False
        if not d:
            return False
        f = flow()
        if f is not None:
            f.add(d)
    return True


def read_raw(wire, flow, deadline):
    """Read the port into flow until it is complete or the deadline passes."""
    buf = wire.buf
    if buf:
        flow.add(bytes(buf))
        buf.clear()
    while not flow.done.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if wire.read_some(min(left, 0.1)):
            flow.add(bytes(buf))
            buf.clear()
    return True


def mbps(nbytes, seconds):
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


def spread(values, fmt="%.1f"):
    """How a median was made: "median of 5: 71.0-130.2"."""
    return ("median of %d: " + fmt + "-" + fmt) % (len(values), min(values), max(values))


def payload_of(n, seed=b"bench"):
    """n pseudo-random bytes, the same on every run."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block * 16
    return bytes(out[:n])


_payloads: dict = {}


def payload(n, seed=b"bench"):
    """payload_of, cached, with its SHA-256."""
    key = (n, seed)
    if key not in _payloads:
        p = payload_of(n, seed)
        _payloads[key] = (p, hashlib.sha256(p).hexdigest())
    return _payloads[key]


class JobPeer:
    """A TCP peer (one connection at a time) that does what it is told, in its own thread:
    receive into a flow, send data, or time-stamp every arrival. The same peer code
    serves the baseline copy loop and the firmware, so both are measured alike. server: as
    Sink's."""

    def __init__(self, host, server=TcpServer):
        self.jobs = queue.Queue()
        self.stamps = queue.Queue()  # ("stamp" jobs) (perf_counter at recv, bytes)
        self.srv = server(host, self._handler)
        self.port = self.srv.port

    def next_jobs(self, srv):
        """The jobs as they are given, until the server stops."""
        while not srv._stop:
            try:
                yield self.jobs.get(timeout=0.2)
            except queue.Empty:
                pass

    def _handler(self, c, srv):
        perf = time.perf_counter
        for job in self.next_jobs(srv):
            kind, until = job[0], job[-1]
            if kind == "recv":
                flow = job[1]
                stall = job[2] if len(job) > 3 else None  # Stall: stop reading once, for a while
                while not flow.done.is_set() and time.monotonic() < until:
                    if stall is not None and flow.n >= stall.after:
                        stall.hold()
                        stall = None
                    if not select.select([c], [], [], 0.1)[0]:
                        continue
                    d = c.recv(1 << 20)
                    if not d:
                        return
                    flow.add(d)
            elif kind == "send":
                job[2][0] = perf()
                send_all(c, job[1], until)  # out of time: the reader drains what is in flight
            elif kind == "stamp":
                left = job[1]
                while left > 0 and time.monotonic() < until:
                    if not select.select([c], [], [], 0.1)[0]:
                        continue
                    d = c.recv(65536)
                    t = perf()
                    if not d:
                        return
                    # Ack at once, so that the sender's Nagle never waits for a delayed ACK.
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                    self.stamps.put((t, len(d)))
                    left -= len(d)

    def close(self):
        self.srv.close()


def send_all(sock, data, until):
    """Send all of data on a blocking socket without blocking past `until`; False if it could not."""
    mv = memoryview(data)
    while mv:
        left = until - time.monotonic()
        if left <= 0:
            return False
        if not select.select([], [sock], [], min(left, 0.1))[1]:
            continue
        try:
            n = sock.send(mv[:1 << 18], socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        mv = mv[n:]
    return True


def pipe_up(wire, peer, n, seconds, seed=b"bench", mark=None):
    """UART -> TCP: the host writes n bytes into the port, the peer receives them.
    Returns (MB/s to the last byte, whole, MB/s to the `mark`-th byte or None). Out of
    time, the host stops writing and the rate is over what arrived."""
    data, want = payload(n, seed)
    flow = Flow(n, mark)
    until = time.monotonic() + seconds
    peer.jobs.put(("recv", flow, until + 15))
    t0 = time.perf_counter()
    wrote = wire.write(data, min(seconds, 10), until=until)
    if wrote < n:
        # Let what was written arrive, so that none of it spills into the next run.
        stop = time.monotonic() + 15
        while flow.n < wrote and time.monotonic() < stop:
            time.sleep(0.01)
        flow.done.set()  # ends the peer's job
        return mbps(flow.n, (flow.t_last or time.perf_counter()) - t0), False, None
    if not flow.done.wait(max(0.0, until - time.monotonic()) + 2):
        raise Timeout("UART->TCP: %d of %d bytes arrived" % (flow.n, n))
    if flow.digest() != want:
        raise AssertionError("UART->TCP: SHA-256 mismatch")
    at_mark = mbps(mark, flow.t_mark - t0) if mark and flow.t_mark else None
    return mbps(n, flow.t_last - t0), True, at_mark


def pipe_down(wire, peer, n, seconds, seed=b"bench"):
    """TCP -> UART: the peer sends n bytes, the host reads the port raw. Returns (MB/s, whole);
    out of time, the rate is over what arrived."""
    data, want = payload(n, seed)
    flow = Flow(n)
    started = [None]
    until = time.monotonic() + seconds
    peer.jobs.put(("send", data, started, until))
    whole = read_raw(wire, flow, until + 1)
    if whole and flow.digest() != want:
        raise AssertionError("TCP->UART: SHA-256 mismatch")
    if not whole:  # drop what is still in flight
        stop = time.monotonic() + 15
        while wire.quiet(0.3) and time.monotonic() < stop:
            pass
    t_end = flow.t_last or time.perf_counter()
    return mbps(flow.n, t_end - (started[0] or t_end)), whole


def latency_up(wire, peer, k, timeout=1.0):
    """k one-byte packets, one at a time: from the host's write into the port to the
    peer's recv. Returns the delays in seconds."""
    while not peer.stamps.empty():
        peer.stamps.get_nowait()
    peer.jobs.put(("stamp", k, time.monotonic() + k * (timeout + 0.01) + 1))
    out = []
    perf = time.perf_counter
    fd = wire.fd
    for i in range(k):
        time.sleep(0.0005 + 0.001 * ((i * 7919) % 13) / 13)  # 0.5-1.5 ms apart, not in step with any timer
        t0 = perf()
        os.write(fd, b"x")  # never "+": a lone "+" is held back by the +++ guard
        try:
            t1, got = peer.stamps.get(timeout=timeout)
        except queue.Empty:
            raise Timeout("a 1-byte packet took more than %.1fs to reach the peer" % timeout)
        if got != 1:
            raise AssertionError("the peer got %d bytes for one packet" % got)
        out.append(t1 - t0)
    return out


class Ctx:
    def __init__(self, args):
        self.args = args
        self.host = args.host_ip
        self.host6 = args.host_ip6
        self.pki = None  # Pki (ssl), made when first needed
        self.run_s = args.seconds / max(1, args.reps)  # time limit of one throughput run
        self.rows = []  # (section, figure, value, baseline, ratio)
        self.failed = []
        self.wire = None  # the board's port (bench_setup)
        self.vb = None
        self.base = {}  # baseline figures by name
        self._helpers = {}
        self._closers = []

    def row(self, section, figure, value, baseline="", ratio="", note=""):
        self.rows.append((section, figure, value, baseline, ratio))
        line = "  %-30s %s" % (figure, value)
        if baseline:
            line += "  (baseline %s%s)" % (baseline, ", " + ratio if ratio else "")
        if note:
            line += "  " + note
        print(line, flush=True)

    def baseline(self, cls):
        """A running baseline helper (BaseResponder, BaseCopy, BaseCipsend), started once."""
        h = self._helpers.get(cls)
        if h is None:
            h = self._helpers[cls] = cls(self)
            self.at_exit(h.close)
        return h

    def at_exit(self, fn):
        self._closers.append(fn)

    def close(self):
        while self._closers:
            fn = self._closers.pop()
            try:
                fn()
            except Exception as e:
                print("  cleanup: %r" % e, file=sys.stderr)


GUARD_S = 0.05  # silence around "+++": comfortably more than the 20 ms guard time


def plus(w):
    """Leave a data phase (passthrough, AT+CIPSENDL): "+++" alone, with silence before and after."""
    time.sleep(GUARD_S)
    w.write(b"+++")
    time.sleep(GUARD_S)


def rate_note(runs, what):
    """"(median of 5: a-b; <what>, SHA-256 ok)" for runs whose [0] is MB/s and [1] whole."""
    whole = all(r[1] for r in runs)
    return "(%s; %s)" % (spread([r[0] for r in runs], "%.2f"),
                         "%s, SHA-256 ok" % what if whole else "time limit hit in some runs: rate over what arrived")


def mib(n):
    return "%d MiB each" % (n // MiB) if n % MiB == 0 else "%.1f MiB each" % (n / MiB)


def base_row(ctx, name, raw, n):
    med = statistics.median(raw)
    ctx.row("baseline", name, "%.1f MB/s" % med, note="(%s; %.0f MiB each, SHA-256 ok)" % (spread(raw), n / MiB))
    return med


def ms_rows(ctx, section, what, fw, base, base_name, note=""):
    """Median and p99 rows of fw (seconds) against base (seconds)."""
    med, p99 = stats_ms(fw)
    bmed, bp99 = stats_ms(base)
    ctx.row(section, "%s, median" % what, "%.3f ms" % med, "%s %.3f ms" % (base_name, bmed),
            "%.1fx" % (med / bmed), note)
    ctx.row(section, "%s, p99" % what, "%.3f ms" % p99, "%s %.3f ms" % (base_name, bp99), "%.1fx" % (p99 / bp99))
    return med, bmed
