"""In-process tests, under CPython, with an injected clock and loop: the "+++"
guard's timing (lib/at/guard.py), the pump that packs UART data into sends
(lib/at/pump.py) and the passive receive windows (lib/at/net.py
Windows/RxBuf). No board, no sleeps: time moves when the test says. The
firmware's modules import here over three stand-ins for what CPython lacks
(time.ticks_*, micropython.schedule): the board tests cover the rest."""
import errno
import io
import sys
import time
import types
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Clock:
    """time.ticks_* for the firmware's modules, moved by hand."""

    def __init__(self):
        self.now = 1000

    def ticks_ms(self):
        return self.now

    @staticmethod
    def ticks_add(a, b):
        return a + b

    @staticmethod
    def ticks_diff(a, b):
        return a - b


class Loop:
    """loop.later()/cancel() with timers that run when the clock passes them;
    on_read()/on_write() keep the callback per object, for the test to call."""

    def __init__(self, clock):
        self.clock = clock
        self.timers = []
        self.readers = {}
        self.writers = {}

    def on_read(self, obj, cb):
        self._set(self.readers, obj, cb)

    def on_write(self, obj, cb):
        self._set(self.writers, obj, cb)

    @staticmethod
    def _set(table, obj, cb):
        if cb is None:
            table.pop(obj, None)
        else:
            table[obj] = cb

    def later(self, ms, cb):
        t = [self.clock.now + ms, cb]
        self.timers.append(t)
        return t

    def cancel(self, t):
        if t in self.timers:
            self.timers.remove(t)

    def advance(self, ms):
        end = self.clock.now + ms
        while True:
            due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            t = due[0]
            self.timers.remove(t)
            self.clock.now = t[0]
            t[1]()
        self.clock.now = end


@pytest.fixture
def fw(monkeypatch):
    """The firmware's modules, imported afresh over the stand-ins; yields (clock, loop, modules)."""
    clock = Clock()
    for name in ("ticks_ms", "ticks_add", "ticks_diff"):
        monkeypatch.setattr(time, name, getattr(clock, name), raising=False)
    monkeypatch.setitem(sys.modules, "micropython", types.SimpleNamespace(schedule=lambda f, a: f(a)))
    monkeypatch.syspath_prepend(str(ROOT / "lib"))
    for m in [m for m in sys.modules if m == "at" or m.startswith("at.")]:
        monkeypatch.delitem(sys.modules, m)
    import at.guard
    import at.net
    import at.pump
    yield clock, Loop(clock), at


# -- the +++ guard ---------------------------------------------------------------------------

def guard(fw):
    clock, loop, at = fw
    got, plus = bytearray(), []

    def data(buf, pos, end):
        got.extend(buf[pos:end])
        return end

    g = at.guard.PlusGuard(loop, data, lambda: plus.append(clock.now))
    return g, got, plus, clock, loop


def feed(g, b):
    assert g.sink(b, 0, len(b)) == len(b)


def test_lone_plus_ends_the_data_phase(fw):
    g, got, plus, clock, loop = guard(fw)
    feed(g, b"hello")
    loop.advance(25)  # silence before
    feed(g, b"+++")
    loop.advance(19)
    assert plus == []  # not yet: 20 ms of silence after
    loop.advance(1)
    assert plus == [clock.now] and got == b"hello"


def test_plus_one_at_a_time_within_the_guard(fw):
    g, got, plus, clock, loop = guard(fw)
    loop.advance(30)
    for _ in range(3):
        feed(g, b"+")
        loop.advance(10)  # each within 20 ms of the last
    loop.advance(10)
    assert len(plus) == 1 and got == b""


def test_plus_too_soon_after_data_is_data(fw):
    g, got, plus, clock, loop = guard(fw)
    feed(g, b"abc")
    loop.advance(5)  # less than 20 ms of silence
    feed(g, b"+++")
    loop.advance(100)
    assert plus == [] and got == b"abc+++"


def test_plus_too_slow_is_released_as_data(fw):
    g, got, plus, clock, loop = guard(fw)
    loop.advance(30)
    feed(g, b"+")
    feed(g, b"+")
    loop.advance(21)  # the third "+" does not come in time
    assert plus == [] and got == b"++"
    feed(g, b"x")
    assert got == b"++x"


def test_plus_followed_by_data_is_data(fw):
    g, got, plus, clock, loop = guard(fw)
    loop.advance(30)
    feed(g, b"+++")
    loop.advance(10)
    feed(g, b"y")  # within the silence after: all of it was data
    loop.advance(50)
    assert plus == [] and got == b"+++y"


