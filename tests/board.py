"""Talking to a board over its serial port, byte for byte."""
import contextlib
import os
import re
import subprocess
import sys
import time
import pathlib

import serial

ROOT = pathlib.Path(__file__).resolve().parent.parent
FINAL = re.compile(rb"\r\n(OK|ERROR|SEND OK|SEND FAIL)\r\n")


# errno numbers of the ESP32's runtime (newlib, ports/esp32/mpconfigport.h) and
# the error lwIP picks for a condition (a refused connect is a RST: ECONNRESET)
NEWLIB = {"EAGAIN": 11, "ECONNRESET": 104, "ECONNREFUSED": 111, "ECONNABORTED": 113, "ETIMEDOUT": 116,
          "EHOSTUNREACH": 118, "EINPROGRESS": 119, "ENOTCONN": 128}


def chip_errno(name, esp32):
    """The number the board reports for an errno name (+ERRNO with AT+SYSLOG=1)."""
    import errno
    if name == "refused":  # what a refused connect reports
        return NEWLIB["ECONNRESET"] if esp32 else errno.ECONNREFUSED
    return NEWLIB[name] if esp32 else getattr(errno, name)


# The GC heap of a virtual board, read through a command of the reader's own, dropped
# on the board's filesystem as user_commands.py, as a user adds a command (README
# "Adding a command"): AT+SYSRAM reports the IDF heap on the twin, as ESP-AT does.
# AT+GCHEAP? -> +GCHEAP:<in use now>,<most in use at a sample since the last query>,
# both after a collection; AT+GCHEAP=<ms> samples every ms while commands run (0: stop).
GC_HEAP_COMMAND = """\
import gc
from at import parse
from at.commands import row

_s = [0, 0]  # the peak sampled since the last query, the sampling period (ms)


def _used():
    gc.collect()
    return gc.mem_alloc()


def _sample(eng):
    if _s[1]:
        _s[0] = max(_s[0], _used())
        eng.loop.later(_s[1], lambda: _sample(eng))


def q_gcheap(eng):
    now = _used()
    eng.reply("+GCHEAP:%d,%d" % (now, max(now, _s[0])))
    _s[0] = now


def s_gcheap(eng, a):
    parse.count(a, 1, 1)
    ms = parse.num(a, 0, 0, 10000)
    start = ms and not _s[1]
    _s[1] = ms
    if start:
        _sample(eng)


COMMANDS = [row("+GCHEAP", query=q_gcheap, set=s_gcheap)]
"""


def two_numbers(d, query):
    """The two numbers of a query's reply: AT+X? -> +X:<a>,<b>..."""
    r = d.cmd(query)
    m = re.search(rb"\+" + query[3:-1].encode() + rb":(\d+),(\d+)", r)
    if not m:
        raise AssertionError("%s -> %r" % (query, r))
    return int(m.group(1)), int(m.group(2))


def gc_heap(d):
    """(GC heap in use now, the most sampled since the last query) through AT+GCHEAP?."""
    return two_numbers(d, "AT+GCHEAP?")


class Timeout(AssertionError):
    pass


