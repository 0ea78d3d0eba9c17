"""Network services for the DNS and SNTP tests: a DNS server built on dnslib
and an SNTP server (RFC 4330), each on its well-known port of a spare loopback
address (127.0.0.2, 127.0.0.3, ...), each in its own thread. Either can be told
to misbehave: never answer, answer truncated (DNS), answer garbage."""
import calendar
import socket
import struct
import threading
import time

from dnslib import AAAA, A, QTYPE, RCODE, RR, DNSRecord

NTP_DELTA = 2208988800  # seconds from 1900 (NTP era 0) to 1970 (Unix)


class NoSpareAddress(OSError):
    pass


def bind_spare(port, kind=socket.SOCK_DGRAM):
    """A socket bound to `port` on the first loopback address from 127.0.0.2 on
    where that works (the whole 127/8 is loopback on Linux; binding port 53 or
    123 needs root). Returns (socket, address)."""
    last = None
    for n in range(2, 255):
        host = "127.0.0.%d" % n
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host, port))
            return s, host
        except OSError as e:
            last = e
            s.close()
    raise NoSpareAddress("cannot bind port %d on any of 127.0.0.2-254: %r" % (port, last))


def bind_at(host, port, kind=socket.SOCK_DGRAM):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s


class _UdpService:
    def __init__(self, host, port):
        if host is None:
            self.sock, self.host = bind_spare(port)
        else:
            self.sock, self.host = bind_at(host, port), host
        self.port = port
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.handle(data, addr)
            except OSError:
                pass

    def send(self, data, addr):
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass


class DnsServer(_UdpService):
    """A DNS server for the names in `records` ({"name": {"A": [...], "AAAA": [...]}});
    any other name gets NXDOMAIN, a known name without the asked type gets an
    empty NOERROR answer.

    mode: "answer" (default); "drop" (reads every query, never answers);
    "truncate" (answers with the TC bit set and an address of its own,
    TRUNCATED_IP, that must never be used); "garbage" (junk that is not a DNS
    message, then a reply with the right id that ends in the middle of its
    answer record). delay: seconds to wait before answering.

    Every query seen is kept in `queries` as (monotonic time, name, type)."""

    TRUNCATED_IP = "10.66.66.66"

    def __init__(self, records=None, mode="answer", delay=0.0, host=None, port=53):
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.mode = mode
        self.delay = delay
        self.queries = []
        self.asked = threading.Event()
        super().__init__(host, port)

    def names(self):
        return [(n, t) for _, n, t in self.queries]

    def handle(self, data, addr):
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return
        name = str(req.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(req.q.qtype)
        self.queries.append((time.monotonic(), name, qtype))
        self.asked.set()
        if self.mode == "drop":
            return
        if self.delay:
            time.sleep(self.delay)  # a slow server: the test's delay before the answer
        if self.mode == "garbage":
            self.send(b"\x13\x37 this is not DNS", addr)
            r = req.reply()
            r.add_answer(RR(req.q.qname, QTYPE.A, rdata=A("10.77.77.77"), ttl=60))
            self.send(r.pack()[:-3], addr)  # cut inside the answer's address
            return
        r = req.reply()
        rec = self.records.get(name)
        if rec is None:
            r.header.rcode = RCODE.NXDOMAIN
        elif self.mode == "truncate":
            r.header.tc = 1
            r.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(self.TRUNCATED_IP), ttl=60))
        else:
            for ip in rec.get(qtype, ()):
                rdata = A(ip) if qtype == "A" else AAAA(ip)
                r.add_answer(RR(req.q.qname, req.q.qtype, rdata=rdata, ttl=60))
        self.send(r.pack(), addr)


def ntp_stamp(t):
    """64-bit NTP timestamp of Unix time t."""
    sec = int(t // 1)
    frac = int(round((t - sec) * (1 << 32))) & 0xFFFFFFFF
    return struct.pack(">II", (sec + NTP_DELTA) & 0xFFFFFFFF, frac)


def utc(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


class SntpServer(_UdpService):
    """An SNTP server (RFC 4330) that says it is `unix_time` (attribute `time`,
    settable at any moment): mode 4 replies of 48 bytes, stratum 1, with the
    request's transmit timestamp echoed as the originate timestamp.

    mode: "good"; "drop" (never answers); "short" (47 bytes); "wrongmode" (mode
    3, a client's); "badorigin" (originate is not the request's transmit
    time); "kod" (stratum 0, a kiss-o'-death); "garbage" (all of those, one
    after the other). Bad replies carry BAD_TIME, which must never be used.

    `requests` keeps (monotonic time, packet) per request; `replied` the
    monotonic times good replies left."""

    BAD_TIME = utc(2001, 9, 9, 1, 46, 40)  # 1000000000

    def __init__(self, unix_time, mode="good", host=None, port=123):
        self.time = unix_time
        self.mode = mode
        self.requests = []
        self.replied = []
        self.asked = threading.Event()
        super().__init__(host, port)

    def packet(self, req, t, mode=4, stratum=1, origin=None):
        p = bytearray(48)
        p[0] = (0 << 6) | (4 << 3) | mode  # LI 0, VN 4
        p[1] = stratum
        p[2] = 6  # poll
        p[3] = 0xEC  # precision 2**-20
        p[12:16] = b"GPS\x00" if stratum else b"RATE"
        ts = ntp_stamp(t)
        p[16:24] = ts  # reference
        p[24:32] = req[40:48] if origin is None else origin  # originate = the client's transmit
        p[32:40] = ts  # receive
        p[40:48] = ts  # transmit
        return bytes(p)

    def bad(self, req, kind):
        t = self.BAD_TIME
        if kind == "short":
            return self.packet(req, t)[:47]
        if kind == "wrongmode":
            return self.packet(req, t, mode=3)
        if kind == "badorigin":
            o = bytearray(req[40:48])
            o[0] ^= 0x55
            o[7] ^= 0xAA
            return self.packet(req, t, origin=bytes(o))
        if kind == "kod":
            return self.packet(req, t, stratum=0)
        raise ValueError(kind)

    def handle(self, data, addr):
        self.requests.append((time.monotonic(), data))
        self.asked.set()
        if len(data) < 48 or self.mode == "drop":
            return
        if self.mode == "good":
            self.replied.append(time.monotonic())  # before the board can see it
            self.send(self.packet(data, self.time), addr)
        elif self.mode == "garbage":
            for kind in ("short", "wrongmode", "badorigin", "kod"):
                self.send(self.bad(data, kind), addr)
        else:
            self.send(self.bad(data, self.mode), addr)


def spare_servers(cls, what):
    """A fixture body: yields make(*args) that starts a cls server on a spare
    loopback address (skipping the test when there is none), and closes every
    server made once the test is over. `what` names it in the skip reason."""
    import pytest

    made = []

    def make(*args, **kw):
        try:
            s = cls(*args, **kw)
        except NoSpareAddress as e:
            pytest.skip("no loopback address to run %s on: %s" % (what, e))
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()