def test_plus_inside_a_packet_is_data(fw):
    g, got, plus, clock, loop = guard(fw)
    loop.advance(30)
    feed(g, b"ab+++cd")
    loop.advance(50)
    assert plus == [] and got == b"ab+++cd"


# -- the pump: UART data into sends ---------------------------------------------------------------

class Peer:
    """A link's socket: write() takes at most `room` bytes more (None: all),
    as a non-blocking send does; sendto() is one datagram."""

    def __init__(self):
        self.room = None
        self.writes = []

    def write(self, mv):
        k = len(mv) if self.room is None else min(len(mv), self.room)
        if self.room is not None:
            self.room -= k
        if k:
            self.writes.append(bytes(mv[:k]))
        return k

    def sendto(self, mv, dest):
        self.writes.append((bytes(mv), dest))

    def got(self):
        return b"".join(self.writes)


def pump(fw, tsize=8, udp=False, cls=None):
    """A Pump on a link to a Peer, with the engine's part faked: the sink the
    UART feeds (through the "+++" guard, as at.stream() does), its flow control
    (unhold) and AT+TRANSINTVL (20 ms)."""
    clock, loop, at = fw
    peer = Peer()
    link = types.SimpleNamespace(id=0, udp=udp, ss=peer, sock=peer, dest=("10.0.0.2", 7), last=0)
    eng = types.SimpleNamespace(net=types.SimpleNamespace(links=[link]), dbuf=bytearray(tsize + 3), loop=loop,
                                cfg={"transintvl": 20}, log=types.SimpleNamespace(write=lambda s: None))
    eng.unheld = 0

    def unhold():
        eng.unheld += 1
    eng.unhold = unhold
    p = (cls or at.pump.Pump)(eng, link, tsize)
    p.plus = []
    p.on_plus = lambda: p.plus.append(clock.now)
    p.guard.on_plus = p.on_plus
    return p, peer, clock, loop


def uart(p, b):
    """The engine feeding UART bytes: how many the sink took before it said "full"."""
    pos = 0
    while pos < len(b):
        k = p.guard.sink(b, pos, len(b))
        if k < 0:
            break
        pos = k
    return pos


def test_pump_packs_small_writes_until_the_interval(fw):
    p, peer, clock, loop = pump(fw)
    uart(p, b"ab")
    loop.advance(10)
    uart(p, b"cd")
    loop.advance(9)
    assert peer.writes == []  # 19 ms after the first byte: still packing
    loop.advance(1)
    assert peer.writes == [b"abcd"]  # one send, AT+TRANSINTVL after the first byte


def test_pump_sends_a_full_packet_at_once(fw):
    p, peer, clock, loop = pump(fw)
    uart(p, b"12345")
    assert peer.writes == []
    uart(p, b"678")  # the packet size (8) is reached: no wait for the interval
    assert peer.writes == [b"12345678"]
    uart(p, b"x" * 20)  # a block or more with nothing waiting: straight to the socket, all of it
    assert peer.writes[1:] == [b"x" * 20]
    loop.advance(50)
    assert len(peer.writes) == 2  # nothing left over for the timer


def test_pump_udp_sends_packet_sized_datagrams(fw):
    p, peer, clock, loop = pump(fw, udp=True)
    uart(p, b"y" * 20)
    assert peer.writes == [(b"y" * 8, ("10.0.0.2", 7))] * 2
    loop.advance(20)
    assert peer.writes[2:] == [(b"y" * 4, ("10.0.0.2", 7))]


def test_pump_holds_the_uart_back_while_the_link_is_slow(fw):
    p, peer, clock, loop = pump(fw)
    peer.room = 3
    assert uart(p, b"A" * 8) == 8  # 3 sent, 5 kept for later
    assert peer.got() == b"AAA" and p.n == 5 and peer in loop.writers
    assert uart(p, b"B" * 8) == 3  # room for 3 more, then "full": the rest stays in the UART
    loop.advance(100)
    assert peer.got() == b"AAA" and p.eng.unheld == 0  # no timer sends what waits for the socket
    peer.room = None
    loop.writers[peer](peer, 4)  # the socket can take more
    assert peer.got() == b"AAA" + b"A" * 5 + b"BBB" and p.n == 0
    assert p.eng.unheld == 1 and peer not in loop.writers  # the UART is read again


