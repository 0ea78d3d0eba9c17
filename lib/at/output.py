# The one writer to the UART. Every message goes through write(), so an
# unsolicited +IPD can never split another message.
#
# The UART takes what it has room for now and never makes the loop wait: an
# ESP32's UART.write() returns only once every byte is in its TX ring, so the
# port writes only what fits (lib/at/ports/esp32.py) and says when to try again;
# the unix port's pty says it with POLLOUT. What the UART does not take waits in
# the backlog, and `blocked` tells the socket readers to pause until it drains:
# TCP's window then holds the peers back, nothing is lost.
#
# The UART input is read all the while (an ESP32 that stops reading loses what
# the host sends unless RTS is wired). A progress report (+CIPSENDL) that finds a
# long backlog is dropped, as a real UART loses what its host does not read;
# results and data never are. Only a host that keeps sending commands and never
# reads the answers (HARD) gets its input paused.
#
# The backlog is one buffer allocated at boot (growing a bytearray in a fragmented
# heap is where a MemoryError comes from): the socket readers pause as soon as
# anything waits, so it holds at most one +IPD and a few replies; what a long
# reply adds beyond it goes to a list of chunks, the only allocation here.
#
# The same buffer is where an active link's data is read: the readers read only
# while nothing waits, so the buffer is free then; its +IPD header goes just in
# front of the data and both leave in one UART write, and what the UART does not
# take is the backlog where it lies. No second buffer and no copy.
import time

SIZE = 4096  # the backlog buffer: one +IPD (2,920 bytes) and its header, and replies
SIZE_SMALL = 3072  # ... on a board with a small heap: one +IPD and its header
LONG = 2048  # backlog bytes beyond which reports are dropped
HARD = 16384  # backlog bytes beyond which the UART input pauses too
HEAD = 80  # room in front of a read for its header: the longest +IPD header is 68 bytes (an IP address is 45 characters at most)


class Output:
    def __init__(self, loop, uart, size=SIZE):
        self.loop = loop
        self.uart = uart
        self.size = size
        self.buf = bytearray(size)
        self.s = 0  # the backlog is buf[s:e], then the chunks in more
        self.e = 0
        self.more = []
        self.blocked = False
        self.dropped = 0  # reports dropped
        self._waiters = []
        self._timer = None
        self._polling = False

    def pending(self):
        n = self.e - self.s
        for c in self.more:
            n += len(c)
        return n

    def _keep(self, mv):
        """Append mv to the backlog (copied)."""
        n = len(mv)
        if not self.more:
            k = self.e - self.s
            if self.e + n > self.size and self.s >= k:
                # Compact: the unwritten part to the front, in one copy that does
                # not overlap itself (slicing the bytearray would allocate).
                b = memoryview(self.buf)
                b[0:k] = b[self.s:self.e]
                self.s, self.e = 0, k
            if self.e + n <= self.size:
                self.buf[self.e:self.e + n] = mv
                self.e += n
                return
        self.more.append(bytes(mv))

    def write(self, data, report=False):
        if self.blocked:
            if report and self.pending() >= LONG:
                self.dropped += 1
                return
            self._keep(memoryview(data))
            return
        n = self.uart.write(data) or 0
        if n < len(data):
            self._keep(memoryview(data)[n:])
            self.blocked = True
            self._arm()

    def room(self):
        """Where a socket read may land, to be sent with send_read(): the buffer
        past the room for a header. Only while nothing waits (the readers pause
        when something does)."""
        return memoryview(self.buf)[HEAD:]

    def send_read(self, hdr, n):
        """Write hdr (bytes, HEAD at most) and the n bytes read into room()."""
        s = HEAD - len(hdr)
        self.buf[s:HEAD] = hdr
        self.s, self.e = s, HEAD + n
        if not self._push():
            self.blocked = True
            self._arm()

    def full(self):
        """The host has not read for long: stop taking its input too."""
        return self.pending() > HARD

    def when_drained(self, cb):
        """Call cb once the backlog has been written (cb is kept at most once)."""
        if cb not in self._waiters:
            self._waiters.append(cb)

    def _arm(self):
        ms = self.uart.retry_ms()
        if ms is None:
            if not self._polling:
                self._polling = True
                self.loop.on_write(self.uart.obj, self._drain)
        elif self._timer is None:
            self._timer = self.loop.later(ms, self._tick)

    def _tick(self):
        self._timer = None
        try:
            self._drain(None, 0)
        finally:
            if self.blocked and self._timer is None and not self._polling:
                self._arm()  # whatever failed in there, never leave the backlog unwatched

    def _push(self):
        """Hand the UART what it takes of the backlog; True when all of it is out."""
        while True:
            if self.e > self.s:
                n = self.uart.write(memoryview(self.buf)[self.s:self.e])
                self.s += n
                if self.s < self.e:
                    return False
                self.s = self.e = 0
            if not self.more:
                return True
            c = self.more[0]
            n = self.uart.write(c)
            if n < len(c):
                self.more[0] = c[n:]
                return False
            self.more.pop(0)

    def _drain(self, obj, ev):
        if not self._push():
            self._arm()
            return
        self.blocked = False
        if self._polling:
            self._polling = False
            self.loop.on_write(self.uart.obj, None)
        w = self._waiters
        self._waiters = []
        for cb in w:
            cb()

    def flush(self, ms=3000):
        """Write what is left now (before a reset); gives up after ms if the host
        never takes it."""
        end = time.ticks_add(time.ticks_ms(), ms)
        while not self._push() and time.ticks_diff(end, time.ticks_ms()) > 0:
            time.sleep_ms(self.uart.retry_ms() or 1)
        self.s = self.e = 0
        self.more = []
        self.blocked = False
