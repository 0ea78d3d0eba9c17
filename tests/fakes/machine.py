# A fake of the ESP32 port's `machine` module, for lib/at/ports/esp32.py under
# MicroPython's unix port. It models what ports/esp32/machine_uart.c does, not
# what would be convenient:
# - UART(id, baudrate, bits, parity, stop, *, tx, rx, rts, cts, txbuf, rxbuf,
#   timeout, timeout_char, invert, flow); a fresh UART starts at 115200 8N1,
#   256-byte buffers, timeout 0, no flow control, the port's default pins;
#   init() on a running UART waits at most 1 s for the TX to drain, keeps what
#   is not given, and discards pending input.
# - readinto() returns None when nothing is buffered (timeout=0); write()
#   queues into the TX ring buffer; flush() waits for the wire (ETIMEDOUT while
#   the host holds CTS); txdone() tells whether the TX is empty.
# - select.poll works through the stream ioctl, like MP_STREAM_POLL in C:
#   readable when bytes are buffered, always writable.
# The test side: inject() is the host sending, wire / sent() what left the TX
# pin and at which rate, calls the order of init/flush/write.
import io

_POLL = 3  # MP_STREAM_POLL
_RD = 1
_WR = 4
_ETIMEDOUT = 110


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
        self.rx = bytearray()  # bytes the driver holds for readinto()
        self.pending = bytearray()  # written, not yet on the wire
        self.wire = []  # [(baudrate, bytes)] as they left the TX pin
        self.calls = []  # ("init", {...}), ("flush",), ("write", n) ...
        self.cts_held = False  # the host stops us (flow control)
        self.irq_handler = None
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
        self.settings = new
        self.installed = True
        self.rx = bytearray()  # uart_flush_input: input of the old setting is gone
        self.calls.append((how, dict(kw)))

    def deinit(self):
        self.installed = False
        self.calls.append(("deinit",))

    @property
    def baudrate(self):
        return self.settings["baudrate"]

    # -- data ---------------------------------------------------------------------------------
    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        n = min(n, len(self.rx))
        if n == 0:
            return None  # EAGAIN with timeout=0
        buf[:n] = self.rx[:n]
        self.rx[:n] = b""
        return n

    def read(self, n=-1):
        if not self.rx:
            return None
        if n < 0:
            n = len(self.rx)
        out = bytes(self.rx[:n])
        self.rx[:n] = b""
        return out

    def write(self, data):
        data = bytes(data)
        if self.cts_held and len(self.pending) + len(data) > self.settings["txbuf"]:
            raise RuntimeError("UART.write would block for ever: CTS held and txbuf full")
        self.pending.extend(data)
        self.calls.append(("write", len(data)))
        return len(data)

    def any(self):
        return len(self.rx)

    def txdone(self):
        return not self.pending

    def flush(self):
        self.calls.append(("flush",))
        if not self._transmit():
            raise OSError(_ETIMEDOUT)

    def sendbreak(self):
        self._transmit()

    def irq(self, handler=None, trigger=0, hard=False):
        if hard:
            raise ValueError("hard IRQ is not supported")
        self.irq_handler = handler
        return self

    def ioctl(self, req, arg):
        if req == _POLL:
            r = 0
            if arg & _RD and self.rx:
                r |= _RD
            if arg & _WR:
                r |= _WR
            return r
        return -1  # no file descriptor: select.poll falls back to _POLL

    # -- the test side ---------------------------------------------------------------------------
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


def reset():
    resets.append(1)
    raise SystemExit(3)


def soft_reset():
    raise SystemExit(3)


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(hz=None):
    return 240000000


class RTC:
    """machine.RTC: datetime() reads, datetime(tuple) sets (year, month, day,
    weekday, hours, minutes, seconds, subseconds), as ports/esp32/machine_rtc.c."""

    _now = (2000, 1, 1, 5, 0, 0, 0, 0)

    def datetime(self, t=None):
        if t is None:
            return RTC._now
        if len(t) != 8:
            raise ValueError("requires an 8-tuple")
        RTC._now = tuple(t)
