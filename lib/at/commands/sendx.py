# The extended and long sends (TCP-IP_AT_Commands.rst): AT+CIPSENDEX (ends at
# <length> bytes or at "\0", with backslash escapes), AT+CIPSENDL (streams up
# to 2^31-1 bytes to the link while the UART still receives, with
# "+CIPSENDL:<sent>,<received>" reports) and AT+CIPSENDLCFG.
import time
from at import parse
from at.engine import DATA_MAX
from at.errors import fail, EXEC_FAIL
from at.guard import PlusGuard
from at.links import errno_of, EAGAIN
from at.commands.tcpip import send_args, send_result

SEND_OK = b"\r\nSEND OK\r\n"
SEND_FAIL = b"\r\nSEND FAIL\r\n"
SEND_CANCELLED = b"\r\nSEND CANCELLED\r\n"
TRANSMIT_MAX = 2920


# -- AT+CIPSENDEX ---------------------------------------------------------------------
class _Unescape:
    """A sink that copies bytes into at.dbuf, dropping the backslash of "\\<any>",
    until n bytes are in or an unescaped "\\0" arrives."""

    def __init__(self, at, n):
        self.at = at
        self.need = n
        self.n = 0
        self.esc = False

    def sink(self, buf, pos, end):
        d = self.at.dbuf
        while pos < end:
            if self.esc:
                self.esc = False
                c = buf[pos]
                pos += 1
                if c == 0x30:  # "\0": send what we have
                    break
                d[self.n] = c
                self.n += 1
            else:
                i = buf.find(b"\\", pos, end)
                stop = end if i < 0 else i
                take = min(stop - pos, self.need - self.n)
                d[self.n:self.n + take] = buf[pos:pos + take]
                self.n += take
                pos += take
                if pos == i and self.n < self.need:
                    self.esc = True
                    pos += 1
            if self.n >= self.need:
                break
        else:
            return pos
        self.at.resume(memoryview(d)[:self.n])
        return pos


def s_cipsendex(at, a):
    link, n, dest = send_args(at, a, DATA_MAX)
    return _sendex(at, link, n, dest)


def _sendex(at, link, n, dest):
    at.write(b"\r\nOK\r\n\r\n>")
    mv = yield at.stream(_Unescape(at, n).sink)
    at.reply("", "Recv %d bytes" % len(mv))
    return (yield from send_result(at, link, mv, dest))


# -- AT+CIPSENDL -------------------------------------------------------------------------
class _LongSend:
    """Moves UART bytes to the link in <transmit size> blocks as they come,
    holding the UART back (flow control) while the network is slower."""

    def __init__(self, at, link, total, dest):
        self.at = at
        self.net = at.net
        self.link = link
        self.total = total
        self.dest = dest
        self.report, self.tsize = at.net.sendlcfg
        self.next = self.report
        self.buf = at.dbuf  # tsize + 3 bytes at most: room for "+" released as data
        self.n = 0
        self.got = 0
        self.sent = 0
        self.failed = False
        self.waiting = False
        self.timer = None
        self.guard = PlusGuard(at.loop, self.data, self.cancel)

    def alive(self):
        return not self.failed and self.net.links[self.link.id] is self.link

    def data(self, buf, pos, end):
        left = self.total - self.got
        if not left:
            return -1  # all in: the rest is the next command, after the result
        if not self.alive():
            # The link is gone: take (and drop) the data until <length> or "+++".
            take = min(end - pos, left)
            self.got += take
            if self.got == self.total:
                self.finish(SEND_FAIL)
            return pos + take
        room = self.tsize + 3 - self.n if end - pos <= 3 else self.tsize - self.n
        if room <= 0:
            return -1
        take = min(end - pos, room, left)
        self.buf[self.n:self.n + take] = buf[pos:pos + take]
        self.n += take
        self.got += take
        if self.n >= self.tsize or self.got == self.total:
            self.flush()
        elif self.timer is None:
            self.timer = self.at.loop.later(self.at.cfg.get("transintvl") or 20, self._interval)
        return pos + take

    def _interval(self):
        self.timer = None
        self.flush()

    def flush(self):
        if self.timer is not None:
            self.at.loop.cancel(self.timer)
            self.timer = None
        if self.waiting or not self.n:
            return
        link = self.link
        try:
            if not self.alive():
                raise OSError(9)
            if link.udp:
                link.sock.sendto(memoryview(self.buf)[:self.n], self.dest or link.dest)
                k = self.n
            else:
                try:
                    k = link.sock.send(memoryview(self.buf)[:self.n])
                except OSError as e:
                    if errno_of(e) != EAGAIN:
                        raise
                    k = 0
        except OSError as e:
            self.at.log.write("at: CIPSENDL on link %d failed: %r\n" % (link.id, e))
            self.failed = True
            self.n = 0
            if self.got == self.total:
                self.finish(SEND_FAIL)
            else:
                self.at.unhold()
            return
        link.last = time.ticks_ms()
        if k:
            self.buf[0:self.n - k] = self.buf[k:self.n]
            self.n -= k
            self.sent += k
            while self.sent >= self.next:
                self.at.reply("+CIPSENDL:%d,%d" % (self.next, self.got))
                self.next += self.report
        if self.n:
            self.waiting = True
            self.at.loop.on_write(link.sock, self._writable)
        elif self.sent == self.total:
            if self.sent != self.next - self.report:
                self.at.reply("+CIPSENDL:%d,%d" % (self.sent, self.got))
            self.finish(SEND_OK)
        else:
            self.at.unhold()

    def _writable(self, obj, ev):
        self.waiting = False
        self.at.loop.on_write(obj, None)
        self.flush()

    def cancel(self):
        self.n = 0
        self.finish(SEND_CANCELLED)

    def finish(self, result):
        self.guard.cancel()
        if self.timer is not None:
            self.at.loop.cancel(self.timer)
            self.timer = None
        if self.waiting:
            self.waiting = False
            if self.alive():
                self.at.loop.on_write(self.link.sock, None)
        at = self.at
        at.resume(result)
        at.unhold()


def s_cipsendl(at, a):
    link, n, dest = send_args(at, a, 0x7FFFFFFF)
    return _sendl(at, link, n, dest)


def _sendl(at, link, n, dest):
    at.write(b"\r\nOK\r\n\r\n>")
    ls = _LongSend(at, link, n, dest)
    return (yield at.stream(ls.guard.sink))


def init(at):
    at.net.sendlcfg = (1024, TRANSMIT_MAX)  # <report size>, <transmit size>


def q_cipsendlcfg(at):
    at.reply("+CIPSENDLCFG:%d,%d" % at.net.sendlcfg)


def s_cipsendlcfg(at, a):
    parse.count(a, 1, 2)
    at.net.sendlcfg = (parse.num(a, 0, 100, 1 << 20), parse.num(a, 1, 100, TRANSMIT_MAX, at.net.sendlcfg[1]))


COMMANDS = [
    # name, test, query, set, execute
    ("+CIPSENDEX", None, None, s_cipsendex, None),
    ("+CIPSENDL", None, None, s_cipsendl, None),
    ("+CIPSENDLCFG", None, q_cipsendlcfg, s_cipsendlcfg, None),
]