def test_pump_lone_plus_ends_the_data_phase(fw):
    p, peer, clock, loop = pump(fw)
    uart(p, b"data")
    loop.advance(25)  # the data went after the interval, then silence
    uart(p, b"+++")
    loop.advance(20)  # and silence after
    assert p.plus == [clock.now] and peer.writes == [b"data"]
    p.stop()
    assert loop.timers == [] and loop.writers == {}


def test_pump_plus_with_data_around_it_is_data(fw):
    p, peer, clock, loop = pump(fw)
    uart(p, b"x")
    uart(p, b"+++")  # no silence before: data
    loop.advance(30)
    uart(p, b"+++")  # silence before ...
    loop.advance(5)
    uart(p, b"y")  # ... but data after
    loop.advance(30)
    assert p.plus == [] and peer.got() == b"x++++++y"


def test_pump_keeps_plus_released_into_a_full_buffer(fw):
    """A "+++" held by the guard and then found to be data goes into the buffer
    even when it is full (the 3 bytes of room it keeps for them): none is lost."""
    p, peer, clock, loop = pump(fw)
    peer.room = 0  # the link takes nothing for now
    assert uart(p, b"abcdefgh") == 8  # a full packet waits
    loop.advance(25)
    assert uart(p, b"+++") == 3  # held by the guard
    loop.advance(5)
    assert uart(p, b"yz") == 0  # releases the "+++" into the buffer; "yz" waits in the UART
    peer.room = None
    loop.writers[peer](peer, 4)
    assert p.eng.unheld == 1
    assert uart(p, b"yz") == 2  # what the engine feeds again after unhold()
    loop.advance(20)
    assert peer.got() == b"abcdefgh+++yz" and p.plus == []


def test_pump_room_limits_the_data_and_sends_the_last_bytes_at_once(fw):
    """AT+CIPSENDL's pump takes <length> bytes and no more, and sends the last
    ones without waiting for the interval."""
    class Long(fw[2].pump.Pump):
        got = 0

        def room(self):
            return 5 - self.got

        def on_data(self, n):
            self.got += n

    p, peer, clock, loop = pump(fw, cls=Long)
    assert uart(p, b"abc") == 3
    assert peer.writes == []
    assert uart(p, b"defgh") == 2  # <length> reached: the rest is not taken
    assert peer.writes == [b"abcde"]  # at once, no interval


# -- the UART backlog: active reads land in its buffer --------------------------------------

class Uart:
    """A UART that takes at most `take` bytes per write (an ESP32's TX ring with little room)."""

    def __init__(self, take):
        self.take = take
        self.got = bytearray()
        self.obj = object()

    def write(self, b):
        n = min(self.take, len(b))
        self.got += bytes(b[:n])
        return n

    @staticmethod
    def retry_ms():
        return 5


def test_a_read_into_the_backlog_leaves_with_its_header_and_what_waits_stays_in_order(fw):
    clock, loop, at = fw
    from at.output import Output, HEAD
    uart = Uart(100)
    out = Output(loop, uart, 3072)
    room = out.room()
    assert len(room) == 3072 - HEAD >= 2920
    data = bytes(range(256)) * 11 + bytes(2920 - 2816)
    room[:2920] = data  # what readinto() puts there
    hdr = b'\r\n+IPD,4,2920,"1234:5678:9abc:def0:1234:5678:9abc:def0",65535:'
    assert len(hdr) <= HEAD
    out.send_read(hdr, 2920)
    assert bytes(uart.got) == (hdr + data)[:100] and out.blocked
    out.write(b"\r\nOK\r\n")  # a reply that comes while the read waits goes after it
    uart.take = 1000
    while out.blocked:
        loop.advance(5)
    assert bytes(uart.got) == hdr + data + b"\r\nOK\r\n"
    assert (out.s, out.e, out.more) == (0, 0, [])
    uart.got.clear()
    room[:5] = b"hello"  # the next read: the same buffer, free again
    out.send_read(b"", 5)  # passthrough: no header
    assert bytes(uart.got) == b"hello" and not out.blocked


# -- passive windows ---------------------------------------------------------------------------

class FakeLink:
    def __init__(self, n):
        self.id = n


def two_at_once(fw, size):
    """Windows of `size` bytes, at most two lent, none at boot; three links and
    their RxBufs. Returns (windows, woken links, links, rxbufs)."""
    clock, loop, at = fw
    woken = []
    w = at.net.Windows(size, 2, woken.append, loop.later)
    return w, woken, [FakeLink(i) for i in range(3)], [at.net.RxBuf(w, False) for _ in range(3)]


