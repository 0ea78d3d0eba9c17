# A background job written as a generator, driven by the loop outside the
# command engine (passthrough reconnects, a saved link at boot, ...). It yields
# what it waits for, as command handlers do: ms (int), or (obj, mask, ms) from
# at.readable()/at.writable(). done(result, error) is called once at the end.
_IN = 1


class Task:
    def __init__(self, loop, gen, done=None):
        self.loop = loop
        self.gen = gen
        self.done = done
        self._timer = None
        self._obj = None
        self._mask = 0
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

    def _end(self, result, err):
        self.gen = None
        if self.done:
            self.done(result, err)

    def cancel(self):
        if self.gen is not None:
            self._unwait()
            self.gen.close()
            self.gen = None
