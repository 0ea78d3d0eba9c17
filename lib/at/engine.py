# The AT engine: line assembly, echo, "busy p...", parsing, dispatch through the
# command table, result framing and ERR CODE. It knows no command by name: the
# groups in at/commands add rows to its table.
#
# A handler returns None (-> OK), a bytes result (e.g. SEND_OK), raises ATError
# (-> ERROR), or is a generator: it then yields what it waits for
# (eng.sleep(ms), eng.readable(obj, ms), eng.writable(obj, ms), eng.data(n)) and the
# engine resumes it from the event loop; while it runs, new lines get "busy p...".
import sys
from at import parse

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only; MicroPython never runs this
    from typing import Any
from at.task import Waits
from at.errors import ATError, code, COMMON, NO_TERMINATOR, UNSUPPORTED, OP_ERROR, EXEC_FAIL, PROCESSING, E_NO_HEAP

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
BUSY = b"\r\nbusy p...\r\n"
READY = b"\r\nready\r\n"
SEND_OK = b"\r\nSEND OK\r\n"
SEND_FAIL = b"\r\nSEND FAIL\r\n"
MAXLINE = 256  # AT_Command_Set_index.rst: "no more than 256 bytes"
DATA_MAX = 8192  # the largest AT+CIPSEND
DATA_SMALL = 2924  # the data buffer of a board with a small heap: a block of transmit size
# (2,920) and room for a "+" released as data; a larger send borrows a buffer for itself

_IN = 1  # select.POLLIN / POLLOUT, the same on every port
_OUT = 4


def _g():
    yield


GEN = type(_g())


class _Data:
    pass


PROMPT = b"\r\nOK\r\n\r\n>"  # a command that takes data: OK, then ">" (eng.data, eng.stream)
DATA = _Data()
STREAM = _Data()


def sized(n, m):
    """An empty dict with room for n items and an empty list with room for m,
    made in one piece now: they never grow while the command groups load
    (growing takes a new, bigger block, which a heap the imports have cut up may
    not have). MicroPython keeps the room: a dict reuses its deleted slots
    (py/map.c), a list keeps its allocation when a slice is deleted
    (py/objlist.c)."""
    d = dict.fromkeys(range(n))
    for k in range(n):
        del d[k]
    rows = [None] * m
    del rows[:]
    return d, rows