def test_windows_lent_while_data_waits_and_one_kept(fw):
    w, woken, (a, b, c), (ra, rb, rc) = two_at_once(fw, 100)
    assert ra.buf is None and w.lent == 0  # idle: nothing held
    assert ra.free(a) == 100 and rb.free(b) == 100 and w.lent == 2
    assert rc.free(c) == 0 and w.waiting == [c]  # at most two at once
    ra.tail()[:10] = b"0123456789"
    ra.e += 10
    ra.take(4)
    assert ra.buf is not None  # data still waits
    ra.take(6)  # read to the end: the window goes back, the waiting link is woken
    assert ra.buf is None and woken == [c] and w.lent == 1 and len(w.spares) == 1
    assert rc.free(c) == 100 and w.spares == []  # the kept one: nothing allocated


def test_window_reserved_when_passive_mode_starts_and_compaction(fw):
    clock, loop, at = fw
    w = at.net.Windows(8, 1, lambda link: None, loop.later)
    assert w.spares == []  # nothing at boot
    w.reserve()  # AT+CIPRECVMODE=1 / AT+CIPRECVTYPE=<id>,1
    w.reserve()
    assert len(w.spares) == 1  # once
    r, link = at.net.RxBuf(w, False), FakeLink(0)
    assert r.free(link) == 8
    r.tail()[:8] = b"abcdefgh"
    r.e = 8
    r.take(5)  # 3 left at the end
    assert r.free(link) == 5  # the read head counts once it can be compacted
    t = r.tail()  # compacts: "fgh" to the front
    assert len(t) == 5 and bytes(r.buf[:3]) == b"fgh" and (r.s, r.e) == (0, 3)


def test_windows_keep_one_spare_and_forget_a_link_that_ends(fw):
    w, woken, (a, b, c), (ra, rb, rc) = two_at_once(fw, 8)
    assert ra.free(a) == 8 and rb.free(b) == 8
    assert rc.free(c) == 0 and w.waiting == [c]
    rc.end(c)  # link 2 leaves passive mode (or closes) while it waits
    ra.release()
    rb.release()
    assert woken == [] and w.lent == 0  # no one to wake
    assert len(w.spares) == 1  # one is kept for the next link; the other goes back to the heap


def test_window_the_heap_cannot_give_is_asked_for_again(fw, monkeypatch):
    clock, loop, at = fw
    woken = []
    w = at.net.Windows(64, 5, woken.append, loop.later)
    calls = []

    def short(n):
        calls.append(n)
        if len(calls) == 1:
            raise MemoryError
        return bytearray(n)

    monkeypatch.setattr(at.net, "bytearray", short, raising=False)
    link = FakeLink(3)
    r = at.net.RxBuf(w, False)
    assert r.free(link) == 0 and w.waiting == [link]
    loop.advance(at.net.RETRY_MS - 1)
    assert woken == []
    loop.advance(1)  # asked for again after RETRY_MS
    assert woken == [link]
    assert r.free(link) == 64 and w.lent == 1


def test_window_the_heap_cannot_give_is_said_once_on_the_log(fw, monkeypatch):
    clock, loop, at = fw
    log = io.StringIO()
    w = at.net.Windows(64, 5, lambda link: None, loop.later, log)
    fail = [True]

    def short(n):
        if fail[0]:
            raise MemoryError
        return bytearray(n)

    monkeypatch.setattr(at.net, "bytearray", short, raising=False)
    links = [FakeLink(i) for i in range(3)]
    rs = [at.net.RxBuf(w, False) for _ in links]
    assert rs[0].free(links[0]) == 0 and rs[1].free(links[1]) == 0
    assert log.getvalue() == ("at: no heap for a 64-byte passive receive window; "
                              "the data waits in the sockets\n")  # once for the two
    fail[0] = False
    assert rs[0].free(links[0]) == 64
    fail[0] = True
    assert rs[2].free(links[2]) == 0
    assert log.getvalue().count("no heap") == 2  # a new shortage after a window was had


def test_window_taken_at_boot_is_kept_for_the_first_link(fw):
    clock, loop, at = fw
    w = at.net.Windows(8, 1, lambda link: None, loop.later)
    b = bytearray(8)
    w.keep(b)  # app.run: allocated before the command groups cut the heap up
    w.reserve()  # AT+CIPRECVMODE=1 later takes no second one
    assert w.spares == [b]
    r = at.net.RxBuf(w, False)
    assert r.free(FakeLink(0)) == 8 and r.buf is b


