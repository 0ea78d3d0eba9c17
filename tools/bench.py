#!/usr/bin/env python3
"""Benchmarks: the firmware beside the ceiling this runtime allows, in one run.

    python tools/bench.py [--port PORT] [--only NAME,NAME] [--bytes N] [--reps N]
    python tools/bench.py --board esp32 [--mpy 1.27] [--bauds 115200,921600,3000000]

Without --port it starts its own virtual board (tools/vboard.py) on a scratch
flash directory. The ceilings come from tools/bench_baseline.py, a minimal
MicroPython program run under the same interpreter with the same pty technique
as the launcher (the pty master as its non-blocking stdin/stdout). Baseline and
firmware runs are interleaved (baseline, firmware, baseline, firmware ...) so
that a busy machine slows both alike, and every figure is printed beside its
ceiling with the ratio. Peers listen on 127.0.0.1 (or --host-ip for a real board).

Sections are plain functions in SECTIONS, run in order with one shared context
(ctx.wire is the board's port, ctx.row(...) records a figure, ctx.baseline(...)
gives a running baseline helper). To add one, write `def bench_x(ctx)` and
append ("x", bench_x, True) to SECTIONS.

    latency      AT -> OK round trip
    cipsend      AT+CIPSEND 2048 and 8192 bytes (CIPMUX=0) into a TCP sink
    ipd          +IPD receive (CIPMUX=0) from a TCP source
    heap         free heap after boot and with 5 links open
    server       AT+CIPSERVER, 5 host clients: +IPD from all, CIPSEND=<id>,2048 round-robin
    passive      AT+CIPRECVTYPE=0,1 and AT+CIPRECVDATA=0,2048 reads of a TCP source
    sendl        AT+CIPSENDL of 16 MiB (AT+CIPSENDLCFG=1048576) into a TCP sink
    passthrough  AT+CIPMODE=1: both directions, 1-byte latency at AT+TRANSINTVL=0 and 20
    ssl          SSL links: GC heap of one (AT+SYSRAM?), CIPSTART "SSL" auth 0 / auth 2 (client_ca.0)
                 beside "TCP" and a minimal tls loop; CIPSENDL, CIPSEND 2048 and +IPD beside TCP
    dns          AT+CIPDOMAIN against a local dnslib server (AT+CIPDNS=1) beside an IP literal, a
                 host-side query and a minimal loop (binding UDP port 53 needs root)
    tcpv6        AT+CIPV6=1: +IPD and CIPSEND 2048 over TCPv6 (::1) beside TCPv4 (127.0.0.1)

With --board esp32 the virtual board is the ESP32 twin (tools/vboard.py --board esp32 --mpy M):
the firmware's ESP32 adapter over tools/twin/, its UART paced at the rate AT+UART_CUR sets. Its
ceiling is the line (an 8N1 line carries baud/10 bytes/s), so by default only these run there
(the sections above compare with the unix port's pty and are skipped; --only runs them anyway):

    twin_rate    passthrough UART->peer and peer->UART (and peer->UART with RTS/CTS), CIPSEND 2048
                 at each --bauds rate, as a fraction of the line rate
    twin_ipd     +IPD from 5 links at once (CIPMUX=1, 5 clients of AT+CIPSERVER sending)
    twin_flow    bytes lost at flow 0 and 3 (AT+UART_CUR's <flow_control>): CIPSENDL written flat
                 out; passthrough with a peer that stops reading; with a host that stops reading
    twin_loop    the twin's counters over all runs: how long UART.write() held the loop, bytes lost
"""
import argparse
import hashlib
import json
import os
import pathlib
import queue
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tty

import serial

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from board import VirtualBoard  # noqa: E402  (tests/board.py)
from peers import TcpServer  # noqa: E402  (tests/peers.py)

BASELINE = ROOT / "tools" / "bench_baseline.py"
# The baseline programs' heap: the data heap of an ESP32-WROOM without PSRAM
# (NOTES.md, "Heap"). Their speed does not depend on it.
BASE_HEAP = "110k"
# The heap the firmware's modules take once imported (as tools/vboard.py measures it).
CODE_PROBE = (
    "import gc\n"
    "gc.collect(); f = gc.mem_free()\n"
    "import at.app, at.ports.unix\n"
    "from at import commands\n"
    "for n in commands.CORE + tuple(g[0] for g in commands.ON_USE): __import__('at.commands.' + n)\n"
    "gc.collect(); print(f - gc.mem_free())\n"
)
MiB = 1 << 20
OK = b"\r\nOK\r\n"
SEND_OK = b"\r\nSEND OK\r\n"
FINAL = re.compile(rb"\r\n(OK|ERROR|SEND OK|SEND FAIL)\r\n")
CIPSEND_SIZES = (2048, 8192)  # 2048 is the figure asked for; 8192 (the largest) for contrast
SECTION_S = 55.0  # a section that takes longer is reported
WATCHDOG_S = 480  # the whole run, whatever happens


class Timeout(AssertionError):
    pass


class Abort(BaseException):
    """The watchdog fired: stop everything (cleanup still runs)."""


def micropython():
    exe = pathlib.Path(sys.executable).parent / "micropython"
    return str(exe) if exe.exists() else "micropython"


# -- the host side of a serial port ---------------------------------------------------------------
class Wire:
    """A serial port (a pty path, a device, or a pyserial URL) read and written as
    directly as possible: os.read/os.write on its fd with poll, so that the host adds
    as little as it can to what is measured. Same calls as tests/board.py's Dut."""

    def __init__(self, url, baud=115200):
        self.ser = serial.serial_for_url(url, baud, timeout=0)
        try:
            self.fd = self.ser.fileno()
        except Exception:
            self.fd = None  # a URL without an fd (socket://, rfc2217://): through pyserial
        self.buf = bytearray()
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

    def read_until(self, pattern, timeout=5.0):
        """Read until pattern (bytes or regex) appears; return everything up to its end."""
        deadline = time.monotonic() + timeout
        start = 0
        while True:
            if isinstance(pattern, (bytes, bytearray)):
                i = self.buf.find(pattern, start)
                end = i + len(pattern) if i >= 0 else -1
                start = max(0, len(self.buf) - len(pattern) + 1)
            else:
                m = pattern.search(self.buf)
                end = m.end() if m else -1
            if end >= 0:
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("waited %.1fs for %r; got %r" % (timeout, pattern, bytes(self.buf[-300:])))
            self.read_some(min(left, 0.1))

    def read_exactly(self, n, timeout=5.0):
        """Read until n bytes are in; return them."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("wanted %d bytes, got %d: %r" % (n, len(self.buf), bytes(self.buf[:200])))
            self.read_some(min(left, 0.1))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def quiet(self, seconds=0.2):
        """Read for a while; return and drop whatever came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.read_some(deadline - time.monotonic())
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def cmd(self, line, timeout=5.0):
        self.write(line.encode() + b"\r\n")
        return self.read_until(FINAL, timeout)

    def ok(self, line, timeout=5.0):
        r = self.cmd(line, timeout)
        if not r.endswith(OK):
            raise AssertionError("%s -> %r" % (line, r[-300:]))
        return r


# -- measuring helpers ----------------------------------------------------------------------------
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
    """A TCP peer that reads every connection into the current flow."""

    def __init__(self, host):
        self.flow = None
        self.srv = TcpServer(host, self._handler)
        self.port = self.srv.port

    def _handler(self, c, srv):
        c.settimeout(0.2)
        while not srv._stop:
            try:
                d = c.recv(1 << 20)
            except OSError as e:
                if _timed_out(e):
                    continue
                return
            if not d:
                return
            if self.flow is not None:
                self.flow.add(d)

    def close(self):
        self.srv.close()


def _timed_out(e):
    return isinstance(e, TimeoutError) or "timed out" in str(e)


def _hold(c, srv):
    """Keep a connection open, reading and dropping, until it or the server closes."""
    c.settimeout(0.2)
    while not srv._stop:
        try:
            if not c.recv(65536):
                return
        except OSError as e:
            if not _timed_out(e):
                return


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


_payloads = {}


def payload(n, seed=b"bench"):
    """payload_of, cached, with its SHA-256."""
    key = (n, seed)
    if key not in _payloads:
        p = payload_of(n, seed)
        _payloads[key] = (p, hashlib.sha256(p).hexdigest())
    return _payloads[key]


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