def stop_process(proc, timeout=5):
    """Terminate a subprocess, and kill it if it has not ended within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


GUARD = 0.05  # comfortably more than the firmware's 20 ms "+++" guard time


def plus(d):
    """A lone "+++" that ends a data phase: the guard is silence on the line
    before and after it, which only real time makes."""
    time.sleep(GUARD)
    d.write(b"+++")
    time.sleep(GUARD)


class Dut:
    """A board under test: write bytes, read until a pattern, keep what was read."""

    def __init__(self, ser):
        self.ser = ser
        self.buf = bytearray()

    # -- low level -----------------------------------------------------------------
    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.ser.write(data)
        self.ser.flush()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if self.ser.timeout != 0.05:
            # Set once: pyserial re-applies the whole line setting (termios)
            # whenever the timeout changes, which would undo AT+UART_CUR's speed.
            self.ser.timeout = 0.05
        chunk = self.ser.read(max(1, self.ser.in_waiting or 1))
        if chunk:
            self.buf += chunk
        return True

    def read_until(self, pattern, timeout=5.0):
        """Read until pattern (bytes or compiled regex) appears; return everything up to its end."""
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(pattern, (bytes, bytearray)):
                i = self.buf.find(pattern)
                end = i + len(pattern) if i >= 0 else -1
            else:
                m = pattern.search(self.buf)
                end = m.end() if m else -1
            if end >= 0:
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            if not self._fill(deadline):
                raise Timeout("waited %.1fs for %r; got %r" % (timeout, pattern, bytes(self.buf)))

    def read_exactly(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Timeout("wanted %d bytes, got %d: %r" % (n, len(self.buf), bytes(self.buf[:200])))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    IPD = re.compile(rb"\r\n\+IPD,(?:\d,)?(\d+):")

    def read_ipd(self, total, timeout=60.0, between=None, max_frame=None):
        """The payload of active-mode +IPD frames until `total` bytes came. Bytes
        between frames go to `between` when given (a frame is never split by
        them); otherwise every byte between frames must be a frame header."""
        got = bytearray()
        deadline = time.monotonic() + timeout
        while len(got) < total:
            left = max(0.1, deadline - time.monotonic())
            h = self.read_until(self.IPD, timeout=left)
            m = self.IPD.search(h)
            if m.start():
                assert between is not None, "stray bytes before +IPD: %r" % h[:200]
                between += h[:m.start()]
            n = int(m.group(1))
            assert max_frame is None or 0 < n <= max_frame, n
            got += self.read_exactly(n, timeout=max(0.1, deadline - time.monotonic()))
        return bytes(got)

    def quiet(self, seconds=0.2):
        """Read for a while and return whatever came."""
        deadline = time.monotonic() + seconds
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def drain(self):
        self.ser.reset_input_buffer()
        self.buf.clear()

    # -- commands --------------------------------------------------------------------
    def cmd(self, line, timeout=5.0):
        """Send one command line; return all bytes up to and including its final result."""
        self.write(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_until(FINAL, timeout)

    def ok(self, line, timeout=5.0):
        r = self.cmd(line, timeout)
        assert r.endswith(b"\r\nOK\r\n"), "%s -> %r" % (line, r)
        return r

    def error(self, line, timeout=5.0):
        r = self.cmd(line, timeout)
        assert r.endswith(b"\r\nERROR\r\n"), "%s -> %r" % (line, r)
        return r

    def reset(self, restore=True, timeout=10.0):
        """AT+RESTORE (or AT+RST) and wait for ready; echo is on afterwards."""
        self.write(b"AT+RESTORE\r\n" if restore else b"AT+RST\r\n")
        self.read_until(b"\r\nOK\r\n", timeout)
        self.read_until(b"\r\nready\r\n", timeout)
        self.buf.clear()


class VirtualBoard:
    """tools/vboard.py in a subprocess, on a flash directory of its own."""

    def __init__(self, flash, log, heap=None, extra=(), prefix=()):
        cmd = list(prefix) + [sys.executable, str(ROOT / "tools" / "vboard.py"), "--flash", str(flash),
                              "--log", str(log)]
        if heap:
            cmd += ["--heap", heap]
        cmd += list(extra)
        self.log = log
        self.flash = pathlib.Path(flash)
        self.twin = "esp32" in list(extra) or ("--board" not in list(extra) and os.getenv("BOARD") == "esp32")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = []
        while True:
            line = self.proc.stdout.readline().decode()
            seen.append(line)
            m = re.search(r"ready on (\S+)", line)
            if m:
                break
            if not line:
                raise RuntimeError("virtual board did not start: %r" % "".join(seen))
        self.path = m.group(1)
        self.heap = next((int(x.split()[2]) for x in seen if x.startswith("vboard: heap")), None)

    def log_text(self):
        try:
            return pathlib.Path(self.log).read_text(errors="replace")
        except OSError:
            return ""

    @property
    def stats_path(self):
        """Where the ESP32 twin saves its UART figures (about twice a second while it runs)."""
        return self.flash.parent / (self.flash.name + ".stats.json")

    def stats(self):
        """The ESP32 twin's UART figures (tools/twin/machine.py Stats), or {}."""
        import json
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def close(self):
        stop_process(self.proc)


@contextlib.contextmanager
def own_board(flash, log, **kw):
    """A virtual board of the test's own, powered on on `flash` (the same flash
    again is a power cycle): its Dut, drained; the board is stopped after."""
    vb = VirtualBoard(flash, log, **kw)
    ser = serial.serial_for_url(vb.path, 115200, timeout=0.1)
    try:
        d = Dut(ser)
        d.drain()
        yield d
    finally:
        ser.close()
        vb.close()