class Engine(Waits):
    def __init__(self, loop, out, log=None, dsize=DATA_MAX, rows=(0, 0)):
        self.loop = loop
        self.out = out
        self.log: "Any" = log or sys.stderr
        # The collaborators, all of them here: what app.build() and the groups'
        # init() (or first use) put on the engine, and who reads them.
        self.board: "Any" = None  # app: the port's Board (uart, radio, log, reset, heap ...)
        self.cfg: "Any" = None  # app: at.store.Store, the settings
        self.wifi: "Any" = None  # Wi-Fi group: at/wifi.py's Wifi, the station (links, mDNS, passthrough)
        self.net: "Any" = None  # TCP/IP group: at.net.Net, the link table (sends, passthrough, DNS ...)
        self.rfpower: "Any" = None  # basic group: AT+RFPOWER's levels, once set
        self.clock: "Any" = None  # at.sntp.clock(): the board's clock (SNTP, AT+SYSTIMESTAMP, TLS dates)
        self.sntp: "Any" = None  # SNTP group: at.sntp.Sntp
        self.ssl: "Any" = None  # at.sslconf.settings(): AT+CIPSSLC* (SSL group, links, OTA)
        self.ota_state = 0  # OTA group: +CIPUPDATE's state (at/fwfiles.py), set by at/ota.py as it goes
        self.ota_task: "Any" = None  # OTA group: the non-blocking update's Task
        self.ota_busy = False  # OTA group: an update runs (either mode)
        # name -> row, every command's once used; the core groups' rows and
        # user_commands.py's in ESP-AT's order (AT+CMD? lists the others from
        # at/commands' INDEX): room for rows[0] and rows[1] of them
        self.table, self.rows = sized(*rows)
        self.echo = True
        self.syslog = 0
        self.task: "Any" = None
        self._after = None
        # at/commands: on_use(eng, name, kind) imports the group of a command not in the
        # table and returns its row (None: no group has it); unload(eng, group) drops a
        # passing group once its command has finished (passing: the one the command
        # running imported).
        self.on_use: "Any" = None
        self.unload: "Any" = None
        self.passing: "Any" = None
        self.line = bytearray()
        self._over = False
        self._cr = False  # the line so far ends with a CR
        self.sink = self.command_sink
        self._stream: "Any" = None
        self._held: "Any" = None  # (buffer, from, to) of UART input a full sink holds back
        self.dbuf = bytearray(dsize)  # the data phases' buffer (sends, passthrough)
        self._dcur = self.dbuf  # ... or the one a larger send borrowed
        self._dneed = 0
        self._dlen = 0

    # -- the table -----------------------------------------------------------------
    def add(self, rows):
        """Add rows (name, test, query, set, execute); a later row replaces an earlier one."""
        for row in rows:
            if row[0] not in self.table:
                self.rows.append(row)
            else:
                self.rows[self.rows.index(self.table[row[0]])] = row
            self.table[row[0]] = row

    # -- output helpers for handlers ---------------------------------------------------
    def write(self, data):
        self.out.write(data.encode() if isinstance(data, str) else data)

    def reply(self, *lines):
        """Write each line with its CR LF, in one UART write."""
        self.write("\r\n".join(lines) + "\r\n" if len(lines) > 1 else lines[0] + "\r\n")

    def report(self, line):
        """A progress line the host may miss: dropped when the host has not been
        reading for a while (at/output.py), as a real UART would lose it."""
        self.out.write((line + "\r\n").encode(), True)

    def then(self, cb):
        """Run cb after the command's final result has been written (e.g. a reset)."""
        self._after = cb

    # -- what a generator handler yields ---------------------------------------------
    @staticmethod
    def sleep(ms):
        return int(ms)

    @staticmethod
    def readable(obj, ms=-1):
        return (obj, _IN, ms)

    @staticmethod
    def writable(obj, ms=-1):
        return (obj, _OUT, ms)

    def dbuffer(self, n):
        """A buffer for a data phase of n bytes: the data buffer, or, when it is
        smaller (a board with a small heap keeps it to one block), a buffer of
        n bytes for this send alone, back to the heap when the send is over (on
        an ESP32 the GC heap grows for it and gives the area back). No heap for
        it: ERROR before the prompt, so the host sends nothing that is lost."""
        if n <= len(self.dbuf):
            return self.dbuf
        try:
            return bytearray(n)
        except MemoryError:
            self.log.write("at: no heap for a %d-byte data buffer\n" % n)
            raise ATError(code(EXEC_FAIL, E_NO_HEAP))

    def data(self, n, prompt=True):
        """Collect n (at most DATA_MAX) raw bytes from the UART (the ">" phase) into
        the data buffer (eng.dbuffer), after OK and the ">" prompt; resumes with a
        memoryview of them."""
        self._dcur = self.dbuffer(n)
        if prompt:
            self.write(PROMPT)
        self._dneed = n
        self._dlen = 0
        return DATA

    def stream(self, sink, prompt=True):
        """After OK and the ">" prompt, give every UART byte to sink(buf, pos, end)
        -> new pos (or -1: "full, hold the rest") until the owner calls
        eng.resume(result)."""
        if prompt:
            self.write(PROMPT)
        self._stream = sink
        return STREAM

    def start(self, gen):
        """Run a generator as if a command had started it (e.g. passthrough at boot)."""
        self.task = gen
        self._step(None)

    def resume(self, val=None):
        """End a stream (or wake a generator handler) with val."""
        self.sink = self.command_sink
        self._step(val)

    # -- input ---------------------------------------------------------------------------
    def feed(self, buf, n, pos=0):
        """Hand buf[pos:n] (UART input) to whoever takes it now."""
        while pos < n:
            p = self.sink(buf, pos, n)
            if p < 0:
                # The sink is full (a send waits for the network): keep the rest
                # where it is (the UART is not read again until it is taken, so
                # its buffer stays as it is: nothing is copied) and stop reading
                # the UART, so flow control holds the host back.
                self._held = (buf, pos, n)
                self.pause_input()
                return
            pos = p

    def holding(self):
        """Is UART input held back (a full sink)? The UART is not read meanwhile."""
        return self._held is not None

    def unhold(self):
        """The sink has room again: feed what was held, then read the UART again."""
        h = self._held
        if h is None:
            return
        self._held = None
        try:
            self.feed(h[0], h[2], h[1])
        finally:
            if self._held is None:
                self.resume_input()  # even when a sink failed: never leave the UART unread

    def pause_input(self):  # app.run() replaces these two with the real ones
        pass

    def resume_input(self):
        pass

    def command_sink(self, buf, pos, end):
        """Take bytes up to the end of one line (or of the chunk); return where it stopped.

        A line ends at LF, or at a CR that is followed by any byte other than LF
        (a malformed line, answered at once). Nothing here loops per byte.
        """
        if self._cr and buf[pos] != 10:
            # The last byte of the line so far was a lone CR: that line is over.
            self._cr = False
            self._eol()
            return pos
        i = buf.find(b"\n", pos, end)
        stop = end if i < 0 else i + 1
        done = i >= 0
        c = buf.find(b"\r", pos, stop)
        if 0 <= c and c + 1 < stop and c + 1 != i:
            stop = c + 1  # CR followed by another byte: the line ends at the CR
            done = True
        line = self.line
        if self._over or len(line) + stop - pos > MAXLINE + 2:
            # Too long: forget what came so far, answer ERROR at its end.
            self._over = True
            line[:] = b""
        else:
            line.extend(memoryview(buf)[pos:stop])
        if done:
            self._cr = False
            self._eol()
        else:
            self._cr = buf[stop - 1] == 13
        return stop

    def _eol(self):
        raw = bytes(self.line)
        self.line[:] = b""
        over = self._over
        self._over = False
        self._line(raw, over)

    def _line(self, raw, over):
        if self.task is not None:
            # ESP-AT (esp-at issue #731): "ERR CODE:0x010b0000" then "busy p..."
            # when AT+SYSLOG=1; the line is not echoed.
            if self.syslog:
                self.reply("ERR CODE:0x%08x" % code(PROCESSING))
            self.out.write(BUSY)
            return
        if over:
            # Spec: a command is at most 256 bytes. The line was not kept, so
            # nothing is echoed (the spec is silent on echoing it).
            self._fail(ATError(code(COMMON)))
            return
        if self.echo:
            self.out.write(raw)
        if len(raw) < 2 or raw[-1] != 10 or raw[-2] != 13:
            self._fail(ATError(code(NO_TERMINATOR)))
        else:
            self.run(raw[:-2])

    def _collect(self, buf, pos, end):
        take = min(end - pos, self._dneed - self._dlen)
        d = self._dcur
        d[self._dlen:self._dlen + take] = memoryview(buf)[pos:pos + take]
        self._dlen += take
        if self._dlen >= self._dneed:
            self.sink = self.command_sink
            self._dcur = self.dbuf  # a borrowed buffer lives on only in the handler's view
            self._step(memoryview(d)[:self._dneed])
        return pos + take

    # -- dispatch ------------------------------------------------------------------------
    def run(self, line):
        try:
            name, kind, rest = parse.split(line)
            row = self.table.get(name)
            if row is None and self.on_use is not None:
                row = self.on_use(self, name, kind)
            if row is None:
                raise ATError(code(UNSUPPORTED))
            fn = row[kind]
            if fn is None:
                raise ATError(code(OP_ERROR))
            r = fn(self, parse.args(rest)) if kind == parse.SET else fn(self)
        except ATError as e:
            self._fail(e)
            return
        except Exception as e:
            self._crash(e)
            return
        if type(r) is GEN:
            self.task = r
            self._step(None)
        else:
            self._done(r)

    def _done(self, r):
        self.out.write(OK if r is None else r)
        self._finish()

    def _fail(self, e):
        if e.lines:
            for s in e.lines:
                self.reply(s)
        if self.syslog:
            if e.errno:
                self.reply("+ERRNO:%d" % e.errno)
            self.reply("ERR CODE:0x%08x" % e.code)
        self.out.write(ERROR)
        self._finish()

    def _crash(self, e):
        self.log.write("at: handler failed: ")
        sys.print_exception(e, self.log) if hasattr(sys, "print_exception") else self.log.write(repr(e) + "\n")
        self._fail(ATError(code(EXEC_FAIL)))

    def _finish(self):
        cb = self._after
        if cb is not None:
            self._after = None
            cb()
        p = self.passing
        if p is not None:
            self.passing = None
            self.unload(self, p)

    # -- running a generator handler -------------------------------------------------------
    def _step(self, val):
        task = self.task
        try:
            w = task.send(val)
        except StopIteration as e:
            self.task = None
            self._done(getattr(e, "value", None))
            return
        except ATError as e:
            self.task = None
            self._fail(e)
            return
        except Exception as e:
            self.task = None
            self._crash(e)
            return
        if w is DATA:
            self.sink = self._collect
        elif w is STREAM:
            self.sink = self._stream
        else:
            self._wait(w)
