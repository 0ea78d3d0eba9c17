# The ESP32 port's machine module, for lib/at/ports/esp32.py under the unix port:
# the twin's UART, Pin, RTC, reset and deep sleep. It copies what
# ports/esp32/machine_uart.c does (tag v1.27.0 unless said), not what would be
# convenient:
# - UART(id, baudrate, bits, parity, stop, *, tx, rx, rts, cts, txbuf, rxbuf,
#   timeout, timeout_char, invert, flow): a new UART is 115200 8N1, 256-byte
#   rings, timeout 0, no flow control, the port's default pins (256-275);
#   init() on a running UART waits at most 1 s for TX (uart_wait_tx_done), keeps
#   what is not given, and the ESP-IDF driver drops pending input.
# - write() returns only when every byte is in the TX ring: it waits while the
#   ring is full (uart_write_bytes, 705-716); poll always says writable (729).
# - readinto() takes what the RX ring holds, or None at once when timeout=0
#   (mp_machine_uart_read 672-703).
# - flush() waits for the wire, at most (3 + txbuf) * 13000 * 2 / baud ms, then
#   OSError(ETIMEDOUT) (MP_STREAM_FLUSH 733-745); txdone() (uart_wait_tx_done 0).
# - irq(handler, trigger): IRQ_RX (an event per RX FIFO threshold: 1 byte when
#   timeout_char is under one character time, else ESP-IDF's 120 bytes or an idle
#   line, 451-463), IRQ_RXIDLE; the handler is scheduled and the main task woken
#   (uart_event_task 141-172): see select.py.
#
# The wire. When $TWIN_UART_FD names the host's end (the launcher's pty) and
# $TWIN_UART_ID this UART, bytes move at the line rate (start + data + parity +
# stop bits) and the rings are real:
# - RX: what the host sent arrives one character time apart into a ring of
#   rxbuf bytes plus the 128-byte hardware FIFO; what does not fit is lost,
#   unless RTS flow control is on: then the host is held (its writes block).
# - TX: the ring holds txbuf bytes plus the 128-byte FIFO and drains at the line
#   rate into the host's serial buffer (the pty); when the host does not read and
#   that buffer is full, bytes are lost, unless CTS flow control is on: then the
#   ring stops draining (the host holds CTS) and write() blocks.
# Without the wire (the unit tests), inject() puts bytes straight into the RX
# ring and write() queues for sent()/tick(), as the tests script it.
import io
import os
import sys
from _builtin import builtin

_t = builtin("time")
_sel = builtin("select")

_POLL = 3  # MP_STREAM_POLL
_RD = 1
_WR = 4
_ETIMEDOUT = 116  # newlib
_FIFO = 128  # SOC_UART_FIFO_LEN on the ESP32


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0

    __call__ = value

    def __repr__(self):
        return "Pin(%d)" % self.id


_DEFAULT_PINS = {0: (1, 3), 1: (10, 9), 2: (17, 16)}  # (tx, rx) per machine_uart.h


_clock = [_t.ticks_us(), 0]  # the last ticks_us() seen, microseconds so far


def _now_us():
    """A monotonic microsecond count that allocates nothing (time_ns() makes a
    long int each call; ticks_us() wraps after 2**30 us, so it is unwrapped)."""
    t = _t.ticks_us()
    _clock[1] += _t.ticks_diff(t, _clock[0])
    _clock[0] = t
    return _clock[1]


class Stats:
    """What the wire saw, for the tests and the bench ($TWIN_STATS, JSON)."""

    def __init__(self):
        self.rx_lost = 0  # host bytes dropped: the RX ring was full, no RTS
        self.tx_lost = 0  # board bytes dropped: the host's buffer was full, no CTS
        self.write_blocked_ms = 0  # longest UART.write() wait
        self.write_blocked_total_ms = 0
        self.irq_events = 0
        self.turn_max_ms = 0  # the longest stretch between two select.poll() calls
        self.turns_over_10ms = 0
        self.turns_over_100ms = 0
        self.dirty = False  # changed since the last save
        # Counted since the board's first boot, across AT+RST (which restarts
        # this process): the suite reads one file per board at the end.
        path = os.getenv("TWIN_STATS")
        if path:
            try:
                import json
                with open(path) as f:
                    for k, v in json.load(f).items():
                        setattr(self, k, v)
            except (OSError, ValueError):
                pass

    def save(self):
        path = os.getenv("TWIN_STATS")
        self.dirty = False
        if not path:
            return
        import json
        with open(path + ".tmp", "w") as f:
            json.dump({k: v for k, v in self.__dict__.items() if k != "dirty"}, f)
        os.rename(path + ".tmp", path)


