#!/usr/bin/env python3
"""Benchmarks: the firmware beside the ceiling this runtime allows, in one run.

    python tools/bench.py [--port PORT] [--only NAME,NAME] [--bytes N] [--reps N]

Without --port it starts its own virtual board (tools/vboard.py) on a scratch
flash directory. The ceilings come from tools/bench_baseline.py, a minimal
MicroPython program run under the same interpreter with the same pty technique
as the launcher (the pty master as its non-blocking stdin/stdout). Baseline and
firmware runs are interleaved (baseline, firmware, baseline, firmware ...) so
that a busy machine slows both alike, and every figure is printed beside its
ceiling with the ratio. Peers listen on 127.0.0.1 (or --host-ip for a real board).

Sections are plain functions in SECTIONS, run in order with one shared context
(ctx.wire is the board's port, ctx.row(...) records a figure, ctx.baseline(...)
gives a running baseline helper). To add one (server throughput, passthrough,
SSL ...), write `def bench_x(ctx)` and append ("x", bench_x, True) to SECTIONS.
"""
import argparse
import hashlib
import os
import pathlib
import queue
import re
import select
import signal
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
    "for n in commands.GROUPS: __import__('at.commands.' + n)\n"
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

    def write(self, data, timeout=10.0):
        if isinstance(data, str):
            data = data.encode()
        if self.fd is None:
            self.ser.write(data)
            self.ser.flush()
            return
        mv = memoryview(data)
        deadline = None
        while mv:
            try:
                n = os.write(self.fd, mv)
            except BlockingIOError:
                n = 0
            if n:
                mv = mv[n:]
                continue
            if deadline is None:
                deadline = time.monotonic() + timeout
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("the port took no input for %.1fs" % timeout)
            self._pout.poll(min(left, 0.1) * 1000)

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

    def __init__(self, total):
        self.total = total
        self.n = 0
        self.h = hashlib.sha256()
        self.t_last = None
        self.done = threading.Event()

    def add(self, data):
        self.h.update(data)
        self.n += len(data)
        self.t_last = time.perf_counter()
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


class BaseCopy:
    """The bare copy loop on one socket: each call moves n bytes one way and returns MB/s."""

    def __init__(self, ctx):
        self.jobs = queue.Queue()
        self.srv = TcpServer("127.0.0.1", self._handler)
        self.bp = BaselineProc("copy", "127.0.0.1", self.srv.port)
        self.srv.wait_conn(10)
        self.wire = Wire(self.bp.path)
        self.seconds = ctx.args.seconds

    def _handler(self, c, srv):
        while not srv._stop:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job[0] == "recv":
                flow = job[1]
                while not flow.done.is_set():
                    d = c.recv(1 << 20)
                    if not d:
                        return
                    flow.add(d)
            else:
                job[2][0] = time.perf_counter()
                c.sendall(job[1])

    def up(self, n):
        """pty -> TCP: the host writes into the pty, the peer receives."""
        data, want = payload(n)
        flow = Flow(n)
        self.jobs.put(("recv", flow))
        t0 = time.perf_counter()
        self.wire.write(data, self.seconds)
        if not flow.done.wait(self.seconds):
            raise Timeout("pty->TCP: %d of %d bytes arrived" % (flow.n, n))
        if flow.digest() != want:
            raise AssertionError("pty->TCP: SHA-256 mismatch")
        return mbps(n, flow.t_last - t0)

    def down(self, n):
        """TCP -> pty: the peer sends, the host reads the pty."""
        data, want = payload(n)
        flow = Flow(n)
        started = [None]
        self.jobs.put(("send", data, started))
        if not read_raw(self.wire, flow, time.monotonic() + self.seconds):
            raise Timeout("TCP->pty: %d of %d bytes arrived" % (flow.n, n))
        if flow.digest() != want:
            raise AssertionError("TCP->pty: SHA-256 mismatch")
        return mbps(n, flow.t_last - started[0])

    def close(self):
        self.wire.close()
        self.bp.close()
        self.srv.close()


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


