# The one writer to the UART. Every message goes through write(), so an
# unsolicited +IPD can never split another message. When the host stops
# reading, the rest waits in a backlog and `blocked` tells the readers of the
# UART and of the sockets to pause (back-pressure instead of loss).


class Output:
    def __init__(self, loop, uart):
        self.loop = loop
        self.uart = uart
        self.backlog = bytearray()
        self.blocked = False
        self._waiters = []

    def write(self, data):
        if self.blocked:
            self.backlog.extend(data)
            return
        n = self.uart.write(data)
        if n is None:
            n = 0
        if n < len(data):
            self.backlog.extend(memoryview(data)[n:])
            self.blocked = True
            self.loop.on_write(self.uart.obj, self._drain)

    def when_drained(self, cb):
        """Call cb once the backlog has been written (cb is kept at most once)."""
        if cb not in self._waiters:
            self._waiters.append(cb)

    def _drain(self, obj, ev):
        n = self.uart.write(self.backlog)
        if n:
            # Reuse the buffer: drop the written head in place.
            self.backlog[:n] = b""
        if self.backlog:
            return
        self.blocked = False
        self.loop.on_write(self.uart.obj, None)
        w = self._waiters
        self._waiters = []
        for cb in w:
            cb()

    def flush(self, tries=100000):
        """Write what is left now (before a reset); gives up if the host never reads."""
        while self.backlog and tries:
            tries -= 1
            n = self.uart.write(self.backlog)
            if n:
                self.backlog[:n] = b""
        self.blocked = False