stats = Stats()


class _Ring:
    """A circular byte queue of fixed capacity, allocated once (ESP-IDF's rings
    live in the IDF heap: nothing here may allocate while the firmware runs)."""

    def __init__(self, cap):
        self.buf = bytearray(cap)
        self.mv = memoryview(self.buf)
        self.s = 0  # first byte
        self.n = 0  # bytes held

    def __len__(self):
        return self.n

    def room(self):
        return len(self.buf) - self.n

    def put(self, mv):
        cap = len(self.buf)
        k = min(len(mv), cap - self.n)
        done = 0
        while done < k:
            e = (self.s + self.n) % cap
            c = min(k - done, cap - e)
            self.mv[e:e + c] = mv[done:done + c]
            done += c
            self.n += c
        return k

    def view(self, n):
        """Up to n bytes from the front, the contiguous part only."""
        return self.mv[self.s:self.s + min(n, self.n, len(self.buf) - self.s)]

    def take(self, n):
        self.n -= n
        self.s = 0 if not self.n else (self.s + n) % len(self.buf)

    def clear(self):
        self.s = self.n = 0


class _Wire:
    """The line between the UART and the host's serial port (see the header).
    Integer arithmetic only, and no allocation on an idle line: the twin's own
    garbage shares the firmware's heap (a float is an object on this port)."""

    def __init__(self, uart, fd):
        self.u = uart
        self.rin = open(fd, "rb")
        self.wout = open(fd, "wb")
        self.host = _Ring(256)  # sent by the host, not yet on the line (its FIFO)
        self.rx = _Ring(0)  # the RX ring (and FIFO), sized by resize()
        self.tx = _Ring(0)  # the TX ring (and FIFO)
        self.t = _now_us()
        self.t_rx = self.t  # RX counts from when the twin last saw the host idle
        # Credits in bit-microseconds: each microsecond moves `baud` of them, a
        # character costs bits * 1,000,000.
        self.rx_credit = 0
        self.tx_credit = 0
        self.buf = bytearray(256)
        self.irq_due = 0
        self.irq_fired = False
        self.poller = _sel.poll()
        self.poller.register(self.rin, _sel.POLLIN)
        self.unseen = 0  # bytes in since the last RX event
        self.last_rx = self.t
        self.saved = self.t

    def resize(self, rxbuf, txbuf):
        """uart_driver_install: rings of the configured sizes, plus the FIFOs."""
        if len(self.rx.buf) != rxbuf + _FIFO:
            self.rx = _Ring(rxbuf + _FIFO)
        if len(self.tx.buf) != txbuf + _FIFO:
            self.tx = _Ring(txbuf + _FIFO)

    def char_cost(self):
        s = self.u.settings
        return (1 + s["bits"] + (0 if s["parity"] is None else 1) + s["stop"]) * 1000000

    def chars_us(self, n):
        """Microseconds n characters take on the line."""
        return n * self.char_cost() // self.u.settings["baudrate"] + 1

    def _fill(self):
        """Take what the host wrote into its FIFO (at most 256 bytes: beyond that
        its writes wait, as a serial port's do)."""
        if len(self.host):
            return
        for _, ev in self.poller.ipoll(0):  # ipoll allocates nothing; an EAGAIN would be an exception object
            if not ev & _sel.POLLIN:
                return
            try:
                n = self.rin.readinto(self.buf)
            except OSError:
                n = None
            if n:
                self.host.put(memoryview(self.buf)[:n])

    def advance(self):
        now = _now_us()
        dt = now - self.t
        if dt <= 0:
            return
        self.t = now
        s = self.u.settings
        baud = s["baudrate"]
        cost = self.char_cost()
        # TX: the ring drains one character time per byte into the host's buffer.
        if len(self.tx):
            self.tx_credit += dt * baud
            n = min(self.tx_credit // cost, len(self.tx))
            if n:
                self.tx_credit -= n * cost
                k = 0
                try:
                    while k < n:
                        c = self.wout.write(self.tx.view(n - k)) or 0
                        if not c:
                            break
                        self.tx.take(c)
                        k += c
                except OSError:
                    pass
                if k < n:
                    if s["flow"] & 2:
                        self.tx_credit = 0  # CTS held: the line waits
                    else:
                        stats.tx_lost += n - k  # the host's buffer is full: lost on the line
                        stats.dirty = True
                        self.tx.take(n - k)
        else:
            self.tx_credit = 0
        # RX: the host's bytes arrive one character time apart, from when they
        # could first have been sent (the last time the twin looked and saw none).
        drx = now - self.t_rx
        self.t_rx = now
        self._fill()
        if len(self.host):
            self.rx_credit += drx * baud
            n = min(self.rx_credit // cost, len(self.host))
            if n:
                self.rx_credit -= n * cost
                room = self.rx.room()
                if n > room:
                    if s["flow"] & 1:
                        n = room  # RTS: the host waits
                        self.rx_credit = 0
                    else:
                        stats.rx_lost += n - room
                        stats.dirty = True
                if n:
                    take = 0
                    left = n
                    while left:
                        v = self.host.view(left)
                        take += self.rx.put(v)
                        self.host.take(len(v))
                        left -= len(v)
                    if take:
                        # An RX event each time the FIFO reaches its threshold...
                        th = self.u._threshold()
                        self.unseen += take
                        self.irq_due += self.unseen // th
                        self.unseen %= th
                        self.last_rx = now
                self._fill()
        else:
            self.rx_credit = 0
        if self.unseen and (now - self.last_rx) * baud >= self.u._idle_chars() * cost:
            self.irq_due += 1  # ...and when the line has been idle that many characters
            self.unseen = 0
        if self.irq_due:
            self.u._irq_fire(self.irq_due)
            self.irq_fired = True
            self.irq_due = 0
        if stats.dirty and now - self.saved > 500000:
            self.saved = now
            stats.save()

    def wake(self, ms):
        """select.py's tick wait (ms): True when a UART.irq handler woke the main
        task early because characters arrived; without a handler the task sleeps
        the tick out. The line keeps moving meanwhile (TX drains, RX arrives)."""
        self.advance()
        end = _now_us() + ms * 1000
        u = self.u
        irq = u.irq_handler is not None and u.irq_trigger & (UART.IRQ_RX | UART.IRQ_RXIDLE)
        p = self.poller
        while True:
            left = end - _now_us()
            if left <= 0:
                return False
            step = left
            if len(self.tx) or len(self.host):
                step = min(step, self.chars_us(16))  # keep the line moving
            if self.unseen:  # the RX timeout event is due after that many idle characters
                due = self.last_rx + self.chars_us(u._idle_chars()) - _now_us()
                step = min(step, max(due, 1))
            if irq and not len(self.host) and self.rx.room():
                self.advance()
                for _ in p.ipoll(max(1, step // 1000)):  # a character from the host wakes us
                    self.t_rx = _now_us()  # it was written while we watched: it starts now
            else:
                _t.sleep_us(step)
            self.advance()
            if irq and self.irq_fired:  # an RX event: FIFO threshold or idle line
                self.irq_fired = False
                return True

    def write(self, data):
        """uart_write_bytes: copy into the ring, waiting while it is full."""
        mv = memoryview(data)
        t0 = None
        while True:
            self.advance()
            mv = mv[self.tx.put(mv):]
            if not len(mv):
                break
            if t0 is None:
                t0 = _now_us()
            _t.sleep_us(max(50, self.chars_us(min(len(mv), 64))))
        if t0 is not None:
            ms = (_now_us() - t0) // 1000
            stats.write_blocked_total_ms += ms
            stats.dirty = True
            if ms > stats.write_blocked_ms:
                stats.write_blocked_ms = ms
                sys.stdout.write("twin: UART.write blocked the loop for %d ms\n" % ms)
                stats.save()
        return len(data)

    def drain(self, max_ms):
        end = _now_us() + max_ms * 1000
        while len(self.tx):
            self.advance()
            if not len(self.tx):
                break
            if _now_us() >= end:
                return False
            _t.sleep_us(max(50, self.chars_us(min(len(self.tx), 64))))
        return True


class UART(io.IOBase):
    INV_TX = 32  # the values of the ESP32 build (micropython-esp32-stubs)
    INV_RX = 4
    INV_RTS = 64
    INV_CTS = 8
    RTS = 1  # UART_HW_FLOWCTRL_RTS
    CTS = 2  # UART_HW_FLOWCTRL_CTS
    IRQ_RX = 1
    IRQ_RXIDLE = 0x1000
    IRQ_BREAK = 2

    objs = {}  # the UART object per id, like MP_STATE_PORT(machine_uart_objs)

    def __init__(self, id, *args, **kw):
        if not 0 <= id <= 2:
            raise ValueError("UART(%d) does not exist" % id)
        self.id = id
        self.installed = False
        tx, rx = _DEFAULT_PINS[id]
        self.settings = {
            "baudrate": 115200, "bits": 8, "parity": None, "stop": 1,
            "tx": tx, "rx": rx, "rts": -1, "cts": -1,
            "txbuf": 256, "rxbuf": 256, "timeout": 0, "timeout_char": 0,
            "invert": 0, "flow": 0,
        }
        self.rx = bytearray()  # scripted mode: bytes the driver holds for readinto()
        self.pending = bytearray()  # scripted mode: written, not yet on the wire
        self.wire = []  # scripted mode: [(baudrate, bytes)] as they left the TX pin
        self.calls = []  # ("init", {...}), ("flush",), ("write", n) ...
        self.cts_held = False  # scripted mode: the host stops us (flow control)
        self.irq_handler = None
        self.irq_trigger = 0
        self._wire = None
        fd = os.getenv("TWIN_UART_FD")
        if fd and int(os.getenv("TWIN_UART_ID") or "1") == id:
            self._wire = _Wire(self, int(fd))
            import select as twin_select
            twin_select._wakers.append(self._wire)
        self._init(args, kw, "new")
        UART.objs[id] = self

    # -- configuration --------------------------------------------------------------------
    def init(self, *args, **kw):
        self._init(args, kw, "init")

    def _init(self, args, kw, how):
        names = ("baudrate", "bits", "parity", "stop")
        for i, v in enumerate(args):
            kw[names[i]] = v
        for k in kw:
            if k not in self.settings:
                raise TypeError("unexpected keyword argument '%s'" % k)
        if self.installed:
            # uart_wait_tx_done(.., 1000 ms): what does not leave within 1 s goes
            # out at the new settings.
            if self._wire:
                self._wire.drain(1000)
            else:
                self._transmit(max_ms=1000)
        s = self.settings
        new = dict(s)
        new.update(kw)
        if ("txbuf" in kw or "rxbuf" in kw) and self.id == 0:
            raise ValueError("REPL UART buffer size is fixed")
        new["txbuf"] &= 0xFFFF  # uint16_t in machine_uart_obj_t
        new["rxbuf"] &= 0xFFFF
        if new["rxbuf"] <= 128 or 0 < new["txbuf"] <= 128:
            raise OSError(-1)  # uart_driver_install: buffers must exceed the FIFO
        if new["bits"] not in (5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if new["stop"] not in (1, 2):
            raise ValueError("invalid stop bits")
        if new["flow"] & ~3:
            raise ValueError("invalid flow control mask")
        if new["parity"] is not None:
            new["parity"] = 1 if new["parity"] & 1 else 0
        if kw.get("baudrate", 1) <= 0:
            new["baudrate"] = s["baudrate"]
        if not 0 < new["baudrate"] <= 5000000:
            raise ValueError("invalid baudrate")  # the ESP32's UART tops out at 5 Mbaud
        self.settings = new
        self.installed = True
        self.rx = bytearray()  # uart_flush_input: input of the old setting is gone
        if self._wire:
            self._wire.resize(new["rxbuf"], new["txbuf"])
            self._wire.rx.clear()
        self.calls.append((how, dict(kw)))

    def deinit(self):
        self.installed = False
        self.calls.append(("deinit",))

    @property
    def baudrate(self):
        return self.settings["baudrate"]

    def _char_time_ms(self):
        return 12000 // self.settings["baudrate"] + 1  # machine_uart.c 456

    def _threshold(self):
        """Bytes per RX event: 1 when timeout_char is under a character time
        (uart_set_rx_full_threshold(1), 458-460), else ESP-IDF's default 120."""
        return 1 if self.settings["timeout_char"] // self._char_time_ms() < 1 else 120

    def _idle_chars(self):
        """The RX timeout event, in character times (uart_set_rx_timeout, 461-463)."""
        return max(1, self.settings["timeout_char"] // self._char_time_ms())

    # -- data ---------------------------------------------------------------------------------
    def _ring(self):
        if self._wire:
            self._wire.advance()
            return self._wire.rx
        return self.rx

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        if self._wire:
            rx = self._ring()
            got = 0
            while got < n and len(rx):
                v = rx.view(n - got)
                buf[got:got + len(v)] = v
                rx.take(len(v))
                got += len(v)
            return got or None  # None: EAGAIN with timeout=0
        n = min(n, len(self.rx))
        if n == 0:
            return None  # EAGAIN with timeout=0
        buf[:n] = self.rx[:n]
        self.rx[:n] = b""
        return n

    def read(self, n=-1):
        rx = self._ring()
        if not len(rx):
            return None
        if n < 0:
            n = len(rx)
        if self._wire:
            out = bytearray(min(n, len(rx)))
            self.readinto(out)
            return bytes(out)
        out = bytes(rx[:n])
        rx[:n] = b""
        return out

    def write(self, data):
        if self._wire:
            return self._wire.write(data)
        self.calls.append(("write", len(data)))
        data = bytes(data)
        if self.cts_held and len(self.pending) + len(data) > self.settings["txbuf"]:
            raise RuntimeError("UART.write would block for ever: CTS held and txbuf full")
        self.pending.extend(data)
        return len(data)

    def any(self):
        return len(self._ring())

    def txdone(self):
        if self._wire:
            self._wire.advance()
            return not len(self._wire.tx)
        return not self.pending

    def flush(self):
        if not self._wire:
            self.calls.append(("flush",))
        s = self.settings
        if self._wire:
            ok = self._wire.drain((3 + s["txbuf"]) * 13000 * 2 // s["baudrate"])
        else:
            ok = self._transmit()
        if not ok:
            raise OSError(_ETIMEDOUT)

    def sendbreak(self):
        self.flush()

    def irq(self, handler=None, trigger=0, hard=False):  # positional or keyword (extmod/machine_uart.c)
        if hard:
            raise ValueError("hard IRQ is not supported")
        self.irq_handler = handler
        self.irq_trigger = trigger
        return self

    def _irq_fire(self, events=1):
        """uart_event_task: the handler is scheduled (mp_irq_handler, soft) once
        per RX event; a full schedule queue drops it. The twin schedules once for
        the events of one step and counts them all (stats.irq_events)."""
        if self.irq_handler is None or not self.irq_trigger & (UART.IRQ_RX | UART.IRQ_RXIDLE):
            return
        stats.irq_events += events
        stats.dirty = True
        import micropython
        try:
            micropython.schedule(self.irq_handler, self)
        except RuntimeError:
            pass

    def ioctl(self, req, arg):
        if req == _POLL:
            return self._poll(arg)
        return -1

    def _poll(self, ev):
        r = 0
        if ev & _RD and len(self._ring()):
            r |= _RD
        if ev & _WR:
            r |= _WR  # machine_uart.c 729: "FIXME: uart_tx_any_room"
        return r

    # -- the test side (scripted mode) -----------------------------------------------------------
    def inject(self, data):
        """The host sends data: it lands in the RX ring buffer."""
        self.rx.extend(data)

    def _transmit(self, max_ms=None):
        """Time passes: pending bytes leave at the current rate (10 bits a byte)."""
        if not self.pending:
            return True
        if self.cts_held:
            return False
        n = len(self.pending)
        if max_ms is not None:
            n = min(n, self.settings["baudrate"] * max_ms // 10000)
        self.wire.append((self.settings["baudrate"], bytes(self.pending[:n])))
        self.pending[:n] = b""
        return not self.pending

    def tick(self):
        self._transmit()

    def sent(self, baudrate=None):
        """What left the TX pin (at one rate, or at any), pending bytes included."""
        out = b"".join(d for b, d in self.wire if baudrate is None or b == baudrate)
        if baudrate is None or baudrate == self.settings["baudrate"]:
            out += bytes(self.pending)
        return out


resets = []
RESET_EXIT = 3  # the launcher restarts the firmware on this exit code


def reset():
    resets.append(1)
    stats.save()
    raise SystemExit(RESET_EXIT)


def soft_reset():
    raise SystemExit(RESET_EXIT)


def deepsleep(ms=0):
    """Deep sleep ends in a boot. The UART is off meanwhile: what the host sends
    is lost (the twin reads and drops it)."""
    u = UART.objs.get(int(os.getenv("TWIN_UART_ID") or "1"))
    end = _t.ticks_add(_t.ticks_ms(), ms)
    while ms and _t.ticks_diff(end, _t.ticks_ms()) > 0:
        if u is not None and u._wire is not None:
            u._wire.advance()
            u._wire.rx.clear()
        _t.sleep_ms(10)
    reset()


lightsleep = deepsleep


def idle():
    _t.sleep_ms(1)


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(hz=None):
    return 240000000


class RTC:
    """machine.RTC: datetime() reads, datetime(tuple) sets (year, month, day,
    weekday, hours, minutes, seconds, subseconds), as ports/esp32/machine_rtc.c
    109-152: the system clock of time.py."""

    def datetime(self, t=None):
        import time as twin_time
        if t is None:
            y, mo, d, h, mi, s, wd = twin_time.gmtime()[:7]
            return (y, mo, d, wd, h, mi, s, 0)
        if len(t) != 8:
            raise ValueError("requires an 8-tuple")
        twin_time.set_rtc(twin_time.mktime((t[0], t[1], t[2], t[4], t[5], t[6], 0, 0)))

    def init(self, t):
        import time as twin_time
        twin_time.set_rtc(twin_time.mktime((t[0], t[1], t[2], t[3], t[4], t[5], 0, 0)))
