"""The ceilings' host side: tools/bench_baseline.py run under the unix port on a pty, as
tools/vboard.py runs the firmware (BaselineProc), its bare AT responder and its copy loop."""
import os
import subprocess
import time
import tty

from board import Timeout, stop_process
from vboard import micropython

from bench import ROOT
from bench.common import JobPeer, OK, Wire, latency_up, pipe_down, pipe_up


BASELINE = ROOT / "tools" / "bench_baseline.py"

# (NOTES.md, "Heap"). Their speed does not depend on it.
BASE_HEAP = "110k"


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
        stop_process(self.proc)
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
