# Keep the event loop turning while a blocking call runs. MicroPython's tls
# handshake (wrap_socket with do_handshake_on_connect) loops over
# mbedtls_ssl_handshake() and waits with mp_event_wait_ms(), which runs
# callbacks queued with micropython.schedule(). We queue one loop iteration at
# a time, so while one link handshakes with a slow peer, the UART, the other
# links and the timers keep going. (MicroPython's tls module gives no other way
# to learn when a non-blocking handshake has finished.)
import micropython
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only
    from typing import Any


def run(loop, fn, timeout_ms, abort, log=None):
    """Call fn(); while it blocks, run the loop; after timeout_ms, call abort()
    (which must make fn fail, e.g. by closing its socket)."""
    state: "list[Any]" = [True, time.ticks_add(time.ticks_ms(), timeout_ms), False]

    def tick(_):
        if not state[0]:
            return
        try:
            loop.run_once(0)
        except Exception as e:  # never let an exception unwind through mbedTLS
            if log:
                log.write("at: loop error during a handshake: %r\n" % e)
        if not state[2] and time.ticks_diff(time.ticks_ms(), state[1]) >= 0:
            state[2] = True
            abort()
        try:
            micropython.schedule(tick, None)
        except RuntimeError:
            pass  # the queue is full: the next wait retries

    try:
        micropython.schedule(tick, None)
    except RuntimeError:
        pass
    try:
        return fn()
    finally:
        state[0] = False
