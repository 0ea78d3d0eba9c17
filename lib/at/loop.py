# The one event loop: a select.poll over the UART and every socket, with the
# nearest timer as its timeout. Each pollable has at most one reader and one
# writer callback; nothing here blocks except the poll itself.
import select
import time

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
POLLERR = select.POLLERR
POLLHUP = select.POLLHUP
_FAIL = POLLERR | POLLHUP

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add


class Timer:
    __slots__ = ("at", "cb")

    def __init__(self, at, cb):
        self.at = at
        self.cb = cb


class Loop:
    def __init__(self):
        self._poll = select.poll()
        self._io = {}  # obj -> [reader, writer]
        self._timers = []

    # -- pollables ---------------------------------------------------------------
    def _set(self, obj, slot, cb):
        ent = self._io.get(obj)
        if ent is None:
            if cb is None:
                return
            ent = self._io[obj] = [None, None]
            ent[slot] = cb
            self._poll.register(obj, self._mask(ent))
            return
        ent[slot] = cb
        if ent[0] is None and ent[1] is None:
            del self._io[obj]
            self._poll.unregister(obj)
        else:
            self._poll.modify(obj, self._mask(ent))

    @staticmethod
    def _mask(ent):
        # Always ask for errors: the ESP32's socket poll reports only the events
        # registered (modsocket.c), and a failed connect is otherwise just writable.
        return (POLLIN if ent[0] else 0) | (POLLOUT if ent[1] else 0) | _FAIL

    def on_read(self, obj, cb):
        self._set(obj, 0, cb)

    def on_write(self, obj, cb):
        self._set(obj, 1, cb)

    def forget(self, obj):
        if self._io.pop(obj, None) is not None:
            self._poll.unregister(obj)

    # -- timers --------------------------------------------------------------------
    def later(self, ms, cb):
        t = Timer(ticks_add(ticks_ms(), ms), cb)
        self._timers.append(t)
        return t

    def cancel(self, t):
        try:
            self._timers.remove(t)
        except ValueError:
            pass

    # -- running ---------------------------------------------------------------------
    def run_once(self, max_ms=-1):
        timeout = max_ms
        timers = self._timers
        if timers:
            now = ticks_ms()
            for t in timers:
                d = ticks_diff(t.at, now)
                if d < 0:
                    d = 0
                if timeout < 0 or d < timeout:
                    timeout = d
        io = self._io
        # poll() (a list) rather than ipoll(): callbacks may unregister objects.
        for obj, ev in self._poll.poll(timeout):
            ent = io.get(obj)
            if ent is None:
                continue
            if ent[0] and ev & (POLLIN | _FAIL):
                ent[0](obj, ev)
                ent = io.get(obj)
                if ent is None:
                    continue
            if ent[1] and ev & (POLLOUT | _FAIL):
                ent[1](obj, ev)
        if timers:
            now = ticks_ms()
            due = None  # a list only when a timer is due: no garbage on a quiet turn
            for t in timers:
                if ticks_diff(t.at, now) <= 0:
                    if due is None:
                        due = []
                    due.append(t)
            if due is not None:
                for t in due:
                    if t in timers:
                        timers.remove(t)
                        t.cb()

    def run(self):
        while True:
            self.run_once()
