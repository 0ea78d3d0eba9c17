# The board's clock and a small non-blocking SNTP client (RFC 4330) that runs
# as a task in the event loop: it resolves each server through the resolver,
# asks them in turn, sets the clock from the first good answer, prints
# +TIME_UPDATED, and asks again every AT+CIPSNTPINTV seconds.
import os
import socket
import time
from at import dns
from at.errors import ATError
from at.task import Task

NTP_DELTA = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
ASK_MS = 2000  # per server
RETRY_S = 15  # after a round where no server answered (at most AT+CIPSNTPINTV)
DEFAULT_SERVERS = ["cn.ntp.org.cn", "ntp.sjtu.edu.cn", "us.pool.ntp.org"]
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock:
    """UTC seconds since 1970: the board's RTC at boot, moved by SNTP. The
    virtual board keeps its own offset and never touches the host's clock."""

    def __init__(self, board):
        self.board = board
        self.base = board.rtc_now()
        self.t0 = time.ticks_ms()

    def now(self):
        now = time.ticks_ms()
        d = time.ticks_diff(now, self.t0)
        if d > 86400000:
            # ticks_diff is only good for half the ticks period (~6 days): re-base daily
            self.base += d / 1000
            self.t0 = now
            d = 0
        return self.base + d / 1000

    def set(self, secs):
        self.base = secs
        self.t0 = time.ticks_ms()
        self.board.rtc_set(secs)


def clock(eng):
    """The board's clock (eng.clock), made on first use: by the SNTP commands or
    AT+SYSTIMESTAMP, whichever comes first."""
    c = eng.clock
    if c is None:
        c = eng.clock = Clock(eng.board)
    return c


def civil(days):
    """(year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def asctime(secs):
    """asctime(3) text: "Tue Oct  9 17:47:56 2021"."""
    secs = int(secs // 1)
    days, rest = divmod(secs, 86400)
    y, m, d = civil(days)
    return "%s %s %2d %02d:%02d:%02d %d" % (_DAYS[(days + 4) % 7], _MONTHS[m - 1], d,
                                            rest // 3600, rest // 60 % 60, rest % 60, y)


def parse_tz(tz):
    """Minutes east of UTC for AT+CIPSNTPCFG's <timezone>: whole hours in
    [-12,14], or [+|-][hh]mm; None when out of range."""
    if -12 <= tz <= 14:
        return tz * 60
    sign = -1 if tz < 0 else 1
    hh, mm = divmod(abs(tz), 100)
    if mm > 59 or hh > (12 if sign < 0 else 14):
        return None
    return sign * (hh * 60 + mm)


def request(now):
    """A client request: LI 0, version 4, mode 3, our clock as transmit time."""
    p = bytearray(48)
    p[0] = 0x23
    t = int(now) + NTP_DELTA
    p[40:44] = (t & 0xFFFFFFFF).to_bytes(4, "big")
    p[44:48] = os.urandom(4)  # the fraction doubles as a nonce
    return p


def answer(req, m):
    """UTC seconds from a reply to req, or None if it is not a valid server reply."""
    if len(m) < 48 or m[0] & 7 not in (4, 5) or not 1 <= m[1] <= 15 or m[24:32] != req[40:48]:
        return None
    sec = int.from_bytes(m[40:44], "big")
    if not sec:
        return None
    return sec - NTP_DELTA + int.from_bytes(m[44:48], "big") / 4294967296


class Sntp:
    def __init__(self, eng):
        self.eng = eng
        self.enabled = 0
        self.tz = 0  # minutes east of UTC
        self.servers = []
        self.interval = 3600
        self._task = None
        self._timer = None

    def names(self):
        return self.servers or DEFAULT_SERVERS

    def waiting(self):
        """Between two rounds (the next one is on a timer, AT+CIPSNTPINTV's)."""
        return self._timer is not None

    def start(self):
        self.stop()
        if self.enabled:
            self._task = Task(self.eng.loop, self._round(), self._done)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._timer is not None:
            self.eng.loop.cancel(self._timer)
            self._timer = None

    def _round(self):
        eng = self.eng
        for name in self.names():
            try:
                ips = yield from dns.lookup(eng, name, 1)
            except ATError:
                continue
            t = yield from self._ask(ips[0])
            if t is not None:
                eng.clock.set(t)
                eng.reply("+TIME_UPDATED")
                return True
        return False

    def _ask(self, ip):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            req = request(self.eng.clock.now())
            s.sendto(req, socket.getaddrinfo(ip, 123, fam)[0][-1])
            deadline = time.ticks_add(time.ticks_ms(), ASK_MS)
            while True:
                left = time.ticks_diff(deadline, time.ticks_ms())
                if left <= 0 or not (yield self.eng.readable(s, left)):
                    return None
                try:
                    m, _ = s.recvfrom(128)
                except OSError:
                    return None
                t = answer(req, m)
                if t is not None:
                    return t
                # garbage: keep waiting for a real answer until the deadline
        except OSError:
            return None
        finally:
            s.close()

    def _done(self, ok, err):
        self._task = None
        if err is not None:
            self.eng.log.write("at: SNTP round failed: %r\n" % err)
        wait = self.interval if ok else min(self.interval, RETRY_S)
        self._timer = self.eng.loop.later(wait * 1000, self._again)

    def _again(self):
        self._timer = None
        self.start()
