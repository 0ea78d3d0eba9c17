# Keep the event loop turning while a blocking call runs. MicroPython's tls
# handshake (wrap_socket with do_handshake_on_connect) loops over
# mbedtls_ssl_handshake() and waits with mp_event_wait_ms(), which runs
# callbacks queued with micropython.schedule(). We queue one loop iteration at
# a time, so while one link handshakes with a slow peer, the UART, the other
# links and the timers keep going. (MicroPython's tls module gives no other way
# to learn when a non-blocking handshake has finished.)
#
# One at a time: a scheduled callback runs with the scheduler locked
# (py/scheduler.c), so a handshake started from inside a tick would never see
# its own ticks, nor its timeout: one silent peer would hold the board. Code
# that may run inside a tick asks busy() first and waits its turn (wait_turn()
# in a generator, later() elsewhere).
import micropython
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only
    from typing import Any

_in_tick = [False]
_later: "list[Any]" = []


def busy():
    """True inside a handshake's tick: no other handshake may start now."""
    return _in_tick[0]


def later(cb):
    """Call cb once no handshake runs any more."""
    _later.append(cb)


def wait_turn(eng):
    """Generator (a handler or a task): wait until no handshake's tick is running us."""
    while _in_tick[0]:
        yield eng.sleep(10)


def run(loop, fn, timeout_ms, abort, log=None):
    """Call fn(); while it blocks, run the loop; after timeout_ms, call abort()
    (which must make fn fail, e.g. by closing its socket)."""
    if _in_tick[0]:
        raise RuntimeError("a handshake inside a handshake")
    # running, deadline, aborted, an exit (a reset) to raise once fn() is out
    state: "list[Any]" = [True, time.ticks_add(time.ticks_ms(), timeout_ms), False, None]

    def tick(_):
        if not state[0]:
            return
        _in_tick[0] = True
        try:
            loop.run_once(0)
        except Exception as e:  # never let an exception unwind through mbedTLS
            if log:
                log.write("at: loop error during a handshake: %r\n" % e)
        except BaseException as e:
            # A reset (SystemExit) asked for inside the handshake: an exception
            # out of a scheduled callback is only printed. End the handshake and
            # raise it once out.
            state[3] = e
            state[0] = False
            if not state[2]:
                state[2] = True
                abort()
            return
        finally:
            _in_tick[0] = False
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
        r = fn()
    except Exception:
        if state[3] is not None:
            raise state[3]
        raise
    finally:
        state[0] = False
        if _later:
            loop.later(0, _run_later)
    if state[3] is not None:
        raise state[3]
    return r


def _run_later():
    while _later and not _in_tick[0]:
        _later.pop(0)()
