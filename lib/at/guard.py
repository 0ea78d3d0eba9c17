# "+++" ends a data phase (passthrough, AT+CIPSENDL) only as a lone packet: at
# least GUARD_MS of silence before the first "+", the three "+" within GUARD_MS
# of each other, and GUARD_MS of silence after the third (TCP-IP_AT_Commands.rst,
# "+++"). Anything else, including "+++" inside a stream, is data.
import time

GUARD_MS = 20
_PLUS = b"+++"


class PlusGuard:
    """Wraps a data sink: data(buf, pos, end) -> pos, or -1 when full. A data
    sink must always take the (at most three) "+" released back as data."""

    def __init__(self, loop, data, on_plus):
        self.loop = loop
        self.data = data
        self.on_plus = on_plus
        self.last = time.ticks_add(time.ticks_ms(), -GUARD_MS)
        self.n = 0  # "+" held back so far
        self._t = None

    def sink(self, buf, pos, end):
        now = time.ticks_ms()
        quiet = time.ticks_diff(now, self.last) >= GUARD_MS
        self.last = now
        k = end - pos
        if self.n:
            if self.n + k <= 3 and buf[pos:end] == _PLUS[:k]:
                self.n += k
                self._arm()
                return end
            self._release()
        elif quiet and k <= 3 and buf[pos:end] == _PLUS[:k]:
            self.n = k
            self._arm()
            return end
        return self.data(buf, pos, end)

    def _arm(self):
        self.cancel()
        self._t = self.loop.later(GUARD_MS, self._fire)

    def cancel(self):
        if self._t is not None:
            self.loop.cancel(self._t)
            self._t = None

    def _fire(self):
        self._t = None
        if self.n == 3:
            self.n = 0
            self.on_plus()
        else:
            self._release()  # too slow between the "+": they were data

    def _release(self):
        n = self.n
        self.n = 0
        self.cancel()
        self.data(_PLUS, 0, n)
