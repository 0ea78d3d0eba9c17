# UART -> link: the data phase of AT+CIPSENDL and of passthrough mode. Bytes
# are sent in blocks of <transmit size> as soon as that much is waiting, or
# after the packing interval (AT+TRANSINTVL) when less is; while the link is
# slower than the UART, the sink answers "full" and the engine holds the UART
# back (flow control) instead of dropping anything.
import time
from at.guard import PlusGuard
from at import sock


class Pump:
    def __init__(self, eng, link, tsize, dest=None):
        self.eng = eng
        self.net = eng.net
        self.link = link
        self.tsize = tsize
        self.dest = dest
        self.buf = eng.dbuf  # tsize + 3 bytes at most: room for "+" released as data
        self.o = 0  # what waits for the link is buf[o:n] (o > 0 after a partial send)
        self.n = 0
        self.sent = 0
        self.waiting = False
        self.timer = None
        self.guard = PlusGuard(eng.loop, self.data, self.on_plus)

    # -- what users of a Pump override --------------------------------------------------
    def room(self):
        """How many more bytes this data phase takes (None: no limit)."""
        return None

    def on_data(self, n):
        pass

    def on_sent(self, k):
        pass

    def on_fail(self, err):
        pass

    def on_plus(self):
        pass

    # -- the sink ------------------------------------------------------------------------------
    def alive(self):
        return self.link is not None and self.net.links[self.link.id] is self.link

    def data(self, buf, pos, end):
        limit = self.room()
        if limit == 0:
            return -1
        if (not self.n and end - pos >= self.tsize and not self.waiting and self.alive()
                and not self.link.udp):
            return self._direct(buf, pos, end if limit is None else min(end, pos + limit))
        cap = self.tsize + 3 if end - pos <= 3 else self.tsize
        if self.n + min(end - pos, cap) > cap:
            self._compact()
        space = cap - self.n
        if space <= 0:
            return -1
        take = min(end - pos, space)
        if limit is not None and take > limit:
            take = limit
        self.buf[self.n:self.n + take] = memoryview(buf)[pos:pos + take]  # a slice of buf would be a copy
        self.n += take
        self.on_data(take)
        if self.n - self.o >= self.tsize or self.room() == 0:
            self.flush()
        elif self.timer is None:
            self.timer = self.eng.loop.later(self.eng.cfg.get("transintvl"), self._interval)
        return pos + take

    def _direct(self, buf, pos, end):
        """At least a block is waiting and nothing is buffered: hand it to the TCP
        stack straight from the UART's buffer, all of it in one send (a byte
        stream: the peer cannot tell this from 2,920-byte chunks, only that it is
        faster). What the stack does not take is buffered as usual (one block;
        the rest stays in the UART, held back)."""
        mv = memoryview(buf)[pos:end]
        try:
            k = sock.write(self.link.ss, mv)
        except OSError as e:
            self.eng.log.write("at: send on link %d failed: %r\n" % (self.link.id, e))
            self.on_fail(e)
            return pos  # nothing taken: the sink decides what comes next
        keep = min(len(mv) - k, self.tsize)
        if keep:
            self.buf[0:keep] = mv[k:k + keep]
            self.n = keep
        self.on_data(k + keep)
        if k:
            self.link.last = time.ticks_ms()
            self.sent += k
            self.on_sent(k)
        if self.n and not self.waiting and self.alive():
            self.waiting = True
            self.eng.loop.on_write(self.link.sock, self._writable)
        return pos + k + keep

    def _compact(self):
        """Move what is left of a partly sent block to the front, when that is one
        copy that does not overlap itself (else the sink waits for more to go)."""
        o, n = self.o, self.n
        if o and o >= n - o:
            mv = memoryview(self.buf)
            mv[0:n - o] = mv[o:n]
            self.o, self.n = 0, n - o

    def _interval(self):
        self.timer = None
        self.flush()

    def flush(self):
        if self.timer is not None:
            self.eng.loop.cancel(self.timer)
            self.timer = None
        if self.waiting or not self.n or not self.alive():
            return
        link = self.link
        mv = memoryview(self.buf)[self.o:self.n]
        try:
            if link.udp:
                link.sock.sendto(mv, self.dest or link.dest)
                k = len(mv)
            else:
                k = sock.write(link.ss, mv)
        except OSError as e:
            self.eng.log.write("at: send on link %d failed: %r\n" % (link.id, e))
            self.on_fail(e)
            return
        link.last = time.ticks_ms()
        if k:
            self.o += k
            if self.o >= self.n:
                self.o = self.n = 0
            self.sent += k
            self.on_sent(k)
        if self.n:
            self.waiting = True
            self.eng.loop.on_write(link.sock, self._writable)
        else:
            self.eng.unhold()

    def _writable(self, obj, ev):
        self.waiting = False
        self.eng.loop.on_write(obj, None)
        self.flush()

    def stop(self):
        """Leave the data phase: no timers, no pending write callback."""
        self.guard.cancel()
        if self.timer is not None:
            self.eng.loop.cancel(self.timer)
            self.timer = None
        if self.waiting:
            self.waiting = False
            if self.alive():
                self.eng.loop.on_write(self.link.sock, None)
