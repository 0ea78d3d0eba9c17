# Generators that wait. A command handler (run by the engine) or a background
# job (a Task: passthrough reconnects, SNTP, a saved link at boot) is a
# generator that yields what it waits for: ms (int), or (obj, mask, ms) from
# eng.readable()/eng.writable(). Waits is the one piece of code that turns such a
# yield into loop registrations and resumes the generator with the poll event
# (0 on timeout).
_IN = 1

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only
    from typing import Any


class Waits:
    """Mixin: needs self.loop and a self._step(value) that resumes the generator."""

    loop: "Any"
    _timer: "Any" = None
    _obj: "Any" = None
    _mask = 0

    def _step(self, val):
        raise NotImplementedError

    def _wait(self, w):
        if isinstance(w, int):
            self._timer = self.loop.later(w, self._timeout)
            return
        obj, mask, ms = w
        self._obj, self._mask = obj, mask
        if mask == _IN:
            self.loop.on_read(obj, self._ready)
        else:
            self.loop.on_write(obj, self._ready)
        if ms is not None and ms >= 0:
            self._timer = self.loop.later(ms, self._timeout)

    def waiting_on(self, obj):
        return obj is not None and self._obj is obj

    def wake(self, obj, ev):
        """Resume what waits on obj now with the poll event ev (e.g. its socket
        was closed under it: POLLERR)."""
        if self.waiting_on(obj):
            self._ready(obj, ev)

    def _unwait(self):
        if self._timer is not None:
            self.loop.cancel(self._timer)
            self._timer = None
        obj = self._obj
        if obj is not None:
            self._obj = None
            if self._mask == _IN:
                self.loop.on_read(obj, None)
            else:
                self.loop.on_write(obj, None)

    def _ready(self, obj, ev):
        self._unwait()
        self._step(ev)

    def _timeout(self):
        self._timer = None
        self._unwait()
        self._step(0)


class Task(Waits):
    """A background generator; done(result, error) is called once at the end."""

    def __init__(self, loop, gen, done=None):
        self.loop = loop
        self.gen = gen
        self.done = done
        self._step(None)

    def _step(self, val):
        try:
            w = self.gen.send(val)
        except StopIteration as e:
            self._end(getattr(e, "value", None), None)
            return
        except Exception as e:
            self._end(None, e)
            return
        self._wait(w)

    def _end(self, result, err):
        self.gen = None
        if self.done:
            self.done(result, err)

    def cancel(self):
        if self.gen is not None:
            self._unwait()
            self.gen.close()
            self.gen = None