# -- the data buffer of a board with a small heap ----------------------------------------------

def small_engine(fw):
    """An engine with a WROOM's data buffer and a handler that takes n bytes (as AT+CIPSEND does)."""
    import io
    import at.engine
    clock, loop, at = fw
    wrote, got = [], []
    out = types.SimpleNamespace(write=lambda b, *a: wrote.append(bytes(b)))
    eng = at.engine.Engine(loop, out, io.StringIO(), at.engine.DATA_SMALL)

    def s_take(e, a):
        mv = yield e.data(a[0])
        got.append(bytes(mv))

    eng.add([("+TAKE", None, None, s_take, None)])
    return eng, wrote, got


def test_a_send_larger_than_the_small_data_buffer_borrows_one(fw):
    eng, wrote, got = small_engine(fw)
    assert len(eng.dbuf) == 2924
    data = bytes(range(256)) * 32  # 8192, ESP-AT's largest AT+CIPSEND
    eng.feed(b"AT+TAKE=8192\r\n", 14)
    assert wrote[-1] == b"\r\nOK\r\n\r\n>"
    for i in range(0, len(data), 1000):
        chunk = data[i:i + 1000]
        eng.feed(chunk, len(chunk))
    assert got == [data] and wrote[-1] == b"\r\nOK\r\n"
    assert eng._dcur is eng.dbuf and len(eng.dbuf) == 2924  # the borrowed buffer is not kept
    eng.feed(b"AT+TAKE=3\r\n", 11)  # a small one uses the data buffer again
    eng.feed(b"xyz", 3)
    assert got[-1] == b"xyz"


def test_no_heap_for_a_large_send_is_error_before_the_prompt(fw, monkeypatch):
    eng, wrote, got = small_engine(fw)
    import at.engine

    def no_heap(n):
        raise MemoryError

    monkeypatch.setattr(at.engine, "bytearray", no_heap, raising=False)
    eng.syslog = 1
    eng.feed(b"AT+TAKE=8192\r\n", 14)
    assert b">" not in b"".join(wrote)  # the host never sends the data
    assert wrote[-2:] == [b"ERR CODE:0x010a0090\r\n", b"\r\nERROR\r\n"]
    eng.feed(b"AT+TAKE=2\r\n", 11)  # the board goes on
    eng.feed(b"ok", 2)
    assert got == [b"ok"]


# -- passive receive on a link: lib/at/net.py Net with its sockets faked --------------------------------

class Sock:
    """A non-blocking socket with bytes (TCP) or datagrams (UDP) waiting in it."""

    def __init__(self, data=b"", dgrams=()):
        self.data = bytearray(data)
        self.dgrams = list(dgrams)
        self.eof = False  # the peer has closed: readinto() says 0 once the data is read

    def readinto(self, mv):
        if not self.data:
            if self.eof:
                return 0
            raise OSError(errno.EAGAIN)
        n = min(len(mv), len(self.data))
        mv[:n] = self.data[:n]
        del self.data[:n]
        return n

    def recvfrom(self, n):
        if not self.dgrams:
            raise OSError(errno.EAGAIN)
        return self.dgrams.pop(0), ("10.0.0.2", 7)


class Out:
    """The UART output: what was written, never blocked."""

    def __init__(self):
        self.data = bytearray()
        self.blocked = False
        self.buf = bytearray(4096)

    def write(self, b, droppable=False):
        self.data += b

    def room(self):
        return memoryview(self.buf)[80:]

    def send_read(self, hdr, n):
        self.data += hdr + self.buf[80:80 + n]

    def take(self):
        b = bytes(self.data)
        self.data.clear()
        return b


def passive(fw, monkeypatch, typ, sock, lenmode=0, window=16):
    """Net with a passive link 0 (AT+CIPMUX=1, AT+CIPRECVTYPE=0,1) on sock; windows
    of `window` bytes. Returns (net, link, out, loop); net.closed lists the links closed."""
    clock, loop, at = fw
    monkeypatch.setattr(at.net, "WINDOW", window)
    out = Out()
    eng = types.SimpleNamespace(loop=loop, out=out, cfg={}, log=types.SimpleNamespace(write=lambda s: None),
                                board=types.SimpleNamespace(small_heap=False, tcpopt=lambda *a: True))
    eng.write = lambda s: out.write(s.encode())
    eng.reply = lambda *lines: eng.write("".join(x + "\r\n" for x in lines))
    net = at.net.Net(eng)
    net.mux = 1
    net.closed = []
    net.close = net.closed.append
    net.set_passive(0, 1, lenmode)
    link = at.net.Link(0, typ, sock, "10.0.0.2", 7, 0)
    net.attach(link)
    return net, link, out, loop


