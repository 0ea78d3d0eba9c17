"""In-process tests, under CPython, with an injected clock and loop: the "+++"
guard's timing (lib/at/guard.py) and the passive receive windows
(lib/at/net.py Windows/RxBuf). No board, no sleeps: time moves when the test
says. The firmware's modules import here over three stand-ins for what CPython
lacks (time.ticks_*, micropython.schedule): the board tests cover the rest."""
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
    """loop.later()/cancel() with timers that run when the clock passes them."""

    def __init__(self, clock):
        self.clock = clock
        self.timers = []

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


# -- passive windows ---------------------------------------------------------------------------

class FakeLink:
    def __init__(self, n):
        self.id = n


def test_windows_lent_while_data_waits_and_one_kept(fw):
    clock, loop, at = fw
    woken = []
    w = at.net.Windows(100, 2, woken.append, loop.later)
    a, b, c = FakeLink(0), FakeLink(1), FakeLink(2)
    ra, rb, rc = (at.net.RxBuf(w, False) for _ in range(3))
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
