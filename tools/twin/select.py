# The ESP32 port's select.poll: every object is polled through its stream ioctl
# (MP_STREAM_POLL) with the events it was registered for, and nothing else
# (extmod/modselect.c v1.27.0:295-345, the non-POSIX branch the ESP32 builds).
# Between two rounds the task waits with MICROPY_EVENT_POLL_HOOK:
# ulTaskNotifyTake(pdFALSE, 1), one FreeRTOS tick (ports/esp32/mpconfigport.h
# v1.27.0:307-315; CONFIG_FREERTOS_HZ=100: 10 ms), unless something wakes the task
# (mp_hal_wake_main_task_from_isr: a UART irq, ports/esp32/machine_uart.c
# v1.27.0:167-170). So a socket that becomes readable is seen at the next tick at
# the latest; UART input at once only while a UART.irq handler is registered.
#
# The objects here are the twin's own (socket.Socket, machine.UART, the TLS
# wrapper): each has _poll(events) -> revents, the C ioctl's answer.
from _builtin import builtin

_t = builtin("time")
_sel = builtin("select")
import socket as twin_socket  # the twin's: one real poll over its sockets per round

POLLIN = 1  # MP_STREAM_POLL_RD
POLLOUT = 4  # MP_STREAM_POLL_WR
POLLERR = 8
POLLHUP = 16
TICK_MS = 10

_wakers = []  # objects with wake(ms) -> bool (woken early): machine.UART's wire


def _tick_wait(left_ms):
    """One MICROPY_EVENT_POLL_HOOK: wait for the next tick (or less, when the
    poll's timeout is nearer), unless a waker ends it earlier."""
    now = _t.ticks_ms()
    wait = TICK_MS - now % TICK_MS
    if 0 <= left_ms < wait:
        wait = left_ms
    for w in _wakers:
        if w.wake(wait):
            return
    if wait > 0:
        _t.sleep_ms(wait)


_since = [None]  # ticks_us when the last poll() returned


def _held():
    """How long the caller worked between two polls: what held the loop (a long
    turn, a blocking call). machine.stats keeps the longest and a histogram."""
    if _since[0] is None:
        return
    ms = _t.ticks_diff(_t.ticks_us(), _since[0]) // 1000
    _since[0] = None
    import machine
    st = machine.stats
    if ms > st.turn_max_ms:
        st.turn_max_ms = ms
        st.dirty = True
    if ms >= 10:
        st.turns_over_10ms += 1
        st.dirty = True
    if ms >= 100:
        st.turns_over_100ms += 1


class poll:
    def __init__(self):
        self._m = {}

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        if not hasattr(obj, "_poll"):
            raise TypeError("the twin polls only its own objects: %r" % (obj,))
        self._m[obj] = eventmask

    def modify(self, obj, eventmask):
        if obj not in self._m:
            raise OSError(2)  # modselect.c: mp_raise_OSError(MP_ENOENT)
        self._m[obj] = eventmask

    def unregister(self, obj):
        self._m.pop(obj, None)

    def _once(self):
        # Nothing allocated unless something is ready (the C code allocates only
        # the list it returns): the twin's garbage must not fragment the heap.
        twin_socket.refresh()
        out = None
        for obj in self._m:
            r = obj._poll(self._m[obj])
            if r:
                if out is None:
                    out = []
                out.append((obj, r))
        return out

    def poll(self, timeout=-1):
        _held()
        start = _t.ticks_ms()
        while True:
            ready = self._once()
            if ready:
                break
            left = -1
            if timeout is not None and timeout >= 0:
                left = timeout - _t.ticks_diff(_t.ticks_ms(), start)
                if left <= 0:
                    break
            _tick_wait(left)
        _since[0] = _t.ticks_us()
        return ready or []

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))
