# The extended and long sends (TCP-IP_AT_Commands.rst): AT+CIPSENDEX (ends at
# <length> bytes or at "\0", with backslash escapes), AT+CIPSENDL (streams up
# to 2^31-1 bytes to the link while the UART still receives, with
# "+CIPSENDL:<sent>,<received>" reports) and AT+CIPSENDLCFG.
from at import parse
from at.engine import DATA_MAX
from at.pump import Pump
from at.commands.tcpip import send_args, send_result, dest_addr
from at.commands import row

SEND_OK = b"\r\nSEND OK\r\n"
SEND_FAIL = b"\r\nSEND FAIL\r\n"
SEND_CANCELLED = b"\r\nSEND CANCELLED\r\n"
TRANSMIT_MAX = 2920


# -- AT+CIPSENDEX ---------------------------------------------------------------------
class _Unescape:
    """A sink that copies bytes into a data buffer (eng.dbuffer), dropping the
    backslash of "\\<any>", until n bytes are in or an unescaped "\\0" arrives."""

    def __init__(self, eng, n):
        self.eng = eng
        self.d = eng.dbuffer(n)
        self.need = n
        self.n = 0
        self.esc = False

    def sink(self, buf, pos, end):
        d = self.d
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
                d[self.n:self.n + take] = memoryview(buf)[pos:pos + take]
                self.n += take
                pos += take
                if pos == i and self.n < self.need:
                    self.esc = True
                    pos += 1
            if self.n >= self.need:
                break
        else:
            return pos
        self.eng.resume(memoryview(d)[:self.n])
        return pos


def s_cipsendex(eng, a):
    link, n, dest = send_args(eng, a, DATA_MAX)
    return _sendex(eng, link, n, dest)


def _sendex(eng, link, n, dest):
    dest = yield from dest_addr(eng, link, dest)
    mv = yield eng.stream(_Unescape(eng, n).sink)
    return (yield from send_result(eng, link, mv, dest))


# -- AT+CIPSENDL -------------------------------------------------------------------------
class _LongSend(Pump):
    """<length> bytes from the UART to the link, reporting every <report size>."""

    def __init__(self, eng, link, total, dest):
        report, tsize = eng.net.sendlcfg
        Pump.__init__(self, eng, link, tsize, dest)
        self.total = total
        self.report = report
        self.next = report
        self.got = 0
        self.failed = False

    def room(self):
        return self.total - self.got

    def data(self, buf, pos, end):
        if not self.failed and not self.alive():
            self.failed = True  # the link went away (CLOSED was reported)
        if self.failed and self.got < self.total:
            # Take (and drop) the rest of <length>, or wait for "+++" (the spec).
            take = min(end - pos, self.total - self.got)
            self.got += take
            if self.got == self.total:
                self.finish(SEND_FAIL)
            return pos + take
        return Pump.data(self, buf, pos, end)

    def on_data(self, n):
        self.got += n

    def on_sent(self, k):
        while self.sent >= self.next:
            self.eng.report("+CIPSENDL:%d,%d" % (self.next, self.got))
            self.next += self.report
        if self.sent == self.total:
            if self.sent != self.next - self.report:
                self.eng.report("+CIPSENDL:%d,%d" % (self.sent, self.got))
            self.finish(SEND_OK)

    def on_fail(self, err):
        self.failed = True
        self.o = self.n = 0
        if self.got == self.total:
            self.finish(SEND_FAIL)
        else:
            self.eng.unhold()

    def on_plus(self):
        self.o = self.n = 0
        self.finish(SEND_CANCELLED)

    def finish(self, result):
        self.stop()
        eng = self.eng
        eng.resume(result)
        eng.unhold()


def s_cipsendl(eng, a):
    link, n, dest = send_args(eng, a, 0x7FFFFFFF)
    return _sendl(eng, link, n, dest)


def _sendl(eng, link, n, dest):
    dest = yield from dest_addr(eng, link, dest)
    ls = _LongSend(eng, link, n, dest)
    return (yield eng.stream(ls.guard.sink))


def init(eng):
    eng.net.sendlcfg = (1024, TRANSMIT_MAX)  # <report size>, <transmit size>


def q_cipsendlcfg(eng):
    eng.reply("+CIPSENDLCFG:%d,%d" % eng.net.sendlcfg)


def s_cipsendlcfg(eng, a):
    parse.count(a, 1, 2)
    eng.net.sendlcfg = (parse.num(a, 0, 100, 1 << 20), parse.num(a, 1, 100, TRANSMIT_MAX, eng.net.sendlcfg[1]))


COMMANDS = [
    row("+CIPSENDEX", set=s_cipsendex),
    row("+CIPSENDL", set=s_cipsendl),
    row("+CIPSENDLCFG", query=q_cipsendlcfg, set=s_cipsendlcfg),
]