def poll(loop, s):
    """A loop turn that finds s readable: its read callback runs if one is set."""
    cb = loop.readers.get(s)
    if cb is not None:
        cb(s, 1)


def read(net, link, out, n, whole=False):
    """AT+CIPRECVDATA=0,n: the bytes written, or None (ERROR); then what follows its OK."""
    ok = net.recvdata(link, n, whole)
    got = out.take() if ok else None
    net.after_read(link)
    return got


def test_passive_tcp_full_window_leaves_the_rest_in_the_socket(fw, monkeypatch):
    s = Sock(b"0123456789abcdefghijklmnopqrstuvwxyz")
    net, link, out, loop = passive(fw, monkeypatch, "TCP", s)
    poll(loop, s)
    assert out.take() == b"\r\n+IPD,0,16\r\n" and link.rxb.used() == 16
    poll(loop, s)  # the window is full: no read, the socket is dropped from the poll
    assert link.stalled and s not in loop.readers and len(s.data) == 20 and out.take() == b""
    assert read(net, link, out, 10) == b"+CIPRECVDATA:10,0123456789"
    assert out.take() == b"\r\n+IPD,0,6\r\n"  # after the OK: what is left
    assert not link.stalled and s in loop.readers  # room again: the socket is read again
    poll(loop, s)
    assert link.rxb.used() == 16 and out.take() == b""  # one notice until the host reads
    assert read(net, link, out, 100) == b"+CIPRECVDATA:16,abcdefghijklmnop"
    assert out.take() == b""  # nothing left: no notice, and the window went back
    assert link.rxb.buf is None and net.windows.lent == 0


def test_passive_udp_datagrams_whole_and_split(fw, monkeypatch):
    s = Sock(dgrams=[b"one", b"three", b"eleven byte", b"xy"])
    net, link, out, loop = passive(fw, monkeypatch, "UDP", s, lenmode=1)
    for _ in range(4):
        poll(loop, s)
    assert out.take() == b"\r\n+IPD,0,3\r\n"  # the first datagram's length (AT+CIPRECVTYPE <len mode> 1)
    assert link.rxb.used() == 10  # the 11-byte one did not fit in what was left: dropped
    assert read(net, link, out, 3, whole=True) == b"+CIPRECVDATA:3,one"  # exactly one datagram fits
    assert out.take() == b"\r\n+IPD,0,5\r\n"
    assert read(net, link, out, 4, whole=True) is None  # "three" does not fit in 4
    assert read(net, link, out, 2) == b"+CIPRECVDATA:2,th"  # without integrity: part of one
    assert out.take() == b"\r\n+IPD,0,3\r\n"  # what is left of it
    assert read(net, link, out, 100, whole=True) == b"+CIPRECVDATA:5,reexy"
    assert link.rxb.dgrams == [] and link.rxb.buf is None


def test_passive_closed_only_after_the_data_is_read(fw, monkeypatch):
    s = Sock(b"bye")
    s.eof = True
    net, link, out, loop = passive(fw, monkeypatch, "TCP", s)
    poll(loop, s)
    poll(loop, s)  # the end of the stream
    assert link.eof and net.closed == [] and out.take() == b"\r\n+IPD,0,3\r\n"
    assert read(net, link, out, 2) == b"+CIPRECVDATA:2,by"
    assert net.closed == [] and out.take() == b"\r\n+IPD,0,1\r\n"
    assert read(net, link, out, 2) == b"+CIPRECVDATA:1,e"
    assert net.closed == [link]  # CLOSED once all is read


def test_passive_off_hands_the_buffer_over_as_ipd(fw, monkeypatch):
    s = Sock(b"0123456789abcdefXYZ")
    net, link, out, loop = passive(fw, monkeypatch, "TCP", s)
    poll(loop, s)
    poll(loop, s)
    assert link.stalled and out.take() == b"\r\n+IPD,0,16\r\n"
    net.set_passive(0, 0, 0)  # AT+CIPRECVTYPE=0,0
    assert out.take() == b"\r\n+IPD,0,16:0123456789abcdef"
    assert link.rxb is None and net.windows.lent == 0 and not link.stalled
    poll(loop, s)  # read again, actively
    assert out.take() == b"\r\n+IPD,0,3:XYZ"
