# The AT engine: line assembly, echo, "busy p...", parsing, dispatch through the
# command table, result framing and ERR CODE. It knows no command by name: the
# groups in at/commands add rows to its table.
#
# A handler returns None (-> OK), a bytes result (e.g. SEND_OK), raises ATError
# (-> ERROR), or is a generator: it then yields what it waits for
# (at.sleep(ms), at.readable(obj, ms), at.writable(obj, ms), at.data(n)) and the
# engine resumes it from the event loop; while it runs, new lines get "busy p...".
import sys
from at import parse
from at.errors import ATError, code, COMMON, NO_TERMINATOR, UNSUPPORTED, OP_ERROR, EXEC_FAIL

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
BUSY = b"\r\nbusy p...\r\n"
READY = b"\r\nready\r\n"
SEND_OK = b"\r\nSEND OK\r\n"
SEND_FAIL = b"\r\nSEND FAIL\r\n"
MAXLINE = 256  # AT_Command_Set_index.rst: "no more than 256 bytes"
DATA_MAX = 8192  # the largest AT+CIPSEND

_IN = 1  # select.POLLIN / POLLOUT, the same on every port
_OUT = 4


def _g():
    yield


GEN = type(_g())


class _Data:
    pass


DATA = _Data()


class Engine:
    def __init__(self, loop, out, log=None):
        self.loop = loop
        self.out = out
        self.log = log or sys.stderr
        self.table = {}
        self.rows = []
        self.echo = True
        self.syslog = 0
        self.task = None
        self._timer = None
        self._waitobj = None
        self._waitslot = 0
        self._after = None
        self.line = bytearray()
        self._over = False
        self.sink = self.command_sink
        self.dbuf = bytearray(DATA_MAX)
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
        for s in lines:
            self.write(s)
            self.write(b"\r\n")

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

    def data(self, n, buf=None):
        """Collect n raw bytes from the UART (the ">" phase); resumes with a memoryview."""
        self._dneed = n
        self._dlen = 0
        if buf is not None:
            self.dbuf = buf
        return DATA

    # -- input ---------------------------------------------------------------------------
    def feed(self, buf, n):
        """Hand n bytes of UART input to whoever takes them now."""
        pos = 0
        while pos < n:
            pos = self.sink(buf, pos, n)

    def command_sink(self, buf, pos, end):
        i = buf.find(b"\n", pos, end)
        stop = end if i < 0 else i + 1
        line = self.line
        if len(line) + stop - pos <= MAXLINE + 2:
            line.extend(memoryview(buf)[pos:stop])
        else:
            self._over = True
        # A CR that is not followed by LF ends a malformed line at once.
        c = line.find(b"\r")
        while 0 <= c < len(line) - 1 and line[c + 1] != 10:
            head = bytes(line[:c + 1])
            line[:c + 1] = b""
            self._line(head, False)
            c = line.find(b"\r")
        if i >= 0:
            raw = bytes(line)
            line[:] = b""
            over = self._over
            self._over = False
            self._line(raw, over)
        return stop

    def _line(self, raw, over):
        if self.task is not None:
            self.out.write(BUSY)
            return
        if self.echo:
            self.out.write(raw)
        if over:
            self._fail(ATError(code(COMMON)))
        elif len(raw) < 2 or raw[-1] != 10 or raw[-2] != 13:
            self._fail(ATError(code(NO_TERMINATOR)))
        else:
            self.run(raw[:-2])

    def _collect(self, buf, pos, end):
        take = min(end - pos, self._dneed - self._dlen)
        self.dbuf[self._dlen:self._dlen + take] = memoryview(buf)[pos:pos + take]
        self._dlen += take
        if self._dlen >= self._dneed:
            self.sink = self.command_sink
            self._step(memoryview(self.dbuf)[:self._dneed])
        return pos + take

    # -- dispatch ------------------------------------------------------------------------
    def run(self, line):
        try:
            name, kind, rest = parse.split(line)
            row = self.table.get(name)
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
        elif isinstance(w, int):
            self._timer = self.loop.later(w, self._timeout)
        else:
            obj, mask, ms = w
            self._waitobj = obj
            self._waitslot = mask
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
        obj = self._waitobj
        if obj is not None:
            self._waitobj = None
            if self._waitslot == _IN:
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

    def cancel_task(self):
        """Drop the running command (e.g. its link went away); no result is printed."""
        if self.task is not None:
            self._unwait()
            self.task = None
            self.sink = self.command_sink