# -- baseline helpers: long-lived tools/bench_baseline.py processes ----------------------------
class BaselineProc:
    """tools/bench_baseline.py under the unix port, its stdin/stdout a pty master
    (non-blocking) exactly as tools/vboard.py hands the firmware its UART."""

    def __init__(self, *args):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        cmd = [micropython(), "-X", "heapsize=%s" % BASE_HEAP, str(BASELINE)] + [str(a) for a in args]
        self.proc = subprocess.Popen(cmd, stdin=self.master, stdout=self.master)
        self.wire = None

    def open(self):
        """Open the slave like a serial port; wait until the program answers AT."""
        self.wire = Wire(self.path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("baseline exited with %s" % self.proc.returncode)
            self.wire.write(b"AT\r\n")
            try:
                self.wire.read_until(OK, 0.5)
                self.wire.quiet(0.1)
                return self.wire
            except Timeout:
                pass
        raise Timeout("the baseline program did not answer")

    def close(self):
        if self.wire:
            self.wire.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class BaseResponder:
    """The bare AT responder: the round-trip ceiling."""

    def __init__(self, ctx):
        self.bp = BaselineProc("at")
        self.wire = self.bp.open()

    def close(self):
        self.bp.close()


class JobPeer:
    """A TCP peer (one connection at a time) that does what it is told, in its own thread:
    receive into a flow, send data, or time-stamp every arrival. The same peer code
    serves the baseline copy loop and the firmware, so both are measured alike."""

    def __init__(self, host):
        self.jobs = queue.Queue()
        self.stamps = queue.Queue()  # ("stamp" jobs) (perf_counter at recv, bytes)
        self.srv = TcpServer(host, self._handler)
        self.port = self.srv.port

    def _handler(self, c, srv):
        perf = time.perf_counter
        while not srv._stop:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
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


class BaseCopy:
    """The bare copy loop on one socket: up/down move n bytes one way and return MB/s,
    latency times one-byte packets pty -> TCP."""

    host = "127.0.0.1"

    def __init__(self, ctx):
        self.peer = JobPeer(self.host)
        self.bp = BaselineProc("copy", self.host, self.peer.port)
        self.peer.srv.wait_conn(10)
        self.wire = Wire(self.bp.path)
        self.seconds = ctx.args.seconds

    def up(self, n):
        """pty -> TCP: the host writes into the pty, the peer receives."""
        rate, whole, _ = pipe_up(self.wire, self.peer, n, self.seconds)
        if not whole:
            raise Timeout("pty->TCP: %d bytes did not arrive in %.0fs" % (n, self.seconds))
        return rate

    def down(self, n):
        """TCP -> pty: the peer sends, the host reads the pty."""
        rate, whole = pipe_down(self.wire, self.peer, n, self.seconds)
        if not whole:
            raise Timeout("TCP->pty: %d bytes did not arrive in %.0fs" % (n, self.seconds))
        return rate

    def latency(self, k):
        return latency_up(self.wire, self.peer, k)

    def close(self):
        self.wire.close()
        self.bp.close()
        self.peer.close()


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


# -- the run's shared state -----------------------------------------------------------------------
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


# -- sections -------------------------------------------------------------------------------------
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


def heap_bytes(text):
    """'110k' / '2m' / '112640' -> bytes."""
    t = str(text).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def empty_free(heap):
    """gc.mem_free() of an interpreter that has loaded nothing, at this heap size."""
    r = subprocess.run([micropython(), "-X", "heapsize=%s" % heap, "-c",
                        "import gc; gc.collect(); print(gc.mem_free())"],
                       capture_output=True, text=True, timeout=20)
    return int(r.stdout.split()[-1])


def code_heap():
    """Heap the firmware's compiled modules take once imported (None if unknown)."""
    lib = ROOT / "build" / "vboard" / "lib"
    if not lib.is_dir():
        return None
    try:
        r = subprocess.run([micropython(), "-X", "heapsize=4m", "-c", CODE_PROBE],
                           env=dict(os.environ, MICROPYPATH=str(lib)),
                           capture_output=True, text=True, timeout=20)
        return int(r.stdout.split()[-1])
    except (ValueError, IndexError, subprocess.SubprocessError):
        return None


def _sysram(w):
    r = w.ok("AT+SYSRAM?")
    m = re.search(rb"\+SYSRAM:(\d+),(\d+)", r)
    if not m:
        raise AssertionError("AT+SYSRAM? -> %r" % r)
    return int(m.group(1)), int(m.group(2))


def _heap_use(ctx, used):
    code = ctx.base.get("code")
    if ctx.args.board == "esp32" and not ctx.args.port:
        return "firmware + the twin's stand-ins take %d B" % used
    if code is None:
        return "firmware takes %d B" % used
    return "firmware takes %d B = %d B modules + %d B data" % (used, code, used - code)


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
    free, _ = _sysram(w)
    ctx.heap_boot = free
    base = ctx.base.get("heap")
    if base:
        ctx.row("heap", "free heap after boot", "%d B" % free, "empty interpreter %d B" % base,
                _heap_use(ctx, base - free))
    else:
        ctx.row("heap", "free heap after boot", "%d B" % free)
    w.ok('AT+CWJAP="%s","%s"' % (a.ssid, a.password), timeout=30)


def bench_latency(ctx):
    """AT -> OK round trip, echo off: blocks of 100 commands, baseline and firmware alternating."""
    base = ctx.baseline(BaseResponder).wire
    w = ctx.wire
    round_trips(base, 100)  # warm up
    round_trips(w, 100)
    b_rt, f_rt = [], []
    block = 100
    for _ in range((ctx.args.count + block - 1) // block):
        b_rt += round_trips(base, block)
        f_rt += round_trips(w, block)
    b_med, b_p99 = stats_ms(b_rt)
    f_med, f_p99 = stats_ms(f_rt)
    ctx.base["at_med"] = b_med
    ctx.row("baseline", "AT->OK median", "%.3f ms" % b_med, note="(bare responder, %d commands)" % len(b_rt))
    ctx.row("baseline", "AT->OK p99", "%.3f ms" % b_p99)
    ctx.row("latency", "AT->OK median", "%.3f ms" % f_med, "%.3f ms" % b_med, "%.1fx" % (f_med / b_med),
            note="(%d commands)" % len(f_rt))
    ctx.row("latency", "AT->OK p99", "%.3f ms" % f_p99, "%.3f ms" % b_p99, "%.1fx" % (f_p99 / b_p99))
    r = f_med / b_med
    ctx.target = "AT->OK median within 4x of the baseline: %s (%.1fx)" % ("met" if r <= 4 else "NOT met", r)
    print("  target: " + ctx.target)


def _fw_cipsend(ctx, sink, size, n, typ="TCP", host=None):
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
                f_runs.append(_fw_cipsend(ctx, sink, size, n))
            if size == CIPSEND_SIZES[0]:
                ctx.base["up"] = statistics.median(raw)
                ctx.row("baseline", "raw copy pty->TCP", "%.1f MB/s" % ctx.base["up"],
                        note="(%s; %d MiB each, SHA-256 ok)" % (spread(raw), ctx.args.bytes // MiB))
            p = statistics.median(r[0] for r in p_runs)
            f = statistics.median(r[0] for r in f_runs)
            up = ctx.base["up"]
            ctx.base["cipsend%d" % size] = f
            ctx.row("baseline", "minimal CIPSEND loop %dB" % size, "%.2f MB/s" % p, note=_cipsend_note(p_runs, n))
            ctx.row("cipsend", "CIPSEND %dB" % size, "%.2f MB/s" % f, "raw copy %.1f MB/s" % up,
                    "%.1f%%" % (100 * f / up), _cipsend_note(f_runs, n))
            ctx.row("cipsend", "CIPSEND %dB vs minimal loop" % size, "%.2f MB/s" % f,
                    "minimal CIPSEND loop %.2f MB/s" % p, "%.0f%%" % (100 * f / p))
    finally:
        sink.close()


def _fw_ipd(ctx, n, typ="TCP", host=None, wrap=None):
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
        _hold(c, srv)

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
        runs.append(_fw_ipd(ctx, n))
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


def bench_heap(ctx):
    """Free heap with AT+CIPMUX=1 and five TCP links open to a local server."""
    w = ctx.wire
    srv = TcpServer(ctx.host, _hold)
    try:
        w.ok("AT+CIPMUX=1")
        for i in range(5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (i, ctx.host, srv.port), timeout=10)
        free, _ = _sysram(w)
        per = "%d B per link" % ((ctx.heap_boot - free) // 5)
        base = ctx.base.get("heap")
        if base:
            ctx.row("heap", "free heap, 5 links open", "%d B" % free, "empty interpreter %d B" % base,
                    _heap_use(ctx, base - free) + "; " + per)
        else:
            ctx.row("heap", "free heap, 5 links open", "%d B" % free, note="(%s)" % per)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        w.ok("AT+CIPMUX=0")
    finally:
        srv.close()


# -- server, passive receive, CIPSENDL, passthrough ----------------------------------------------
SERVER_CLIENTS = 5
GUARD_S = 0.05  # silence around "+++": comfortably more than the 20 ms guard time
BAUDS = (115200, 921600, 2000000)


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def plus(w):
    """Leave a data phase (passthrough, AT+CIPSENDL): "+++" alone, with silence before and after."""
    time.sleep(GUARD_S)
    w.write(b"+++")
    time.sleep(GUARD_S)


def _rate_note(runs, what):
    """"(median of 5: a-b; <what>, SHA-256 ok)" for runs whose [0] is MB/s and [1] whole."""
    whole = all(r[1] for r in runs)
    return "(%s; %s)" % (spread([r[0] for r in runs], "%.2f"),
                         "%s, SHA-256 ok" % what if whole else "time limit hit in some runs: rate over what arrived")


def _mib(n):
    return "%d MiB each" % (n // MiB) if n % MiB == 0 else "%.1f MiB each" % (n / MiB)


def _cipsend_note(runs, n):
    whole = all(r[1] for r in runs)
    return "(%s; %s; per send %.3f ms command->'>' + %.3f ms data->SEND OK)" % (
        spread([r[0] for r in runs], "%.2f"),
        "%s, SHA-256 ok" % _mib(n) if whole else "time limit hit: rate over what was acknowledged",
        statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs))


def _base_row(ctx, name, raw, n):
    med = statistics.median(raw)
    ctx.row("baseline", name, "%.1f MB/s" % med, note="(%s; %.0f MiB each, SHA-256 ok)" % (spread(raw), n / MiB))
    return med


class Client:
    """A host client of the board's server: a reader thread hashes what arrives into .flow."""

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
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass


def parse_ipd_mux(buf, pos, flows, state):
    """Consume "+IPD,<id>,<len>:<data>" frames from buf[pos:] into flows[id]; return the new
    pos. state = [payload still owed, the flow it goes to, text found between frames, frames]."""
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
                return max(pos, end - 4)
            j = buf.find(b":", i, i + 40)
            if j < 0:
                if end - i > 40:
                    raise AssertionError("bad +IPD header: %r" % bytes(buf[i:i + 40]))
                return i
            lid, n = bytes(buf[i + 5:j]).split(b",")
            flow = flows.get(int(lid))
            if flow is None:
                raise AssertionError("+IPD for link %s, which no client of this run has" % lid)
            state[0], state[1] = int(n), flow
            state[3] += 1
            if buf[pos:i].strip(b"\r\n"):
                state[2].append(bytes(buf[pos:i][:80]))
            pos = j + 1
        return pos
    finally:
        mv.release()


def _fw_server_rx(ctx, clients, per):
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
    state = [0, None, [], 0]
    buf = w.buf
    pos = 0
    go.set()
    while not all(f.done.is_set() for f in flows.values()):
        left = until - time.monotonic()
        if left <= 0:
            break
        w.read_some(min(left, 0.1))
        pos = parse_ipd_mux(buf, pos, flows, state)
        if pos > 65536:
            del buf[:pos]
            pos = 0
    del buf[:pos]
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


def _fw_server_tx(ctx, clients, per, size):
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
        clients, opened = _server_clients(ctx, board, port, k)
        raw_dn, raw_up, rx, tx = [], [], [], []
        for _ in range(reps):
            raw_dn.append(copy.down(per_rx * k))
            rx.append(_fw_server_rx(ctx, clients, per_rx))
        mins = []
        for _ in range(reps):
            raw_up.append(copy.up(per_tx * k))
            mins.append(proto.run(2048, per_tx * k))
            tx.append(_fw_server_tx(ctx, clients, per_tx, 2048))
        dn = _base_row(ctx, "raw copy TCP->pty (server rx)", raw_dn, per_rx * k)
        up = _base_row(ctx, "raw copy pty->TCP (server tx)", raw_up, per_tx * k)
        rate = statistics.median(r[0] for r in rx)
        note = _rate_note(rx, "%d clients x %.1f MiB" % (k, per_rx / MiB))
        note = note[:-1] + "; last run %d frames, %.0f B/frame)" % (rx[-1][2], rx[-1][4] / max(1, rx[-1][2]))
        junk = [j for r in rx for j in r[3]]
        if junk:
            note += " UNEXPECTED text between frames: %r" % junk[:3]
        ctx.row("server", "server +IPD receive, 5 clients", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * rate / dn), note)
        p = statistics.median(r[0] for r in mins)
        ctx.row("baseline", "minimal CIPSEND loop 2048B (server tx)", "%.2f MB/s" % p,
                note=_cipsend_note(mins, per_tx * k))
        rate = statistics.median(r[0] for r in tx)
        note = _rate_note(tx, "%d clients x %.1f MiB" % (k, per_tx / MiB))
        one = ctx.base.get("cipsend2048")
        if one:
            note = note[:-1] + "; one link with CIPMUX=0 earlier in this run: %.2f MB/s)" % one
        ctx.row("server", "server CIPSEND 2048B round-robin, 5 clients", "%.2f MB/s" % rate,
                "raw copy %.1f MB/s" % up, "%.1f%%" % (100 * rate / up), note)
        ctx.row("server", "server CIPSEND 2048B round-robin vs minimal loop", "%.2f MB/s" % rate,
                "minimal CIPSEND loop %.2f MB/s" % p, "%.0f%%" % (100 * rate / p))
    finally:
        w.write(b"AT+CIPSERVER=0,1\r\n")
        try:
            w.read_until(FINAL, 10)
        finally:
            for c in opened:
                c.close()
            w.quiet(0.2)
            w.ok("AT+CIPMUX=0")


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


def _fw_passive(ctx, n, chunk):
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
        _hold(c, srv)

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
            runs.append(_fw_passive(ctx, n, 2048))
        dn = _base_row(ctx, "raw copy TCP->pty (passive)", raw, n)
        p = statistics.median(r[0] for r in mins)
        ctx.row("baseline", "minimal CIPRECVDATA loop 2048B", "%.2f MB/s" % p, note=_rate_note(mins, _mib(n)))
        rate = statistics.median(r[0] for r in runs)
        per_read = statistics.median(2048 / (r[0] * 1e6) * 1000 for r in runs)
        note = _rate_note(runs, _mib(n))[:-1] + "; %.3f ms per 2048-byte read; last run %d reads, %d answered ERROR)" % (
            per_read, runs[-1][2], runs[-1][3])
        ctx.row("passive", "passive receive, CIPRECVDATA 2048B", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * rate / dn), note)
        ctx.row("passive", "passive receive vs minimal loop", "%.2f MB/s" % rate,
                "minimal CIPRECVDATA loop %.2f MB/s" % p, "%.0f%%" % (100 * rate / p))
    finally:
        w.ok("AT+CIPRECVTYPE=0,0")
        w.ok("AT+CIPMUX=0")


def _fw_sendl(ctx, sink, n, typ="TCP"):
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
            runs.append(_fw_sendl(ctx, sink, n))
        up = _base_row(ctx, "raw copy pty->TCP (sendl)", raw, n)
        rate = statistics.median(r[0] for r in runs)
        note = _rate_note(runs, _mib(n))[:-1] + "; %d +CIPSENDL reports per run)" % runs[-1][2]
        ctx.row("sendl", "CIPSENDL", "%.2f MB/s" % rate, "raw copy %.1f MB/s" % up,
                "%.1f%%" % (100 * rate / up), note)
    finally:
        sink.close()
        w.ok("AT+CIPSENDLCFG=1024,2920")


def _enter(w, ctx, port):
    r = w.cmd('AT+CIPSTART="TCP","%s",%d' % (ctx.host, port), 10)
    if r != b"CONNECT\r\n\r\nOK\r\n":
        raise AssertionError("AT+CIPSTART (passthrough) -> %r" % r)
    _resume(w)


def _resume(w):
    w.write(b"AT+CIPSEND\r\n")
    r = w.read_until(b">", 5)
    if r != b"\r\nOK\r\n\r\n>":
        raise AssertionError("AT+CIPSEND (passthrough) -> %r" % r)


def _tty_speed(w):
    """The pty's termios speed after pyserial opened it at --baud (None if unknown)."""
    try:
        import termios
        ispeed = termios.tcgetattr(w.fd)[5]
        names = {getattr(termios, "B%d" % b): b for b in (9600, 115200, 230400, 460800, 921600, 2000000)
                 if hasattr(termios, "B%d" % b)}
        return names.get(ispeed, ispeed)
    except Exception:  # noqa: BLE001
        return None


def bench_passthrough(ctx):
    """Passthrough (CIPMODE=1): throughput both ways, 1-byte latency at TRANSINTVL=0 and 20; ceiling: the raw copy loop."""
    w = ctx.wire
    n = ctx.args.bytes
    reps = ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    peer = JobPeer(ctx.host)
    inside = False
    w.ok("AT+CIPMUX=0")
    w.ok("AT+CIPMODE=1")
    try:
        w.ok("AT+TRANSINTVL=20")  # the default, for the throughput runs
        _enter(w, ctx, peer.port)
        inside = True
        peer.srv.wait_conn(5)
        secs = ctx.run_s * 2
        # All but the last packet: the last (< 2,920 bytes) waits for the packing interval.
        mark = n - 2920
        b_up, f_up, b_dn, f_dn = [], [], [], []
        for _ in range(reps):
            b_up.append(copy.up(n))
            f_up.append(pipe_up(w, peer, n, secs, b"pt-up", mark))
        for _ in range(reps):
            b_dn.append(copy.down(n))
            f_dn.append(pipe_down(w, peer, n, secs, b"pt-down"))
        up = _base_row(ctx, "raw copy pty->TCP (passthrough)", b_up, n)
        dn = _base_row(ctx, "raw copy TCP->pty (passthrough)", b_dn, n)
        fu = statistics.median(r[0] for r in f_up)
        marks = [r[2] for r in f_up if r[2]]
        fm = statistics.median(marks) if len(marks) == len(f_up) else None
        note = _rate_note(f_up, _mib(n))
        if fm and abs(fm - fu) > 0.01 * fu:
            # The last packet may wait for the packing interval; show the rate without it too.
            note = note[:-1] + "; all but the last 2,920 B: %.2f MB/s)" % fm
        ctx.row("passthrough", "passthrough UART->peer", "%.2f MB/s" % fu, "raw copy %.1f MB/s" % up,
                "%.1f%%" % (100 * fu / up), note)
        fd = statistics.median(r[0] for r in f_dn)
        ctx.row("passthrough", "passthrough peer->UART", "%.2f MB/s" % fd, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * fd / dn), _rate_note(f_dn, _mib(n)))
        plus(w)
        inside = False

        # Latency of one byte UART -> peer, blocks of 50 alternating with the baseline copy loop.
        block = 50
        every = []
        for intvl in (0, 20):
            # p99 of 200 is the third-worst sample: time five times as many where they are cheap.
            k = ctx.args.packets * (5 if intvl == 0 else 1)
            w.ok("AT+TRANSINTVL=%d" % intvl)
            _resume(w)
            inside = True
            base, fw = [], []
            for _ in range((k + block - 1) // block):
                base += copy.latency(block)
                fw += latency_up(w, peer, block)
            plus(w)
            inside = False
            every += base
            med, p99 = stats_ms(fw)
            bmed, bp99 = stats_ms(base)
            ctx.row("passthrough", "passthrough 1 B UART->peer, TRANSINTVL=%d, median" % intvl, "%.3f ms" % med,
                    "copy loop %.3f ms" % bmed, "%.1fx" % (med / bmed),
                    "(%d packets%s)" % (len(fw), "; the packing interval dominates" if intvl else ""))
            ctx.row("passthrough", "passthrough 1 B UART->peer, TRANSINTVL=%d, p99" % intvl, "%.3f ms" % p99,
                    "copy loop %.3f ms" % bp99, "%.1fx" % (p99 / bp99))
        bmed, bp99 = stats_ms(every)
        ctx.row("baseline", "copy loop 1 B pty->TCP median", "%.3f ms" % bmed,
                note="(p99 %.3f ms, %d packets in blocks of %d alternating with the firmware's)" % (
                    bp99, len(every), block))
        w.ok("AT+TRANSINTVL=20")

        # A real ESP32's ceiling is the UART line: what the firmware sustains here, against line rates.
        for baud in BAUDS:
            line = baud / 10  # 8N1: 10 bits a byte
            ctx.row("passthrough", "passthrough up / down vs a %s-baud line (%s B/s)" % (
                    format(baud, ","), format(int(line), ",")),
                    "%.2f / %.2f MB/s" % (fu, fd), "line %.3f MB/s" % (line / 1e6),
                    "%sx / %sx the line" % (format(int(fu * 1e6 / line), ","), format(int(fd * 1e6 / line), ",")))
        speed = _tty_speed(w)
        if ctx.args.port:
            print("  (a real port at %d baud: the line rate bounds the throughput above)" % ctx.args.baud)
        else:
            print("  (virtual board: a pty ignores its baud rate. pyserial set it to %d baud%s, yet bytes move at"
                  " tens of MB/s: the throughput is what the firmware could sustain, not a UART's rate)"
                  % (ctx.args.baud, " (termios reads back B%s)" % speed if speed else ""))
    finally:
        if inside:
            plus(w)
        w.quiet(0.1)
        try:
            w.ok("AT+CIPMODE=0")
            w.ok("AT+CIPCLOSE", timeout=5)
            w.ok("AT+TRANSINTVL=20")
        finally:
            w.quiet(0.1)
            peer.close()


# -- SSL, names (DNS), TCPv6 -----------------------------------------------------------------------
CONNECTED = b"CONNECT\r\n\r\nOK\r\n"
DNS_NAME = "bench.test"
DNS_BLOCK = 20  # lookups per block; blocks of each kind alternate


class Pki:
    """A test CA (trustme) and a certificate for the host's addresses: the Python peers' server
    context, a Python client context that trusts the CA, the CA as PEM (what the board stores as
    client_ca.0) and as DER in a file (for tools/bench_baseline.py)."""

    def __init__(self, names):
        import ssl
        import trustme
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(*names)
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(self.server_ctx)
        self.client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(self.client_ctx)
        # The board's mbedTLS speaks TLS 1.2: the Python client (a reference) does the same.
        self.client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ca_pem = self.ca.cert_pem.bytes()
        fd, self.ca_der = tempfile.mkstemp(prefix="bench-ca-", suffix=".der")
        with os.fdopen(fd, "wb") as f:
            f.write(ssl.PEM_cert_to_DER_cert(self.ca_pem.decode()))

    def wrap(self, c):
        """The server end of a TLS connection (the handshake runs here)."""
        return self.server_ctx.wrap_socket(c, server_side=True)

    def close(self):
        try:
            os.unlink(self.ca_der)
        except OSError:
            pass


def get_pki(ctx):
    if getattr(ctx, "pki", None) is None:
        names = ["localhost", "127.0.0.1", "::1"]
        for h in (ctx.host, ctx.host6):
            if h not in names:
                names.append(h)
        ctx.pki = Pki(names)
        ctx.at_exit(ctx.pki.close)
    return ctx.pki


class TlsSink(Sink):
    """Sink over TLS: every connection is wrapped (server side) and read into the current flow."""

    def __init__(self, host, pki):
        self.pki = pki
        super().__init__(host)

    def _handler(self, c, srv):
        super()._handler(self.pki.wrap(c), srv)


class TlsJobPeer(JobPeer):
    """JobPeer over TLS ("recv" and "send" jobs), for the TLS copy loop."""

    def __init__(self, host, pki):
        self.pki = pki
        super().__init__(host)

    def _handler(self, c, srv):
        s = self.pki.wrap(c)
        s.settimeout(0.1)
        while not srv._stop:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            kind, until = job[0], job[-1]
            if kind == "recv":
                flow = job[1]
                while not flow.done.is_set() and time.monotonic() < until:
                    try:
                        d = s.recv(1 << 20)
                    except OSError as e:
                        if _timed_out(e):
                            continue
                        return
                    if not d:
                        return
                    flow.add(d)
            elif kind == "send":
                job[2][0] = time.perf_counter()
                s.settimeout(max(0.1, until - time.monotonic()))
                try:
                    s.sendall(job[1])
                except OSError as e:
                    if not _timed_out(e):
                        return
                finally:
                    s.settimeout(0.1)


class BaseCopy6(BaseCopy):
    """The bare copy loop over TCPv6 (::1)."""
    host = "::1"


class BaseTlsCopy(BaseCopy):
    """The bare copy loop over TLS (tools/bench_baseline.py tlscopy): the ceiling of an SSL link."""

    def __init__(self, ctx):
        self.peer = TlsJobPeer("127.0.0.1", get_pki(ctx))
        self.bp = BaselineProc("tlscopy", "127.0.0.1", self.peer.port)
        self.peer.srv.wait_conn(10)
        self.wire = Wire(self.bp.path)
        self.seconds = ctx.args.seconds


class BaseTls(BaseResponder):
    """The least AT+CIPSTART (TCP and SSL) can cost (tools/bench_baseline.py tls)."""

    def __init__(self, ctx):
        self.bp = BaselineProc("tls", get_pki(ctx).ca_der)
        self.wire = self.bp.open()


def connect_time(w, line, timeout=20.0):
    """Seconds from writing an AT+CIPSTART line to its CONNECT + OK; then AT+CIPCLOSE (untimed)."""
    t0 = time.perf_counter()
    w.write(line)
    r = w.read_until(FINAL, timeout)
    t = time.perf_counter() - t0
    if r != CONNECTED:
        raise AssertionError("%s -> %r" % (line.strip().decode(), r[-300:]))
    r = w.cmd("AT+CIPCLOSE", 10)
    if not r.endswith(OK):
        raise AssertionError("AT+CIPCLOSE -> %r" % r[-200:])
    return t


def py_handshake(pki, host, port):
    """Seconds for a CPython (OpenSSL) client to connect and handshake, checking the certificate."""
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    try:
        ss = pki.client_ctx.wrap_socket(s, server_hostname=host)
        t = time.perf_counter() - t0
        ss.close()
    finally:
        s.close()
    return t


def provision(w, ns, key, data):
    """AT+SYSMFG write of a binary value (tests/tlspeers.py's provision over this Wire)."""
    w.write(b'AT+SYSMFG=2,"%s","%s",8,%d\r\n' % (ns.encode(), key.encode(), len(data)))
    w.read_until(b">", 5)
    w.write(data)
    r = w.read_until(FINAL, 10)
    if not r.endswith(OK):
        raise AssertionError("AT+SYSMFG=2,%s,%s -> %r" % (ns, key, r[-200:]))


def mfg_read(w, ns, key):
    """The value of an AT+SYSMFG key, or None when it is not there."""
    w.write(b'AT+SYSMFG=1,"%s","%s"\r\n' % (ns.encode(), key.encode()))
    r = w.read_until(re.compile(rb'\+SYSMFG:"[^"]*","[^"]*",\d+,(\d+),|\r\nERROR\r\n'), 5)
    if r.endswith(b"\r\nERROR\r\n"):
        return None
    n = int(re.search(rb",(\d+),$", r).group(1))
    data = w.read_exactly(n, 5)
    w.read_until(OK, 5)
    return data


def fw_pid(ctx):
    """The pid of the virtual board's firmware process (the launcher's child), or None."""
    if ctx.vb is None:
        return None
    pid = ctx.vb.proc.pid
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return int(f.read().split()[-1])
    except (OSError, IndexError, ValueError):
        return None


def rss_anon(ctx):
    """RssAnon (bytes) of the virtual board's firmware process, or None (a real board, no /proc)."""
    pid = fw_pid(ctx)
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError, TypeError):
        pass
    return None


def cpu_s(pid):
    """CPU time (seconds, ns resolution) a process has run, from /proc/<pid>/schedstat; 0 if unknown."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def _ms_rows(ctx, section, what, fw, base, base_name, note=""):
    """Median and p99 rows of fw (seconds) against base (seconds)."""
    med, p99 = stats_ms(fw)
    bmed, bp99 = stats_ms(base)
    ctx.row(section, "%s, median" % what, "%.3f ms" % med, "%s %.3f ms" % (base_name, bmed),
            "%.1fx" % (med / bmed), note)
    ctx.row(section, "%s, p99" % what, "%.3f ms" % p99, "%s %.3f ms" % (base_name, bp99), "%.1fx" % (p99 / bp99))
    return med, bmed


def _ssl_heap(ctx, tsrv, psrv):
    """AT+SYSRAM? with CIPMUX=1: no link; 5 TCP links; no link again; one SSL link; one SSL + four
    TCP links; all closed. Every figure of this section is taken minutes apart from none of the others."""
    w = ctx.wire
    w.ok("AT+CIPMUX=1")
    try:
        w.ok("AT+CIPSSLCCONF=0,0,0,0")
        for lid in range(5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, ctx.host, psrv.port), timeout=10)
        free_t5, _ = _sysram(w)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        free0, _ = _sysram(w)
        rss0 = rss_anon(ctx)
        r = w.cmd('AT+CIPSTART=0,"SSL","%s",%d' % (ctx.host, tsrv.port), 20)
        if r != b"0," + CONNECTED:
            raise AssertionError("AT+CIPSTART=0,\"SSL\" -> %r" % r)
        free1, _ = _sysram(w)
        rss1 = rss_anon(ctx)
        for lid in range(1, 5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, ctx.host, psrv.port), timeout=10)
        free2, _ = _sysram(w)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        free3, _ = _sysram(w)
    finally:
        w.ok("AT+CIPMUX=0")
    ssl_cost = free0 - free1
    ctx.base["ssl_link_heap"] = ssl_cost
    ctx.row("baseline", "free heap, CIPMUX=1, no link (ssl)", "%d B" % free0,
            note="(5 TCP links open a moment before: %d B, %.0f B per link)" % (free_t5, (free0 - free_t5) / 5))
    note = "(the first SSL link since boot"
    if free3 < free0:
        note += "; %d B of it stay allocated after AT+CIPCLOSE, so a link costs %s B once SSL has been used" % (
            free0 - free3, format(free3 - free1, ","))
    if rss0 is not None and rss1 is not None:
        note += "; the firmware process's RssAnon grew %+d KB: mbedTLS's own state is malloc'd outside the GC " \
                "heap on this port" % ((rss1 - rss0) // 1024)
    note += ")"
    ctx.row("ssl", "free heap, one SSL link open (CIPMUX=1)", "%d B" % free1, "no link %d B" % free0,
            "an SSL link takes %s B of GC heap" % format(ssl_cost, ","), note)
    ctx.row("ssl", "free heap, 1 SSL + 4 TCP links open", "%d B" % free2, "5 TCP links %d B" % free_t5,
            "%s B more than 5 TCP links" % format(free_t5 - free2, ","),
            "(4 TCP links beside the SSL one: %.0f B each; after AT+CIPCLOSE=5: %d B free)" % (
                (free1 - free2) / 4, free3))


def _ssl_handshakes(ctx, tsrv, psrv, seen):
    """AT+CIPSTART "TCP" and "SSL" (auth 0, auth 2) connect times, firmware and minimal loop alternating."""
    w = ctx.wire
    pki = get_pki(ctx)
    bw = ctx.baseline(BaseTls).wire
    host = ctx.host
    lines = {"TCP": b'AT+CIPSTART="TCP","%s",%d\r\n' % (host.encode(), psrv.port),
             "SSL": b'AT+CIPSTART="SSL","%s",%d\r\n' % (host.encode(), tsrv.port)}
    kinds = ("TCP", "SSL0", "SSL2")
    fw = {k: [] for k in kinds}
    blk = {k: [] for k in kinds}  # the minimal loop, blocking handshake
    nbl = {k: [] for k in kinds[1:]}  # the minimal loop, non-blocking socket (as the firmware)
    ndl = {k: [] for k in kinds[1:]}  # the minimal loop, blocking, TCP_NODELAY set before the handshake
    py = []
    cpu_fw = {k: [] for k in kinds}  # CPU seconds of the firmware process per connect (+ close)
    cpu_bl = {k: [] for k in kinds}  # of the minimal loop (blocking)
    fpid = fw_pid(ctx)
    bpid = ctx.baseline(BaseTls).bp.proc.pid
    auth = None
    # One of each first, untimed: the first SSL link imports at/sslconf.py and reads the mfg store.
    for k in kinds + kinds:
        a = k[3:] or "0"
        w.ok("AT+CIPSSLCCONF=%s,0,0" % a)
        connect_time(w, lines[k[:3]])
    for _ in range(ctx.args.handshakes):
        for k in kinds:
            line = lines[k[:3]]
            if k != "TCP":
                if auth != k[3]:
                    auth = k[3]
                    w.ok("AT+CIPSSLCCONF=%s,0,0" % auth)
                    bw.ok("AT+CIPSSLCCONF=%s,0,0" % auth)
                bw.ok("AT+BLOCKING=0")
                nbl[k].append(connect_time(bw, line))
                bw.ok("AT+BLOCKING=1")
                bw.ok("AT+NODELAY=1")
                ndl[k].append(connect_time(bw, line))
                bw.ok("AT+NODELAY=0")
            c0 = cpu_s(bpid)
            blk[k].append(connect_time(bw, line))
            cpu_bl[k].append(cpu_s(bpid) - c0)
            c0 = cpu_s(fpid)
            fw[k].append(connect_time(w, line))
            cpu_fw[k].append(cpu_s(fpid) - c0)
            if k == "SSL2":
                py.append(py_handshake(pki, host, tsrv.port))
    n = len(fw["TCP"])
    ver = sorted(set(seen))
    proto = "; ".join("%s %s" % v for v in ver[:2])
    ctx.row("baseline", "minimal CIPSTART TCP, median", "%.3f ms" % stats_ms(blk["TCP"])[0],
            note="(p99 %.3f ms; blocking connect, %d connects)" % (stats_ms(blk["TCP"])[1], n))
    for k in kinds[1:]:
        ctx.row("baseline", "minimal CIPSTART SSL auth %s, median" % k[3], "%.3f ms" % stats_ms(blk[k])[0],
                note="(p99 %.3f ms; tls.SSLContext + wrap_socket, blocking; with a non-blocking socket as the "
                     "firmware: median %.3f ms, p99 %.3f ms; blocking with TCP_NODELAY: median %.3f ms, p99 %.3f ms)"
                     % (stats_ms(blk[k])[1], stats_ms(nbl[k])[0], stats_ms(nbl[k])[1], stats_ms(ndl[k])[0],
                        stats_ms(ndl[k])[1]))
    pmed, pp99 = stats_ms(py)
    ctx.row("baseline", "CPython (OpenSSL) client handshake, same server", "%.3f ms" % pmed,
            note="(p99 %.3f ms; connect + handshake, CA checked; the server's share of every handshake is at most this)"
            % pp99)
    tmed, _ = _ms_rows(ctx, "ssl", "CIPSTART TCP (connect)", fw["TCP"], blk["TCP"], "minimal loop",
                       "(%d connects; p99 of %d is the slowest)" % (n, n) if n < 51 else "(%d connects)" % n)
    for k, what in (("SSL0", "CIPSTART SSL, auth 0 (no verification)"),
                    ("SSL2", "CIPSTART SSL, auth 2 (server checked against client_ca.0)")):
        med, bmed = _ms_rows(ctx, "ssl", what, fw[k], blk[k], "minimal loop",
                             "(%d handshakes; peer: Python ssl, %s; non-blocking minimal loop %.3f ms)"
                             % (n, proto, stats_ms(nbl[k])[0]))
        ctx.row("ssl", "CIPSTART SSL auth %s vs CIPSTART TCP" % k[3], "%.3f ms" % med,
                "TCP connect %.3f ms" % tmed, "+%.1f ms (%.0fx)" % (med - tmed, med / tmed))
        dmed = stats_ms(ndl[k])[0]
        ctx.row("ssl", "CIPSTART SSL auth %s vs minimal loop with TCP_NODELAY" % k[3], "%.3f ms" % med,
                "minimal loop, TCP_NODELAY %.3f ms" % dmed, "%.1fx" % (med / dmed),
                "(the difference is Nagle holding the client's last flight until the server's delayed ACK)")
        if fpid and any(cpu_fw[k]):
            cf = statistics.median(cpu_fw[k]) * 1000
            cb = statistics.median(cpu_bl[k]) * 1000
            ctx.row("ssl", "CPU per SSL auth %s connect (firmware process)" % k[3], "%.1f ms" % cf,
                    "minimal loop %.1f ms" % cb, "%.0f%% of the median connect time" % (100 * cf / med),
                    "(median over %d connects, from /proc/<pid>/schedstat; incl. AT+CIPCLOSE)" % n)


def _ssl_throughput(ctx):
    """SSL vs TCP, both directions, firmware and baselines alternating run by run."""
    w = ctx.wire
    pki = get_pki(ctx)
    n = ctx.args.bytes
    m = ctx.args.send_bytes // 2
    reps = ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    tcopy = ctx.baseline(BaseTlsCopy)
    sink = Sink(ctx.host)
    tsink = TlsSink(ctx.host, pki)
    w.ok("AT+CIPSSLCCONF=0,0,0")
    w.ok("AT+CIPSENDLCFG=1048576")
    try:
        r_up, t_up, f_up, s_up = [], [], [], []
        for _ in range(reps):
            r_up.append(copy.up(n))
            t_up.append(tcopy.up(n))
            f_up.append(_fw_sendl(ctx, sink, n))
            s_up.append(_fw_sendl(ctx, tsink, n, "SSL"))
        f_cs, s_cs = [], []
        for _ in range(reps):
            f_cs.append(_fw_cipsend(ctx, sink, 2048, m))
            s_cs.append(_fw_cipsend(ctx, tsink, 2048, m, "SSL"))
        r_dn, t_dn, f_dn, s_dn = [], [], [], []
        for _ in range(reps):
            r_dn.append(copy.down(n))
            t_dn.append(tcopy.down(n))
            f_dn.append(_fw_ipd(ctx, n))
            s_dn.append(_fw_ipd(ctx, n, "SSL", wrap=pki.wrap))
    finally:
        sink.close()
        tsink.close()
        w.ok("AT+CIPSENDLCFG=1024,2920")
    up = _base_row(ctx, "raw copy pty->TCP (ssl)", r_up, n)
    tup = _base_row(ctx, "TLS copy loop pty->TLS", t_up, n)
    dn = _base_row(ctx, "raw copy TCP->pty (ssl)", r_dn, n)
    tdn = _base_row(ctx, "TLS copy loop TLS->pty", t_dn, n)
    fu = statistics.median(r[0] for r in f_up)
    su = statistics.median(r[0] for r in s_up)
    ctx.row("ssl", "SSL CIPSENDL board->peer", "%.2f MB/s" % su, "TCP CIPSENDL %.2f MB/s" % fu,
            "%.0f%%" % (100 * su / fu), _rate_note(s_up, _mib(n))[:-1] + "; TCP: %s)" % spread(
                [r[0] for r in f_up], "%.2f"))
    ctx.row("ssl", "SSL CIPSENDL vs the copy loops", "%.2f MB/s" % su,
            "TLS copy %.1f MB/s, raw copy %.1f MB/s" % (tup, up), "%.1f%% / %.1f%%" % (100 * su / tup, 100 * su / up))
    fc = statistics.median(r[0] for r in f_cs)
    sc = statistics.median(r[0] for r in s_cs)
    ctx.row("ssl", "SSL CIPSEND 2048B board->peer", "%.2f MB/s" % sc, "TCP CIPSEND 2048B %.2f MB/s" % fc,
            "%.0f%%" % (100 * sc / fc), _cipsend_note(s_cs, m))
    fd = statistics.median(r[0] for r in f_dn)
    # A run that stalls short of the end (a firmware bug, see BENCHMARKS.md) counts to its last byte;
    # the stall is reported beside the rate.
    sd = statistics.median(r[5] for r in s_dn)
    frames = s_dn[-1][2]
    short = [n - r[4] for r in s_dn if not r[1]]
    if short:
        note = "(%s; %d of %d runs STALLED short of the end: %s B never arrived within the run's %.0f s limit; " \
               "their rate is to the last byte that did)" % (spread([r[5] for r in s_dn], "%.2f"), len(short),
                                                              len(s_dn), "/".join(format(x, ",") for x in short),
                                                              ctx.run_s)
    else:
        note = _rate_note(s_dn, _mib(n))
    note = note[:-1] + "; %.0f B/frame; TCP: %s)" % (n / max(1, frames), spread([r[0] for r in f_dn], "%.2f"))
    if not all(r[1] for r in f_dn):
        note += " TCP: time limit hit in some runs"
    junk = [j for r in s_dn + f_dn for j in r[3]]
    if junk:
        note += " UNEXPECTED text between frames: %r" % junk[:3]
    ctx.row("ssl", "SSL +IPD peer->board", "%.2f MB/s" % sd, "TCP +IPD %.2f MB/s" % fd, "%.0f%%" % (100 * sd / fd),
            note)
    ctx.row("ssl", "SSL +IPD vs the copy loops", "%.2f MB/s" % sd,
            "TLS copy %.1f MB/s, raw copy %.1f MB/s" % (tdn, dn), "%.1f%% / %.1f%%" % (100 * sd / tdn, 100 * sd / dn))


def bench_ssl(ctx):
    """SSL links: heap of one link, CIPSTART "SSL" (auth 0 and 2) beside "TCP", throughput both ways beside TCP."""
    w = ctx.wire
    pki = get_pki(ctx)
    seen = []

    def tls_hold(c, srv):
        s = pki.wrap(c)
        seen.append((s.version(), s.cipher()[0]))
        _hold(s, srv)

    tsrv = TcpServer(ctx.host, tls_hold)
    psrv = TcpServer(ctx.host, _hold)
    w.ok("AT+CIPMUX=0")
    saved = None
    if ctx.args.port:  # a real board: put its CA and SSL settings back afterwards
        m = re.search(rb"\+CIPSSLCCONF:\d+,(\d+),(\d+),(\d+)", w.ok("AT+CIPSSLCCONF?"))
        saved = (mfg_read(w, "client_ca", "client_ca.0"), m.groups() if m else (b"0", b"0", b"0"))
    try:
        provision(w, "client_ca", "client_ca.0", pki.ca_pem)
        _ssl_heap(ctx, tsrv, psrv)
        _ssl_handshakes(ctx, tsrv, psrv, seen)
        _ssl_throughput(ctx)
    finally:
        tsrv.close()
        psrv.close()
        w.quiet(0.1)
        if saved is not None:
            ca, conf = saved
            if ca is None:
                w.cmd('AT+SYSMFG=0,"client_ca","client_ca.0"')
            else:
                provision(w, "client_ca", "client_ca.0", ca)
            w.ok("AT+CIPSSLCCONF=%s" % b",".join(conf).decode())
        else:
            w.ok("AT+CIPSSLCCONF=0,0,0")


class DnsServer:
    """A DNS server (dnslib) on UDP port 53 of host, or of the first free 127.0.0.x from .2 on:
    A records from `records`, NXDOMAIN for other names. Counts the queries it answers."""

    def __init__(self, records, host=None):
        from dnslib import DNSRecord  # noqa: F401  (fail early if missing)
        self.records = records
        self.count = 0
        hosts = [host] if host else ["127.0.0.%d" % i for i in range(2, 255)]
        last = None
        for h in hosts:
            s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((h, 53))
                self.sock, self.host = s, h
                break
            except OSError as e:
                last = e
                s.close()
        else:
            raise OSError("cannot bind UDP port 53 on %s: %r" % ("any of 127.0.0.2-254" if not host else host, last))
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                q = DNSRecord.parse(data)
                r = q.reply()
                name = str(q.q.qname).rstrip(".")
                ip = self.records.get(name)
                if ip is None:
                    r.header.rcode = RCODE.NXDOMAIN
                elif q.q.qtype == QTYPE.A:
                    r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
                self.count += 1
                self.sock.sendto(r.pack(), addr)
            except Exception:  # noqa: BLE001  (a bad packet: no answer)
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def py_lookup(server, name, want):
    """Seconds for a host-side lookup as the firmware makes it: a fresh UDP socket, a dnslib
    query, the answer parsed with dnslib."""
    from dnslib import DNSRecord
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2)
        q = DNSRecord.question(name)
        s.sendto(q.pack(), (server, 53))
        a = DNSRecord.parse(s.recv(1500))
        got = str(a.rr[0].rdata) if a.rr else None
    finally:
        s.close()
    t = time.perf_counter() - t0
    if a.header.id != q.header.id or got != want:
        raise AssertionError("host lookup of %s: %r" % (name, got))
    return t


class BaseDns(BaseResponder):
    """The least AT+CIPDOMAIN can cost (tools/bench_baseline.py dns SERVER)."""

    def __init__(self, server):
        self.bp = BaselineProc("dns", server)
        self.wire = self.bp.open()


def bench_dns(ctx):
    """AT+CIPDOMAIN against a local dnslib server (AT+CIPDNS=1); beside an IP literal, a host-side query, a minimal loop."""
    w = ctx.wire
    want = ctx.host
    try:
        srv = DnsServer({DNS_NAME: want}, ctx.host if ctx.args.port else None)
    except OSError as e:
        print("  skipped: %s (binding port 53 needs root)" % e)
        return
    saved = w.ok("AT+CIPDNS?") if ctx.args.port else None
    base = None
    try:
        base = BaseDns(srv.host)
        bw = base.wire
        w.ok('AT+CIPDNS=1,"%s"' % srv.host)
        name_line = b'AT+CIPDOMAIN="%s"\r\n' % DNS_NAME.encode()
        lit = want  # the same address as an IP literal: no DNS traffic
        lit_line = b'AT+CIPDOMAIN="%s"\r\n' % lit.encode()
        for wire, tag in ((w, "firmware"), (bw, "minimal loop")):
            for line, ip in ((name_line, want), (lit_line, lit)):
                r = wire.cmd(line.strip().decode())
                if r != b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % ip.encode():
                    raise AssertionError("%s: %s -> %r" % (tag, line.strip().decode(), r))
        py_lookup(srv.host, DNS_NAME, want)
        fw_name, fw_lit, host, mini, mini_lit = [], [], [], [], []
        queries = 0
        for _ in range((ctx.args.lookups + DNS_BLOCK - 1) // DNS_BLOCK):
            c0 = srv.count
            fw_name += round_trips(w, DNS_BLOCK, name_line)
            queries += srv.count - c0
            c0 = srv.count
            fw_lit += round_trips(w, DNS_BLOCK, lit_line)
            if srv.count != c0:
                raise AssertionError("an IP literal in AT+CIPDOMAIN reached the DNS server")
            host += [py_lookup(srv.host, DNS_NAME, want) for _ in range(DNS_BLOCK)]
            mini += round_trips(bw, DNS_BLOCK, name_line)
            mini_lit += round_trips(bw, DNS_BLOCK, lit_line)
        k = len(fw_name)
        hmed, hp99 = stats_ms(host)
        ctx.row("baseline", "host Python DNS query, median", "%.3f ms" % hmed,
                note="(p99 %.3f ms; fresh UDP socket + dnslib packet, %d queries to the same server)" % (hp99, k))
        ctx.row("baseline", "minimal CIPDOMAIN loop, median", "%.3f ms" % stats_ms(mini)[0],
                note="(p99 %.3f ms; MicroPython, blocking UDP query; IP literal: median %.3f ms)" % (
                    stats_ms(mini)[1], stats_ms(mini_lit)[0]))
        med, _ = _ms_rows(ctx, "dns", 'CIPDOMAIN "%s" (one A query to 127.0.0.x:53)' % DNS_NAME, fw_name, host,
                          "host Python query", "(%d lookups, %.2f queries each at the server)" % (k, queries / k))
        ctx.row("dns", "CIPDOMAIN name vs minimal loop", "%.3f ms" % med,
                "minimal CIPDOMAIN loop %.3f ms" % stats_ms(mini)[0], "%.1fx" % (med / stats_ms(mini)[0]))
        lmed, _ = _ms_rows(ctx, "dns", 'CIPDOMAIN "%s" (IP literal, no DNS traffic)' % lit, fw_lit, mini_lit,
                           "minimal loop", "(%d lookups)" % len(fw_lit))
        ctx.row("dns", "CIPDOMAIN name minus IP literal (the resolver's share)", "%.3f ms" % (med - lmed),
                "host Python query %.3f ms" % hmed, "%.1fx" % ((med - lmed) / hmed))
    finally:
        if base is not None:
            base.close()
        srv.close()
        if saved is not None:
            m = re.search(rb"\+CIPDNS:(\d)((?:,\"[^\"]*\")*)", saved)
            if m and m.group(1) == b"1":
                w.ok("AT+CIPDNS=1%s" % m.group(2).decode())
            else:
                w.ok("AT+CIPDNS=0")
        else:
            w.ok("AT+CIPDNS=0")


def bench_tcpv6(ctx):
    """TCPv6 (AT+CIPV6=1, peers on ::1) beside TCPv4 (127.0.0.1): +IPD receive and CIPSEND 2048, alternating."""
    w = ctx.wire
    if ctx.args.port and ctx.host6 == "::1":
        print("  skipped: a real board needs --host-ip6 (this host's IPv6 address on the board's network)")
        return
    n = ctx.args.bytes
    m = ctx.args.send_bytes // 2
    reps = ctx.args.reps
    h6 = ctx.host6
    copy4 = ctx.baseline(BaseCopy)
    copy6 = ctx.baseline(BaseCopy6)
    saved = re.search(rb"\+CIPV6:(\d)", w.ok("AT+CIPV6?"))
    w.ok("AT+CIPMUX=0")
    w.ok("AT+CIPV6=1")
    sink4 = Sink(ctx.host)
    sink6 = Sink(h6)
    try:
        i4, i6, b4, b6 = [], [], [], []
        # Alternating, and which family goes first alternates too.
        for i in range(reps):
            for fam in ((4, 6) if i % 2 == 0 else (6, 4)):
                if fam == 4:
                    b4.append(copy4.down(n))
                    i4.append(_fw_ipd(ctx, n))
                else:
                    b6.append(copy6.down(n))
                    i6.append(_fw_ipd(ctx, n, "TCPv6", h6))
        c4, c6 = [], []
        for i in range(reps):
            for fam in ((4, 6) if i % 2 == 0 else (6, 4)):
                if fam == 4:
                    c4.append(_fw_cipsend(ctx, sink4, 2048, m))
                else:
                    c6.append(_fw_cipsend(ctx, sink6, 2048, m, "TCPv6", h6))
    finally:
        sink4.close()
        sink6.close()
        w.ok("AT+CIPV6=%s" % (saved.group(1).decode() if saved else "0"))
    d4 = _base_row(ctx, "raw copy TCP->pty (tcpv6 section, 127.0.0.1)", b4, n)
    d6 = _base_row(ctx, "raw copy TCPv6->pty (::1)", b6, n)
    r4 = statistics.median(r[0] for r in i4)
    r6 = statistics.median(r[0] for r in i6)
    junk = [j for r in i4 + i6 for j in r[3]]
    note = _rate_note(i6, _mib(n))[:-1] + "; %.0f B/frame; TCPv4: %s)" % (
        n / max(1, i6[-1][2]), spread([r[0] for r in i4], "%.2f"))
    if junk:
        note += " UNEXPECTED text between frames: %r" % junk[:3]
    ctx.row("tcpv6", "+IPD receive, TCPv6 (%s)" % h6, "%.2f MB/s" % r6, "TCPv4 (%s) %.2f MB/s" % (ctx.host, r4),
            "%.0f%%" % (100 * r6 / r4), note)
    ctx.row("tcpv6", "the raw copy loop, IPv6 vs IPv4 (same runs)", "%.1f MB/s" % d6, "IPv4 %.1f MB/s" % d4,
            "%.0f%%" % (100 * d6 / d4), "(+IPD against its own family's copy: v6 %.1f%%, v4 %.1f%%)" % (
                100 * r6 / d6, 100 * r4 / d4))
    s4 = statistics.median(r[0] for r in c4)
    s6 = statistics.median(r[0] for r in c6)
    ctx.row("tcpv6", "CIPSEND 2048B, TCPv6 (%s)" % h6, "%.2f MB/s" % s6, "TCPv4 %.2f MB/s" % s4,
            "%.0f%%" % (100 * s6 / s4), _cipsend_note(c6, m)[:-1] + "; TCPv4: %s)" % spread(
                [r[0] for r in c4], "%.2f"))


# -- the ESP32 twin: throughput and loss against the line rate ------------------------------------
# On `--board esp32` the board's UART is tools/twin/machine.py: bytes move at the rate AT+UART_CUR
# sets (start + 8 data + stop bits: an 8N1 line carries baud/10 bytes/s), through an RX ring of
# rxbuf (+128 FIFO) bytes that drops what overflows unless RTS is on, and a TX ring whose bytes are
# lost when the host's buffer (the pty, about 15 KB) is full, unless CTS is on. The host side of a
# pty ignores its own termios speed: the bench changes only the board's rate. Every figure below is
# one run, its bytes checked with SHA-256 at the receiving end, and the twin's counters
# (<flash>.stats.json) read before and after it.
TWIN_BAUDS = "115200,921600,3000000"
TWIN_RELEASES = ("1.24", "1.25", "1.26", "1.27", "1.28")  # tools/vboard.py RELEASES
TWIN_SECTIONS = ("twin_rate", "twin_ipd", "twin_flow", "twin_loop")
TWIN_SECTION_S = 200.0  # a twin section runs every rate
STALL_RCVBUF = 4096  # the stalling peer's SO_RCVBUF (Linux doubles it): back-pressure reaches the board soon
QUIET_S = 1.0  # after a transfer, this long without a byte means nothing more is coming


def board_args(a):
    """tools/vboard.py's personality options for the bench's arguments."""
    return ["--board", a.board] + (["--mpy", a.mpy] if a.board == "esp32" else [])


def twin_bauds(a):
    return tuple(int(b) for b in str(a.bauds).split(",") if b.strip())


def line_rate(baud):
    """Bytes/s an 8N1 line carries: 10 bits a byte (start, 8 data, stop)."""
    return baud / 10.0


def twin_bytes(ctx, baud):
    """Bytes per run at this rate: about --line-seconds of the line, in whole 64 KiB."""
    return max(1, int(line_rate(baud) * ctx.args.line_seconds) // 65536) * 65536


def _kb(rate_mbps):
    return "%.2f kB/s" % (rate_mbps * 1000)


def _of_line(rate_mbps, baud):
    return "%.1f%% of the line" % (100 * rate_mbps * 1e6 / line_rate(baud))


def _at(baud):
    return "%s baud" % format(baud, ",")


def _b(n):
    return format(n, ",")


def twin_stats(ctx, fresh=True):
    """The twin's UART counters (VirtualBoard.stats(), <flash>.stats.json, saved about twice a
    second while the firmware runs). fresh: wait (at most 2 s) for a copy saved from now on."""
    if fresh:
        path = ctx.vb.flash.parent / (ctx.vb.flash.name + ".stats.json")
        t = time.time()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                if path.stat().st_mtime > t:
                    break
            except OSError:
                pass
            time.sleep(0.05)
    return ctx.vb.stats()


class TwinMeter:
    """The twin's counters between two takes: what a run lost on the line and how long
    UART.write() held the firmware's loop meanwhile."""

    KEYS = ("rx_lost", "tx_lost", "write_blocked_total_ms", "irq_events")

    def __init__(self, ctx):
        self.ctx = ctx
        self.first = self.last = twin_stats(ctx)
        self.log_pos = len(ctx.vb.log_text())
        self.runs = []  # (label, delta) of every run measured

    def take(self, label=None):
        now = twin_stats(self.ctx)
        d = {k: now.get(k, 0) - self.last.get(k, 0) for k in self.KEYS}
        d["restarted"] = any(v < 0 for v in d.values())  # a new firmware process counts from 0
        if d["restarted"]:
            d.update({k: now.get(k, 0) for k in self.KEYS})
        d["longest_ms"] = now.get("write_blocked_ms", 0)  # since the firmware started
        text = self.ctx.vb.log_text()
        new = text[self.log_pos:]
        d["errors"] = loop_errors(new)
        self.log_pos = len(text)
        if d["errors"]:
            # The first one in full (the bench's scratch flash and log are deleted at the end).
            first = "at: loop error:" + new.split("at: loop error:")[1].split("\nat:")[0]
            print("  the board's log (%s):\n    %s" % (label or "between runs", first.strip().replace("\n", "\n    ")))
        self.last = now
        if label:
            self.runs.append((label, d))
        return d


def loop_errors(log):
    """The firmware's "at: loop error" reports in a piece of its log (UART0), summarised:
    ["MemoryError: ... (lib/at/pump.py:59) x3", ...]."""
    found = {}
    for block in log.split("at: loop error:")[1:]:
        where = re.findall(r'File "([^"]+)", line (\d+)', block.split("\nat:")[0])
        what = re.search(r"^(\w+(?:Error|Exception)\b[^\n]*)", block, re.M)
        key = "%s (%s)" % (what.group(1) if what else "?", "%s:%s" % (
            os.path.relpath(where[-1][0], ROOT), where[-1][1]) if where else "?")
        key = re.sub(r"allocating \d+ bytes", "allocating N bytes", key)
        found[key] = found.get(key, 0) + 1
    return ["%s x%d" % (k, n) if n > 1 else k for k, n in found.items()]


def _meter(ctx):
    if getattr(ctx, "twin", None) is None:
        ctx.twin = TwinMeter(ctx)
    return ctx.twin


def _twin_note(d):
    s = "rx_lost %d, tx_lost %d, UART.write() held the loop %d ms" % (
        d["rx_lost"], d["tx_lost"], d["write_blocked_total_ms"])
    if d["restarted"]:
        s += "; THE FIRMWARE RESTARTED during this run (counters since its start)"
    if d["errors"]:
        s += "; THE BOARD'S LOG: loop error %s" % "; ".join(d["errors"])
    return s


def twin_line(ctx, baud, flow=0):
    """AT+UART_CUR=<baud>,8,1,0,<flow> (0 none, 1 RTS, 2 CTS, 3 both): OK comes at the old rate,
    then the twin's line switches; the host's side of the pty needs nothing."""
    w = ctx.wire
    w.ok("AT+UART_CUR=%d,8,1,0,%d" % (baud, flow))
    for _ in range(5):
        time.sleep(0.05)
        w.quiet(0.05)
        try:
            w.ok("AT", 1.0)  # input sent during the switch may be dropped (the driver flushes it)
            return
        except (Timeout, AssertionError):
            pass
    raise Timeout("the board did not answer AT at %d baud, flow %d" % (baud, flow))


def _twin_fail(ctx, section, figure, e):
    ctx.row(section, figure, "FAILED", note="%s: %s" % (type(e).__name__, e))
    ctx.failed.append("%s (%s)" % (section, figure))


class Stall:
    """A reader's pause: after `after` bytes it stops reading for `seconds`, once."""

    def __init__(self, after, seconds):
        self.after = after
        self.seconds = seconds
        self.over = threading.Event()

    def hold(self):
        time.sleep(self.seconds)
        self.over.set()


def _host_write(w, data, until, piece=16384):
    """The host writes data flat out into the port. Returns (bytes the port took, the Timeout
    that stopped it or None); on a Timeout up to `piece` more bytes may have gone in."""
    mv = memoryview(data)
    done = 0
    try:
        while done < len(mv) and time.monotonic() < until:
            done += w.write(mv[done:done + piece], 10, until=until)
    except Timeout as e:
        return done, e
    return done, None


def _settle(flow, want, quiet=QUIET_S, limit=20.0):
    """Wait until flow holds `want` bytes or none came for `quiet` seconds."""
    stop = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while flow.n < want and time.monotonic() < stop:
        if flow.n != last:
            last, since = flow.n, time.monotonic()
        elif time.monotonic() - since > quiet:
            break
        time.sleep(0.02)


def _arrived(flow, data, want):
    """"SHA-256 ok" when all of data arrived intact; otherwise what the hash says."""
    if flow.n == len(data) and flow.digest() == want:
        return "SHA-256 ok"
    if flow.n <= len(data) and flow.digest() == hashlib.sha256(data[:flow.n]).hexdigest():
        return "SHA-256: the first %s B arrived intact, the rest did not arrive" % _b(flow.n)
    return "SHA-256 MISMATCH: bytes missing or changed inside the stream"


def bench_twin_rate(ctx):
    """ESP32 twin: passthrough both ways and CIPSEND 2048 at each line rate, as a fraction of the line (baud/10 B/s)."""
    w = ctx.wire
    meter = _meter(ctx)
    bauds = twin_bauds(ctx.args)
    peer = JobPeer(ctx.host)
    sink = Sink(ctx.host)
    run_s = ctx.run_s
    inside = False
    S = "twin_rate"
    try:
        w.ok("AT+CIPMUX=0")
        w.ok("AT+CIPMODE=1")
        w.ok("AT+TRANSINTVL=20")
        _enter(w, ctx, peer.port)  # one passthrough link for every rate: a JobPeer serves one connection
        inside = True
        peer.srv.wait_conn(5)
        plus(w)
        inside = False
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            limit = 2 * n / line_rate(baud) + 3
            for flow_ctl, dirs in ((0, ("up", "down")), (3, ("down",))):
                twin_line(ctx, baud, flow_ctl)
                _resume(w)
                inside = True
                for d in dirs:
                    fig = "passthrough %s @%s%s" % ("UART->peer" if d == "up" else "peer->UART", _at(baud),
                                                    ", RTS/CTS" if flow_ctl else "")
                    meter.take()
                    try:
                        if d == "up":
                            rate, whole, _ = pipe_up(w, peer, n, limit, b"tw-up")
                        else:
                            rate, whole = pipe_down(w, peer, n, limit, b"tw-down")
                    except Exception as e:  # noqa: BLE001  (reported as a failure line)
                        _twin_fail(ctx, S, fig, e)
                        meter.take(fig)
                        continue
                    dl = meter.take(fig)
                    what = "%s B, SHA-256 ok" % _b(n) if whole else "TIME LIMIT HIT (%.0f s): rate over what arrived" % limit
                    ctx.row(S, fig, _kb(rate), "line %s" % _kb(line_rate(baud) / 1e6), _of_line(rate, baud),
                            "(%s; %s)" % (what, _twin_note(dl)))
                plus(w)
                inside = False
        w.quiet(0.1)
        w.ok("AT+CIPMODE=0")
        w.ok("AT+CIPCLOSE", timeout=5)
        # AT+CIPSEND=2048 / ">" / data / SEND OK: what the wire allows at best is the share of the
        # data in the bytes both ways (the host waits for ">" and for SEND OK each time).
        size = 2048
        over = len(b"AT+CIPSEND=%d\r\n" % size) + len(b"\r\nOK\r\n\r\n>") + len(
            b"\r\nRecv %d bytes\r\n" % size) + len(SEND_OK)
        bound = 100.0 * size / (size + over)
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            ctx.run_s = 2 * n / line_rate(baud) + 3
            twin_line(ctx, baud, 0)
            # The round trip a CIPSEND pays twice: AT -> OK, 10 bytes of line.
            med, p99 = stats_ms(round_trips(w, 200))
            ctx.row(S, "AT->OK median @%s" % _at(baud), "%.3f ms" % med,
                    "10 B of line %.3f ms" % (10 * 1000 / line_rate(baud)), "",
                    "(200 commands, echo off; p99 %.3f ms)" % p99)
            fig = "CIPSEND %dB @%s" % (size, _at(baud))
            meter.take()
            try:
                rate, whole, s1, s2 = _fw_cipsend(ctx, sink, size, n)
            except Exception as e:  # noqa: BLE001
                _twin_fail(ctx, S, fig, e)
                meter.take(fig)
                continue
            dl = meter.take(fig)
            what = "%s B, SHA-256 ok" % _b(n) if whole else "TIME LIMIT HIT: rate over what was acknowledged"
            ctx.row(S, fig, _kb(rate), "line %s" % _kb(line_rate(baud) / 1e6), _of_line(rate, baud),
                    "(%s; the protocol's bytes allow %.1f%%; per send %.2f ms command->'>' + %.2f ms data->SEND OK; %s)"
                    % (what, bound, s1, s2, _twin_note(dl)))
    finally:
        ctx.run_s = run_s
        if inside:
            plus(w)
        w.quiet(0.1)
        try:
            w.ok("AT+CIPMODE=0")
            w.cmd("AT+CIPCLOSE", timeout=5)
            twin_line(ctx, 115200, 0)
        finally:
            w.quiet(0.1)
            peer.close()
            sink.close()


def _server_clients(ctx, board, port, k):
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


def bench_twin_ipd(ctx):
    """ESP32 twin: +IPD from 5 links at once (CIPMUX=1, 5 host clients of AT+CIPSERVER sending) at each line rate."""
    w = ctx.wire
    meter = _meter(ctx)
    k = SERVER_CLIENTS
    port = free_port(ctx.host)
    run_s = ctx.run_s
    opened = []
    S = "twin_ipd"
    w.ok("AT+CIPMUX=1")
    w.ok("AT+CIPSERVER=1,%d" % port)
    try:
        clients, opened = _server_clients(ctx, ctx.host, port, k)
        for baud in twin_bauds(ctx.args):
            n = twin_bytes(ctx, baud)
            per = n // k
            ctx.run_s = 2 * n / line_rate(baud) + 3
            twin_line(ctx, baud, 0)
            fig = "+IPD, %d links at once @%s" % (k, _at(baud))
            meter.take()
            try:
                rate, whole, frames, junk, total = _fw_server_rx(ctx, clients, per)
            except Exception as e:  # noqa: BLE001
                _twin_fail(ctx, S, fig, e)
                meter.take(fig)
                continue
            dl = meter.take(fig)
            head = len(b"\r\n+IPD,0,2920:")
            what = ("%d x %s B, SHA-256 ok per link" % (k, _b(per)) if whole else
                    "TIME LIMIT HIT: %s of %s B arrived" % (_b(total), _b(per * k)))
            note = "(%s; %d frames, %.0f B/frame: the +IPD headers take ~%.1f%% of the line; %s)" % (
                what, frames, total / max(1, frames), 100.0 * head * frames / max(1, total + head * frames),
                _twin_note(dl))
            if junk:
                note += " UNEXPECTED text between frames: %r" % junk[:3]
            ctx.row(S, fig, _kb(rate), "line %s" % _kb(line_rate(baud) / 1e6), _of_line(rate, baud), note)
    finally:
        ctx.run_s = run_s
        w.write(b"AT+CIPSERVER=0,1\r\n")
        try:
            w.read_until(FINAL, 10)
        finally:
            for c in opened:
                c.close()
            w.quiet(0.2)
            w.ok("AT+CIPMUX=0")
            twin_line(ctx, 115200, 0)


def _loss_sendl(ctx, sink, n, limit):
    """AT+CIPSENDL=<n>; the host writes n bytes flat out while the sink reads as fast as it can.
    Returns (host wrote, arrived, integrity, how it ended, MB/s over what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-sendl")
    flow = sink.flow = Flow(n)
    w.ok('AT+CIPSTART="TCP","%s",%d' % (ctx.host, sink.port), timeout=20)
    w.write(b"AT+CIPSENDL=%d\r\n" % n)
    r = w.read_until(b">", 5)
    if r != b"\r\nOK\r\n\r\n>":
        raise AssertionError("AT+CIPSENDL -> %r" % r)
    out = [0, None]
    until = time.monotonic() + limit

    def writer():
        out[0], out[1] = _host_write(w, data, until)

    t0 = time.perf_counter()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    end = re.compile(rb"\r\n(SEND OK|SEND FAIL|SEND CANCELLED)\r\n")
    try:
        r = w.read_until(end, limit + 1)
        how = "ended by itself: %s" % end.search(r).group(1).decode()
    except Timeout:
        t.join(12)
        plus(w)  # bytes are missing: the board still waits for them; "+++" ends the send
        try:
            r = w.read_until(end, 10)
            how = "no end after %.0f s, then +++: %s" % (limit + 1, end.search(r).group(1).decode())
        except Timeout:
            how = "no end after %.0f s, nor after +++" % (limit + 1)
    t.join(12)
    _settle(flow, out[0])
    flow.done.set()
    rate = mbps(flow.n, (flow.t_last or time.perf_counter()) - t0)
    if out[1] is not None:
        how += "; the host's write stopped: %s" % out[1]
    w.quiet(0.1)
    w.cmd("AT+CIPCLOSE", timeout=5)
    w.quiet(0.05)
    return out[0], flow.n, _arrived(flow, data, want), how, rate


def _loss_up(ctx, peer, n, stall_s, limit):
    """Passthrough: the host writes n bytes flat out; the peer stops reading for stall_s once n/8
    arrived. Returns (host wrote, arrived, integrity, seconds the host took to write, MB/s over
    what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-stall-up")
    flow = Flow(n)
    stall = Stall(n // 8, stall_s)
    until = time.monotonic() + limit + stall_s
    peer.jobs.put(("recv", flow, stall, until + 20))
    t0 = time.perf_counter()
    wrote, err = _host_write(w, data, until)
    t_write = time.perf_counter() - t0
    stall.over.wait(max(0.0, until - time.monotonic()) + stall_s)
    _settle(flow, wrote)
    flow.done.set()  # ends the peer's job
    rate = mbps(flow.n, (flow.t_last or time.perf_counter()) - t0)
    integrity = _arrived(flow, data, want)
    if err is not None:
        integrity += "; the host's write stopped: %s" % err
    return wrote, flow.n, integrity, t_write, rate


def _loss_down(ctx, peer, n, stall_s, limit):
    """Passthrough: the peer sends n bytes; the host reads flat out but stops for stall_s once n/8
    arrived. Returns (arrived, integrity, MB/s over what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-stall-down")
    flow = Flow(n)
    started = [None]
    deadline = time.monotonic() + limit + stall_s
    peer.jobs.put(("send", data, started, deadline + 5))
    buf = w.buf
    while flow.n < n // 8 and time.monotonic() < deadline:
        if w.read_some(0.1):
            flow.add(bytes(buf))
            buf.clear()
    time.sleep(stall_s)  # the host reads nothing: its buffer (the pty) fills
    since = time.monotonic()
    while flow.n < n and time.monotonic() < deadline + 15:
        if w.read_some(0.1):
            flow.add(bytes(buf))
            buf.clear()
            since = time.monotonic()
        elif time.monotonic() - since > QUIET_S:
            break
    t_end = flow.t_last or time.perf_counter()
    return flow.n, _arrived(flow, data, want), mbps(flow.n, t_end - (started[0] or t_end))


def _loss_row(ctx, section, fig, sent, got, dl, sender, receiver, detail):
    """One loss figure: what arrived of what was sent, and where the difference went (the twin's
    line counters; whatever they do not explain was lost elsewhere, e.g. inside the firmware)."""
    lost = sent - got
    dl["lost"] = lost
    line = dl["rx_lost"] + dl["tx_lost"]
    acc = "the line dropped %s B" % _b(line)
    if lost > line:
        acc += ", %s B LOST ELSEWHERE (not on the line)" % _b(lost - line)
    elif lost < line:
        acc += " (%s B more than went missing: counted in another run?)" % _b(line - lost)
    ctx.row(section, fig, "%s of %s B reached the %s" % (_b(got), _b(sent), receiver), "%s %s B" % (sender, _b(sent)),
            "%s lost" % _b(lost), "(%s; %s; %s)" % (detail, acc, _twin_note(dl)))


def bench_twin_flow(ctx):
    """ESP32 twin: bytes lost without and with RTS/CTS (flow 0 / 3) at each line rate: CIPSENDL flat out, a stalling peer, a stalling host."""
    w = ctx.wire
    meter = _meter(ctx)
    bauds = twin_bauds(ctx.args)
    S = "twin_flow"
    names = {0: "flow 0 (none)", 3: "flow 3 (RTS/CTS)"}
    sink = Sink(ctx.host)
    peer = JobPeer(ctx.host)
    # A small receive window: when the peer stops reading, the board's socket fills within
    # ~20 KB and the back-pressure reaches the UART (a stand-in for any slow server).
    peer.srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
    inside = False
    try:
        w.ok("AT+CIPMUX=0")
        w.ok("AT+CIPMODE=0")
        w.ok("AT+CIPSENDLCFG=1048576")  # few reports: the data is the point
        # 1. AT+CIPSENDL, the host writing flat out, the peer keeping up.
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            limit = 2 * n / line_rate(baud) + 3
            for fc in (0, 3):
                twin_line(ctx, baud, fc)
                fig = "CIPSENDL flat out @%s, %s" % (_at(baud), names[fc])
                meter.take()
                try:
                    wrote, got, integrity, how, rate = _loss_sendl(ctx, sink, n, limit)
                except Exception as e:  # noqa: BLE001
                    _twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                    continue
                dl = meter.take(fig)
                _loss_row(ctx, S, fig, wrote, got, dl, "host wrote", "peer", "%s; %s; %s = %s" % (
                    integrity, how, _kb(rate), _of_line(rate, baud)))
        w.ok("AT+CIPSENDLCFG=1024,2920")
        # 2, 3. Passthrough: a peer that stops reading for a while; a host that stops reading.
        w.ok("AT+CIPMODE=1")
        w.ok("AT+TRANSINTVL=20")
        twin_line(ctx, 115200, 0)
        _enter(w, ctx, peer.port)
        inside = True
        peer.srv.wait_conn(5)
        plus(w)
        inside = False
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            line_s = n / line_rate(baud)
            stall_s = line_s / 2  # half the transfer's line time: more than every buffer on the way holds
            limit = 2 * line_s + 3
            for fc in (0, 3):
                twin_line(ctx, baud, fc)
                _resume(w)
                inside = True
                fig = "passthrough UART->peer @%s, %s, peer stalls" % (_at(baud), names[fc])
                meter.take()
                try:
                    wrote, got, integrity, t_write, rate = _loss_up(ctx, peer, n, stall_s, limit)
                    dl = meter.take(fig)
                    _loss_row(ctx, S, fig, wrote, got, dl, "host wrote", "peer",
                              "the peer stopped reading for %.1f s after %s B; %s; the host's writes took %.1f s "
                              "(%.1f s of line); %s over what arrived" % (
                                  stall_s, _b(n // 8), integrity, t_write, line_s, _kb(rate)))
                except Exception as e:  # noqa: BLE001
                    _twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                fig = "passthrough peer->UART @%s, %s, host stalls" % (_at(baud), names[fc])
                meter.take()
                try:
                    got, integrity, rate = _loss_down(ctx, peer, n, stall_s, limit)
                    dl = meter.take(fig)
                    _loss_row(ctx, S, fig, n, got, dl, "peer sent", "host",
                              "the host stopped reading for %.1f s after %s B; %s; %s over what arrived" % (
                                  stall_s, _b(n // 8), integrity, _kb(rate)))
                except Exception as e:  # noqa: BLE001
                    _twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                plus(w)
                inside = False
                w.quiet(0.2)
    finally:
        if inside:
            plus(w)
        w.quiet(0.2)
        try:
            w.ok("AT+CIPMODE=0")
            w.cmd("AT+CIPCLOSE", timeout=5)
            w.ok("AT+CIPSENDLCFG=1024,2920")
            twin_line(ctx, 115200, 0)
        finally:
            w.quiet(0.1)
            peer.close()
            sink.close()


def bench_twin_loop(ctx):
    """ESP32 twin: how long UART.write() held the firmware's loop, and what the line lost, over all the runs above."""
    meter = _meter(ctx)
    st = twin_stats(ctx)
    runs = meter.runs
    held = [(lbl, d["write_blocked_total_ms"]) for lbl, d in runs if d["write_blocked_total_ms"]]
    ctx.row("twin_loop", "UART.write() held the loop, longest once", "%d ms" % st.get("write_blocked_ms", 0),
            note="(since the firmware started; the firmware is built never to wait in UART.write())")
    ctx.row("twin_loop", "UART.write() held the loop, in all", "%d ms" % st.get("write_blocked_total_ms", 0),
            note="(%d measured runs, %d with any wait%s)" % (
                len(runs), len(held), ": %s" % ", ".join("%s %d ms" % h for h in held[:5]) if held else ""))
    ctx.row("twin_loop", "bytes the line lost, RX / TX", "%s / %s B" % (
        _b(st.get("rx_lost", 0)), _b(st.get("tx_lost", 0))),
        note="(since the firmware started; flow 0 with a stalling peer or host loses by design: see twin_flow)")
    lost_fc = [(lbl, d) for lbl, d in runs if "RTS/CTS" in lbl and (d["rx_lost"] or d["tx_lost"] or d.get("lost"))]
    ctx.row("twin_loop", "runs with RTS/CTS on that lost bytes", "%d" % len(lost_fc),
            note="(%s)" % ("; ".join("%s: %s B lost, the line's counters rx %d, tx %d" % (
                lbl, _b(d.get("lost", 0)), d["rx_lost"], d["tx_lost"]) for lbl, d in lost_fc)
                if lost_fc else "the aim: none"))
    odd = [(lbl, d) for lbl, d in runs if d.get("lost", 0) > d["rx_lost"] + d["tx_lost"]]
    ctx.row("twin_loop", "runs that lost bytes not on the line", "%d" % len(odd),
            note="(%s)" % ("; ".join("%s: %s B" % (lbl, _b(d["lost"] - d["rx_lost"] - d["tx_lost"]))
                                     for lbl, d in odd) if odd else "none"))
    ctx.row("twin_loop", "UART RX events (irq) in all", _b(st.get("irq_events", 0)))
    try:
        ctx.wire.quiet(0.2)
        alive = "yes" if ctx.wire.cmd("AT", 3).endswith(OK) else "no"
    except Timeout:
        alive = "NO: no answer within 3 s"
    ctx.row("twin_loop", "the board answers AT after all the runs", alive)
    errs = [(lbl, d["errors"]) for lbl, d in runs if d["errors"]]
    ctx.row("twin_loop", "runs with a loop error in the board's log", "%d" % len(errs),
            note="(%s)" % ("; ".join("%s: %s" % (lbl, ", ".join(e)) for lbl, e in errs) if errs else "none"))
    if any(d["restarted"] for _, d in runs):
        ctx.row("twin_loop", "FIRMWARE RESTARTS during runs", ", ".join(lbl for lbl, d in runs if d["restarted"]))


def bench_heap32(ctx):
    """The firmware's GC heap in the chip's units: tools/heap32/run.py boots it
    on a 32-bit MicroPython 1.27.0 (WebAssembly) and on the 64-bit unix port over
    the same stand-ins, lib/ as .mpy files (what `make deploy` puts on a board)."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "heap32" / "run.py"), "--json"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        ctx.row("heap32", "32-bit heap measurement FAILED", r.stderr.strip()[-200:])
        return
    steps = json.loads(r.stdout)["steps"]
    for key, label in (("boot", "GC heap at ready, .mpy (32-bit)"),
                       ("firmware", "GC heap, every group loaded (32-bit)")):
        st = steps[key]
        ctx.row("heap32", label, "%d B" % st["bytes32"], "64-bit unix port %d B" % st["bytes64"],
                "x%.2f on 64-bit" % st["factor"])


# (name, function, needs the board); the board's sections run after "setup".
SECTIONS = [
    ("machine", bench_machine, False),
    ("heap32", bench_heap32, False),
    ("setup", bench_setup, True),
    ("latency", bench_latency, True),
    ("cipsend", bench_cipsend, True),
    ("ipd", bench_ipd, True),
    ("heap", bench_heap, True),
    ("server", bench_server, True),
    ("passive", bench_passive, True),
    ("sendl", bench_sendl, True),
    ("passthrough", bench_passthrough, True),
    ("ssl", bench_ssl, True),
    ("dns", bench_dns, True),
    ("tcpv6", bench_tcpv6, True),
    ("twin_rate", bench_twin_rate, True),
    ("twin_ipd", bench_twin_ipd, True),
    ("twin_flow", bench_twin_flow, True),
    ("twin_loop", bench_twin_loop, True),
]


def summary(ctx):
    print("\n| figure | firmware | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    for section, figure, value, base, ratio in ctx.rows:
        if section != "baseline":
            print("| %s | %s | %s | %s |" % (figure, value, base or "-", ratio or "-"))
    if getattr(ctx, "target", None):
        print("\ntarget: " + ctx.target)
    if ctx.failed:
        print("\nFAILED sections: %s" % ", ".join(ctx.failed))


def _recover(ctx):
    """After a failed section: leave the board usable for the next one."""
    if ctx.wire is None:
        return
    try:
        w = ctx.wire
        w.quiet(0.5)
        plus(w)  # leaves passthrough or an AT+CIPSENDL; "\r\n" ends a stray partial line
        w.write(b"\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPMODE=0\r\nAT+CIPSERVER=0,1\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPCLOSE=5\r\nAT+CIPRECVTYPE=5,0\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPCLOSE\r\nAT+CIPMUX=0\r\nAT+TRANSINTVL=20\r\n"
                b"AT+CIPSENDLCFG=1024,2920\r\nAT+CIPV6=0\r\nAT+CIPDNS=0\r\n")
        w.quiet(0.3)
        if ctx.args.board == "esp32" and not ctx.args.port:
            w.write(b"AT+UART_CUR=115200,8,1,0,0\r\n")  # the twin's line back to its factory rate
            w.quiet(0.3)
    except Exception:
        pass


def _watchdog(signum, frame):
    raise Abort("the whole run took longer than %d s" % WATCHDOG_S)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", default=None, help="serial port or pyserial URL of a real board")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--host-ip", default="127.0.0.1", help="this host's address as the board sees it")
    p.add_argument("--ssid", default="vboard")
    p.add_argument("--password", default="vboardpass")
    p.add_argument("--heap", default=None, help="the virtual board's heap (default: the launcher's)")
    p.add_argument("--count", type=int, default=1000, help="AT commands timed on each side (default 1000)")
    p.add_argument("--bytes", type=int, default=16 * MiB,
                   help="bytes per copy, +IPD, server receive (all clients), CIPSENDL and passthrough run "
                        "(default 16 MiB)")
    p.add_argument("--send-bytes", type=int, default=8 * MiB,
                   help="bytes per CIPSEND run (firmware and minimal loop), server send (all clients) "
                        "and passive run (default 8 MiB)")
    p.add_argument("--reps", type=int, default=5, help="runs per throughput figure; the median is shown")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="time limit of all the runs of one throughput figure on one side (default 10)")
    p.add_argument("--packets", type=int, default=200,
                   help="1-byte packets timed at AT+TRANSINTVL=20 (default 200; five times as many at 0)")
    p.add_argument("--handshakes", type=int, default=20,
                   help="AT+CIPSTART connects timed per kind (TCP, SSL auth 0, SSL auth 2; default 20)")
    p.add_argument("--lookups", type=int, default=200, help="AT+CIPDOMAIN lookups timed per kind (default 200)")
    p.add_argument("--host-ip6", default="::1", help="this host's IPv6 address as the board sees it (tcpv6)")
    p.add_argument("--only", default="", help="comma-separated section names (machine and setup always run)")
    p.add_argument("--board", choices=("unix", "esp32"), default=os.getenv("BOARD") or "unix",
                   help="the virtual board's personality (default unix, or $BOARD): esp32 is the ESP32 twin, "
                        "whose UART runs at the line rate; it runs the twin_* sections by default")
    p.add_argument("--mpy", default=os.getenv("MPY") or "1.27", choices=TWIN_RELEASES,
                   help="the ESP32 twin's MicroPython release (default 1.27, or $MPY)")
    p.add_argument("--bauds", default=TWIN_BAUDS, help="line rates of the twin sections (default %s)" % TWIN_BAUDS)
    p.add_argument("--line-seconds", type=float, default=5.7,
                   help="twin sections: bytes per run = this many seconds of the line, in whole 64 KiB "
                        "(default 5.7: 64 KiB at 115200, 512 KiB at 921600, 1.6 MiB at 3000000)")
    args = p.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    names = [s[0] for s in SECTIONS]
    if only - set(names):
        p.error("unknown section(s) %s; known: %s" % (", ".join(sorted(only - set(names))), ", ".join(names)))
    twin = args.board == "esp32" and not args.port

    ctx = Ctx(args)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.alarm(WATCHDOG_S)
    have_board = True
    try:
        for name, fn, needs_board in SECTIONS:
            if only and name not in only and name not in ("machine", "setup"):
                continue
            if name in TWIN_SECTIONS and not twin:
                if only:
                    print("\n== %s: skipped (needs the ESP32 twin: --board esp32, no --port)" % name)
                continue
            if twin and not only and name not in TWIN_SECTIONS and name not in ("machine", "setup"):
                # Their ceilings are the unix port's pty copy loops and 16 MiB runs: name them in --only
                # to run them on the twin anyway.
                print("\n== %s: skipped on the ESP32 twin (unix personality: pty ceilings, heap)" % name)
                continue
            if needs_board and not have_board:
                print("\n== %s: skipped (no board)" % name)
                continue
            print("\n== %s: %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]), flush=True)
            t0 = time.monotonic()
            try:
                fn(ctx)
            except Exception as e:
                ctx.failed.append(name)
                print("  FAILED: %s: %s" % (type(e).__name__, e), flush=True)
                traceback.print_exc(limit=4)
                if ctx.vb is not None:
                    print("  (the board's log: %s)" % ctx.vb.log)
                if name == "setup":
                    have_board = False
                else:
                    _recover(ctx)
            dt = time.monotonic() - t0
            print("  (%.1f s)" % dt, flush=True)
            budget = TWIN_SECTION_S if name in TWIN_SECTIONS else SECTION_S
            if dt > budget:
                print("  WARNING: section %s took %.0f s (meant to take under %.0f s)" % (name, dt, budget))
        summary(ctx)
    except Abort as e:
        print("\nABORTED: %s" % e)
        ctx.failed.append("watchdog")
    finally:
        signal.alarm(0)
        ctx.close()
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())