# -- the run's shared state -----------------------------------------------------------------------
class Ctx:
    def __init__(self, args):
        self.args = args
        self.host = args.host_ip
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
    print("  board: %s" % (ctx.args.port or "virtual (tools/vboard.py)"))
    print("  throughput: %d runs per figure (copies and +IPD %d MiB, CIPSEND %d MiB each), "
          "baseline and firmware alternating" % (ctx.args.reps, ctx.args.bytes // MiB, ctx.args.send_bytes // MiB))


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
        ctx.vb = VirtualBoard(d / "flash", d / "log.txt", heap=a.heap)
        ctx.at_exit(ctx.vb.close)
        url = ctx.vb.path
        # The heap the launcher gave the firmware, and what an empty interpreter has in it.
        try:
            heap = heap_bytes(a.heap)
        except (TypeError, ValueError):  # none given, or "auto": what the launcher chose
            heap = getattr(ctx.vb, "heap", None) or heap_bytes(BASE_HEAP)
        ctx.base["heap"] = empty_free(heap)
        ctx.base["code"] = code_heap()
        ctx.row("baseline", "heap given to the board", "%d B" % heap,
                note="(launcher %s)" % ("--heap %s" % a.heap if a.heap else "default"))
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


def _fw_cipsend(ctx, sink, size, n):
    """One firmware CIPSEND run over a fresh CIPMUX=0 link; (MB/s, whole, ms to '>', ms to SEND OK)."""
    w = ctx.wire
    data, want = payload(n, b"cipsend")
    flow = sink.flow = Flow(n)
    w.ok('AT+CIPSTART="TCP","%s",%d' % (ctx.host, sink.port), timeout=10)
    sent, t0, s1, s2 = cipsend_loop(w, size, data, time.monotonic() + ctx.run_s)
    rate, whole = cipsend_finish(flow, want, sent, t0)
    w.ok("AT+CIPCLOSE", timeout=5)
    w.quiet(0.05)
    return rate, whole, s1, s2


def _cipsend_note(runs, n):
    whole = all(r[1] for r in runs)
    return "(%s; %s; per send %.3f ms command->'>' + %.3f ms data->SEND OK)" % (
        spread([r[0] for r in runs], "%.2f"),
        "%d MiB each, SHA-256 ok" % (n // MiB) if whole else "time limit hit: rate over what was acknowledged",
        statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs))


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
            ctx.row("baseline", "minimal CIPSEND loop %dB" % size, "%.2f MB/s" % p, note=_cipsend_note(p_runs, n))
            ctx.row("cipsend", "CIPSEND %dB" % size, "%.2f MB/s" % f, "raw copy %.1f MB/s" % up,
                    "%.1f%%" % (100 * f / up), _cipsend_note(f_runs, n))
            ctx.row("cipsend", "CIPSEND %dB vs minimal loop" % size, "%.2f MB/s" % f,
                    "minimal CIPSEND loop %.2f MB/s" % p, "%.0f%%" % (100 * f / p))
    finally:
        sink.close()


def _fw_ipd(ctx, n):
    """One +IPD run: a fresh CIPMUX=0 link, the peer sends n bytes, the host parses the frames.
    Returns (MB/s, whole, frames, text found between frames)."""
    w = ctx.wire
    data, want = payload(n, b"ipd")
    go = threading.Event()
    started = [None]

    def source(c, srv):
        if go.wait(ctx.run_s + 5):
            started[0] = time.perf_counter()
            c.sendall(data)
        _hold(c, srv)

    srv = TcpServer(ctx.host, source)
    try:
        w.ok('AT+CIPSTART="TCP","%s",%d' % (ctx.host, srv.port), timeout=10)
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
        w.write(b"AT+CIPCLOSE\r\n")
        w.read_until(FINAL, 10)
        w.quiet(0.1)
        return mbps(flow.n, t_end - (started[0] or t_end)), whole, frames, state[2]
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


# (name, function, needs the board). Later sections (server throughput, passthrough,
# SSL ...) go here; the board's sections run after "setup".
SECTIONS = [
    ("machine", bench_machine, False),
    ("setup", bench_setup, True),
    ("latency", bench_latency, True),
    ("cipsend", bench_cipsend, True),
    ("ipd", bench_ipd, True),
    ("heap", bench_heap, True),
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
        ctx.wire.quiet(0.5)
        ctx.wire.write(b"AT+CIPCLOSE=5\r\n")
        ctx.wire.quiet(0.3)
        ctx.wire.write(b"AT+CIPCLOSE\r\nAT+CIPMUX=0\r\n")
        ctx.wire.quiet(0.3)
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
                   help="bytes per copy and +IPD run (default 16 MiB)")
    p.add_argument("--send-bytes", type=int, default=8 * MiB,
                   help="bytes per CIPSEND run, firmware and minimal loop (default 8 MiB)")
    p.add_argument("--reps", type=int, default=5, help="runs per throughput figure; the median is shown")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="time limit of all the runs of one throughput figure on one side (default 10)")
    p.add_argument("--only", default="", help="comma-separated section names (machine and setup always run)")
    args = p.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    names = [s[0] for s in SECTIONS]
    if only - set(names):
        p.error("unknown section(s) %s; known: %s" % (", ".join(sorted(only - set(names))), ", ".join(names)))

    ctx = Ctx(args)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.alarm(WATCHDOG_S)
    have_board = True
    try:
        for name, fn, needs_board in SECTIONS:
            if only and name not in only and name not in ("machine", "setup"):
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
            if dt > SECTION_S:
                print("  WARNING: section %s took %.0f s (meant to take well under a minute)" % (name, dt))
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
