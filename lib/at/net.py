# The link table: five link slots, their non-blocking sockets, "+IPD" framing and
# CONNECT/CLOSED reports. Commands in at/commands/tcpip.py drive it; the event
# loop calls _readable() when a socket has data.
import socket
import gc
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only
    from typing import Any
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID
from at import sock
from at.addr import is_ipv4, literal, A, AAAA
from at.sock import errno_of, EAGAIN
from at.loop import POLLERR

MAX_LINKS = 5
RX_SIZE = 2920  # bytes read per +IPD at most, ESP-AT's two TCP segments
READS_PER_TURN = 4  # reads of one TCP link per loop turn at most
WINDOW = 5760  # passive receive buffer per link (ESP-AT's socket receive window)
RETRY_MS = 100  # a passive window the heap could not give: asked for again after this
CONNECT_MS = 20000  # when CIPSTART gives no timeout
HANDSHAKE_MS = 15000  # an SSL handshake that takes longer fails

SOCK_STREAM = socket.SOCK_STREAM
SOCK_DGRAM = socket.SOCK_DGRAM


def peer(addr):
    """(ip, port) from what recvfrom/accept gives: a tuple on the ESP32, raw sockaddr bytes on unix."""
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    # Only the unix port hands out raw sockaddr bytes, and only it has these two.
    fam, ip, port = getattr(socket, "sockaddr")(addr)[:3]
    return getattr(socket, "inet_ntop")(fam, ip), port


class Windows:
    """The passive receive buffers (ESP-AT's socket receive windows), lent to a
    link only while it holds data the host has not read: an idle passive link
    holds none. At most `most` are out at once (a board without PSRAM lends one);
    a link that finds none leaves its data in the socket (the TCP window closes,
    the peer waits, nothing is lost) until one comes back. The first one is
    reserved (allocated and kept) when passive receive is switched on; a board
    with a small heap takes it at boot before anything else (app.run, keep()):
    after boot, such a heap has kilobytes free but in holes, none of them 5,760
    bytes (measured: BENCHMARKS.md, "Heap"). A buffer given back is kept for the
    next link, so a steady stream allocates nothing."""

    def __init__(self, size, most, wake, later, log=None):
        self.size = size
        self.most = most
        self.lent = 0
        self.spares: "list[Any]" = []  # one kept at most
        self.waiting: "list[Any]" = []  # links stalled for want of a window
        self.wake = wake  # wake(link): read it again
        self.later = later  # loop.later
        self.log = log
        self._retry = None
        self._short = False  # the heap had no window last time: said once on the log

    def get(self, link):
        b = None
        if self.lent < self.most:
            if self.spares:
                b = self.spares.pop()
            else:
                try:
                    b = bytearray(self.size)
                    self._short = False
                except MemoryError:
                    # No block that big now: try again in a while (other links'
                    # buffers, a finished send give heap back), or when one comes back.
                    if self._retry is None:
                        self._retry = self.later(RETRY_MS, self._again)
                    if not self._short and self.log:
                        self.log.write("at: no heap for a %d-byte passive receive window; "
                                       "the data waits in the sockets\n" % self.size)
                    self._short = True
        if b is None:
            if link not in self.waiting:
                self.waiting.append(link)
            return None
        self.lent += 1
        return b

    def reserve(self):
        """Passive receive is switched on: have one window ready now (without the
        heap for it, get() asks again when data waits)."""
        if not self.spares and not self.lent:
            try:
                self.spares.append(bytearray(self.size))
            except MemoryError:
                pass

    def keep(self, b):
        """A window allocated at boot before the heap was cut up (app.run)."""
        if not self.spares and not self.lent:
            self.spares.append(b)

    def _again(self):
        self._retry = None
        if self.waiting:
            self.wake(self.waiting.pop(0))

    def give(self, b):
        self.lent -= 1
        if not self.spares:
            self.spares.append(b)
        if self.waiting:
            self.wake(self.waiting.pop(0))

    def forget(self, link):
        if link in self.waiting:
            self.waiting.remove(link)


class RxBuf:
    """A link's passive-receive state: the window it borrows while data waits
    (filled by readinto, drained by AT+CIPRECVDATA). UDP keeps each datagram's
    length and sender."""
    __slots__ = ("buf", "s", "e", "dgrams", "pool")

    def __init__(self, pool, udp):
        self.pool = pool
        self.buf: "Any" = None  # the window borrowed from pool, while data waits
        self.s = 0
        self.e = 0
        self.dgrams: "list | None" = [] if udp else None  # [length, ip, port] per datagram

    def used(self):
        return self.e - self.s

    def free(self, link):
        """Room for more now (the read head is given back once tail() can
        compact); borrows a window first if the link holds none: 0 if none is
        to be had."""
        if self.buf is None:
            self.buf = self.pool.get(link)
            if self.buf is None:
                return 0
        n = self.e - self.s
        return len(self.buf) - (self.e if self.s < n else n)

    def tail(self):
        """Room at the end, compacting first when the head that has been read is
        at least as long as what is left (one copy that does not overlap itself;
        slicing the bytearray would allocate a copy)."""
        n = self.e - self.s
        if self.s and self.s >= n:
            mv = memoryview(self.buf)
            mv[0:n] = mv[self.s:self.e]
            self.s = 0
            self.e = n
        return memoryview(self.buf)[self.e:]

    def take(self, n):
        self.s += n
        if self.s == self.e:
            self.s = self.e = 0
            self.release()

    def release(self):
        b = self.buf
        if b is not None:
            self.buf = None
            self.pool.give(b)

    def end(self, link):
        """Passive receive ends for link: it waits for no window, and gives its own back."""
        self.pool.forget(link)
        self.release()


class Link:
    __slots__ = ("id", "type", "sock", "ss", "rec", "host", "port", "lport", "server", "udp_mode", "dest", "reader",
                 "udp_fixed", "rxb", "notified", "eof", "stalled", "last", "sndtimeo")

    def __init__(self, lid, typ, sock, host, port, lport, server=0, rec=None):
        self.id = lid
        self.type = typ
        self.sock = sock  # the socket the loop polls
        self.rec = rec  # an SSL link's at.sslconf.Records, which reads it
        self.ss = rec.ss if rec else sock  # what is read and written: sock, or its TLS wrapper
        self.host = host
        self.port = port
        self.lport = lport
        self.server = server
        self.udp_mode = 0
        self.dest = None
        self.reader = None
        self.udp_fixed = False
        self.rxb = None  # RxBuf in passive receive mode
        self.notified = False  # a passive "+IPD,<len>" is waiting to be read
        self.eof = False  # the peer has closed; CLOSED waits for the buffer to drain
        self.stalled = False  # not reading the socket: passive buffer full
        self.last = 0  # ticks of the last traffic (AT+CIPSTO)
        self.sndtimeo = -1

    @property
    def udp(self):
        return self.type[0] == "U"

    @property
    def tls(self):
        return self.type[0] == "S"


class Server:
    """The AT+CIPSERVER that listens (one at most), and its settings as
    AT+CIPSERVER? prints them."""
    __slots__ = ("sock", "port", "type", "ca", "netif", "ctx")

    def __init__(self, sock, port, typ, ca, netif, ctx):
        self.sock = sock
        self.port = port
        self.type = typ
        self.ca = ca
        self.netif = netif
        self.ctx = ctx  # the SSLContext of an SSL server


class Net:
    def __init__(self, eng):
        self.eng = eng
        self.loop = eng.loop
        self.out = eng.out
        cfg = eng.cfg
        self.links: "list[Any]" = [None] * MAX_LINKS
        self.mux = 0
        self.dinfo = 0
        self.mode = 0  # AT+CIPMODE
        self.keepalive = 0  # last keep_alive given to CIPSTART/CIPTCPOPT
        self.had_link = False
        self.recvtype = [0] * MAX_LINKS  # AT+CIPRECVTYPE per link id
        self.lenmode = [0] * MAX_LINKS  # its <data_len_report_mode>
        self.persist = [0] * MAX_LINKS  # AT+CIPCONNPERSIST
        # AT+CIPTCPOPT per link id: so_linger, tcp_nodelay, so_sndtimeo, keep_alive
        self.tcpopt = cfg.get("tcpopt") or [[-1, 0, 0, 0] for _ in range(MAX_LINKS)]
        self.server: "Any" = None  # a Server while AT+CIPSERVER runs
        self.pt = None  # the Passthrough running on link 0, if any
        self.maxconn = MAX_LINKS
        self.sto = 180  # AT+CIPSTO, seconds
        self._sto_timer = None
        self.room = self.out.room()[:RX_SIZE]  # active reads land in the UART backlog's buffer (at/output.py)
        # A board with a small heap lends one window at a time, allocated at boot
        # (app.run hands it over: keep()); others up to one per link, the first
        # when passive receive is switched on.
        small = eng.board.small_heap
        self.windows = Windows(WINDOW, 1 if small else MAX_LINKS, self._window_back, self.loop.later, eng.log)
        self._paused = []
        self._on_drained = self._resume  # one bound method: when_drained keeps a callback once, by identity
        r = os.urandom(2)
        self._eport = 49152 + ((r[0] << 8 | r[1]) % 16000)

    # -- ids ---------------------------------------------------------------------------
    def link(self, lid):
        """The open link with this id, or ERROR."""
        if not 0 <= lid < MAX_LINKS or self.links[lid] is None:
            raise ATError(code(PARA_INVALID, 0))
        return self.links[lid]

    def free_id(self):
        for i in range(MAX_LINKS):
            if self.links[i] is None:
                return i
        return -1

    def count(self, server=None):
        n = 0
        for l in self.links:
            if l is not None and (server is None or l.server == server):
                n += 1
        return n

    def prefix(self, link):
        return "%d," % link.id if self.mux else ""

    # -- opening -------------------------------------------------------------------------
    def next_port(self):
        p = self._eport
        self._eport = 49152 if p >= 65535 else p + 1
        return p

    def _bind(self, s, fam, local_ip, lport):
        """Bind to local_ip:lport; lport 0 picks our own ephemeral port, since
        neither MicroPython port has getsockname() to tell which one the stack chose."""
        if not local_ip:
            local_ip = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        tries = 1 if lport else 50
        while True:
            p = lport or self.next_port()
            try:
                s.bind(socket.getaddrinfo(local_ip, p, fam)[0][-1])
                return p
            except OSError as e:
                tries -= 1
                if not tries:
                    raise fail(EXEC_FAIL, 0, errno=errno_of(e))

    def resolve(self, host, port, v6=False):
        """Generator: (family, sockaddr, ip) for host; a name (or an address of the
        other family, for its error) through the resolver, imported on first use."""
        ips = literal(host, AAAA if v6 else A)
        if not ips:
            from at import dns
            ips = yield from dns.lookup(self.eng, host, 3 if v6 else 2)
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        return fam, socket.getaddrinfo(ips[0], port, fam)[0][-1], ips[0]

    def open(self, lid, typ, host, port, keepalive, local_ip, timeout_ms, lport=0, udp_mode=0, announce=True):
        """Generator: open a TCP or UDP link in slot lid and report CONNECT."""
        v6 = typ.endswith("v6")
        fam, addr, ip = yield from self.resolve(host, port, v6)
        name, host = host, ip  # links report the remote IP (CIPSTATE, +IPD, +LINK_CONN)
        udp = typ[0] == "U"
        # A link's objects live as long as it does: collect first, so that they fill the
        # lowest holes instead of landing above the garbage of the commands before them
        # (on a 56 KB heap that scattering left no block for an SSL context: BENCHMARKS.md).
        gc.collect()
        s = socket.socket(fam, SOCK_DGRAM if udp else SOCK_STREAM)
        try:
            s.setblocking(False)
            if udp:
                lport = self._bind(s, fam, local_ip, lport)
                if host == "255.255.255.255":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                elif is_ipv4(host) and 224 <= int(host.split(".")[0]) <= 239:
                    self._join_group(s, host, local_ip)
            else:
                lport = self._bind(s, fam, local_ip, 0)
                self.tcpopt[lid][3] = keepalive
                try:
                    sock.start_connect(s, addr)
                except OSError as e:
                    raise fail(EXEC_FAIL, 2, errno=errno_of(e))
                # Hold the slot while connecting.
                self.links[lid] = Link(lid, typ, s, host, port, lport)
                try:
                    yield from sock.connected(self.eng, s, timeout_ms or CONNECT_MS)
                except OSError as e:
                    err = errno_of(e)
                    raise fail(EXEC_FAIL, 3 if err == sock.ETIMEDOUT else 2, errno=err)
        except BaseException:
            self.links[lid] = None
            s.close()
            raise
        rec = None
        if typ[0] == "S":
            from at import nested, sslconf  # SSL links only (imported on first use)
            yield from nested.wait_turn(self.eng)
            rec = sslconf.handshake(self, s, lid, name, timeout_ms or HANDSHAKE_MS)
        link = Link(lid, typ, s, host, port, lport, 0, rec)
        if udp:
            link.dest = addr
            link.udp_mode = udp_mode
        self.attach(link)
        if announce:
            self.announce(link)

    def _join_group(self, s, group, local_ip):
        """IPv4 multicast: join the group on the interface of local_ip (or any)."""
        def quad(ip):
            return bytes(int(x) for x in ip.split("."))
        mreq = quad(group) + quad(local_ip if local_ip and is_ipv4(local_ip) else "0.0.0.0")
        s.setsockopt(0, socket.IP_ADD_MEMBERSHIP, mreq)  # IPPROTO_IP

    def attach(self, link):
        lid = link.id
        self.links[lid] = link
        self.had_link = True
        link.last = time.ticks_ms()
        if self.recvtype[lid]:
            link.rxb = RxBuf(self.windows, link.udp)
        if not link.udp:
            self.apply_tcpopt(link)
        link.reader = lambda obj, ev: self._readable(link, ev)
        self.loop.on_read(link.sock, link.reader)

    def apply_tcpopt(self, link):
        """AT+CIPTCPOPT on an open TCP link; returns False where the port cannot apply one."""
        linger, nodelay, sndtimeo, keep = self.tcpopt[link.id]
        link.sndtimeo = sndtimeo or -1
        return self.eng.board.tcpopt(link.sock, linger, nodelay, keep)

    def announce(self, link):
        if self.eng.cfg.get("sysmsg") & 2:
            self.eng.reply('+LINK_CONN:0,%d,"%s",%d,"%s",%d,%d' % (
                link.id, link.type, link.server, link.host, link.port, link.lport))
        else:
            self.eng.reply(self.prefix(link) + "CONNECT")

    # -- the server ----------------------------------------------------------------------------
    def listen(self, port, typ, ca, netif):
        ctx = None
        if typ[0] == "S":
            from at import sslconf
            ctx = sslconf.server_context(self.eng, ca)  # no certificate: ERROR with the reason
        fam = socket.AF_INET6 if typ.endswith("v6") else socket.AF_INET
        s = socket.socket(fam, SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo("::" if fam == socket.AF_INET6 else "0.0.0.0", port, fam)[0][-1])
            s.listen(MAX_LINKS)
            s.setblocking(False)
        except OSError as e:
            s.close()
            raise fail(EXEC_FAIL, 4, errno=errno_of(e))
        self.server = Server(s, port, typ, ca, netif, ctx)
        self.loop.on_read(s, self._accept)
        self.arm_sto()

    def unlisten(self, close_clients):
        s = self.server.sock
        self.server = None
        self.loop.forget(s)
        s.close()
        if close_clients:
            for link in self.links:
                if link is not None and link.server:
                    self.close(link)

    def _accept(self, obj, ev):
        srv = self.server
        if srv is None:  # stopped in this loop turn
            return
        if srv.ctx is not None:
            from at import nested  # SSL only
            if nested.busy():
                # Inside another handshake's tick: leave the client in the backlog.
                self.loop.on_read(obj, None)
                nested.later(lambda: self.server is srv
                             and self.loop.on_read(obj, self._accept))
                return
        try:
            c, addr = obj.accept()
        except OSError:
            return
        lid = self.free_id()
        if lid < 0 or self.count(1) >= self.maxconn:
            # Over AT+CIPSERVERMAXCONN: ESP-AT takes the connection and closes it at once.
            c.close()
            return
        c.setblocking(False)
        ip, port = peer(addr)
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        rec = None
        if srv.ctx is not None:
            from at import sslconf
            try:
                rec = sslconf.handshake(self, c, lid, ip, HANDSHAKE_MS, srv.ctx)
            except ATError:
                return  # a client that fails the handshake never becomes a link
        link = Link(lid, srv.type, c, ip, port, srv.port, 1, rec)
        self.attach(link)
        self.announce(link)

    def arm_sto(self):
        if self._sto_timer is None and self.sto and (self.server or self.count(1)):
            self._sto_timer = self.loop.later(1000, self._check_sto)

    def _check_sto(self):
        """AT+CIPSTO: close server-side links idle for longer than the timeout."""
        self._sto_timer = None
        if not self.sto:
            return
        now = time.ticks_ms()
        limit = self.sto * 1000
        for link in self.links:
            if link is not None and link.server and time.ticks_diff(now, link.last) >= limit:
                self.close(link)
        self.arm_sto()

    # -- closing ---------------------------------------------------------------------------
    def close(self, link, report=True):
        if self.links[link.id] is not link:
            return
        pt = self.pt
        if pt is not None and link is pt.link:
            # In passthrough, CLOSED is printed only when AT+SYSMSG bit 2 asks.
            report = report and self.eng.cfg.get("sysmsg") & 4
        self.links[link.id] = None
        self.loop.forget(link.sock)
        if link in self._paused:
            self._paused.remove(link)
        for x in (link.ss, link.sock):
            try:
                x.close()
            except OSError:
                pass
        if link.rxb is not None:
            link.rxb.end(link)
            link.rxb = None
        # A command that waits on this socket (a send) is woken, so it fails now.
        self.eng.wake(link.sock, POLLERR)
        if report:
            self.eng.reply(self.prefix(link) + "CLOSED")
        if pt is not None and link is pt.link:
            pt.link_closed()

    def netif_down(self):
        """The station lost its address: close TCP/SSL links unless AT+CIPCONNPERSIST
        keeps them (then the stack decides their fate)."""
        for link in self.links:
            if link is not None and not link.udp and not self.persist[link.id]:
                self.close(link)

    # -- passthrough ------------------------------------------------------------------------
    def start_raw(self, pt):
        self.pt = pt
        link = pt.link
        if link.stalled:
            link.stalled = False
            self.resume_read(link)

    def stop_raw(self):
        self.pt = None

    def _hold_for_passthrough(self, link):
        """AT+CIPMODE=1 outside the data phase: keep the data in the socket."""
        link.stalled = True
        self.loop.on_read(link.sock, None)

    def _peer_closed(self, link):
        b = link.rxb
        if b is not None and b.used():
            # Passive mode: the data stays readable; CLOSED comes once it is read.
            link.eof = True
            self.loop.on_read(link.sock, None)
        else:
            self.close(link)

    # -- receiving ------------------------------------------------------------------------------
    def _readable(self, link, ev):
        try:
            self._read(link)
        except Exception as e:
            # Whatever failed (a MemoryError in a tight heap, a runtime without
            # the method we called), it failed for this link only: close it, say
            # why once, and keep the loop, the UART and the other links going.
            if self.links[link.id] is link:
                self.eng.log.write("at: link %d closed: its receive failed: %r\n" % (link.id, e))
                self.close(link)

    def _read(self, link):
        if self.out.blocked:
            self._pause(link)
            return
        s = link.sock
        b = link.rxb
        raw = self.pt is not None and link is self.pt.link
        if self.mode and not raw:
            self._hold_for_passthrough(link)
            return
        if link.udp:
            try:
                data, addr = s.recvfrom(RX_SIZE)
            except OSError as e:
                if errno_of(e) != EAGAIN:
                    self.close(link)
                return
            link.last = time.ticks_ms()
            ip, port = peer(addr)
            if link.udp_mode == 2 or (link.udp_mode == 1 and not link.udp_fixed and
                                      (ip != link.host or port != link.port)):
                link.udp_fixed = True
                link.host, link.port, link.dest = ip, port, addr
            if raw:
                self.out.write(data)
            elif b is None:
                self.deliver(link, data, len(data), ip, port)
            elif len(data) <= b.free(link):
                size = len(data)
                b.tail()[:size] = data
                b.e += size
                b.dgrams.append([size, ip, port])
                self.notify(link)
            # else: the window is full; UDP drops, as the spec says
            return
        rec = link.rec
        turns = READS_PER_TURN
        while True:
            if b is None:
                mv = self.room
            else:
                if not b.free(link):
                    # Window full (or none free): stop reading; the peer's sends
                    # stall, nothing is lost.
                    link.stalled = True
                    self.loop.on_read(s, None)
                    return
                mv = b.tail()
            try:
                # an SSL link reads a record at a time (at.sslconf.Records: a
                # close_notify behind the data keeps its end of stream)
                n = sock.read_into(link.ss, mv) if rec is None else rec.take(mv)
            except OSError as e:
                n = 0 if errno_of(e) != EAGAIN else None
            if n is None:
                return
            if n == 0:
                self._peer_closed(link)
                return
            link.last = time.ticks_ms()
            if b is None:
                # in the backlog's buffer already: its header in front, one write
                self.out.send_read(b"" if raw else self.header(link, n, link.host, link.port), n)
            elif raw:
                self.out.write(mv[:n])  # read into a passive window
            else:
                b.e += n
                self.notify(link)
            # A plain socket: poll says when there is more, but a full read says
            # it now: a few more reads this turn (fewer polls per byte), bounded so
            # the UART and the other links get theirs. TLS: mbedTLS may hold
            # decrypted data no poll can see, so read until it says "would block"
            # (or, when the host stops reading, pause and look again on the drain).
            if self.links[link.id] is not link:
                return
            if not link.tls:
                turns -= 1
                if not turns or b is not None or n < len(mv) or self.out.blocked:
                    return
            elif self.out.blocked:
                self._pause(link)
                return

    def header(self, link, n, ip, port):
        """Active receive's "+IPD", in the format AT+CIPMUX and AT+CIPDINFO select."""
        if self.mux:
            hdr = "\r\n+IPD,%d,%d" % (link.id, n)
        else:
            hdr = "\r\n+IPD,%d" % n
        if self.dinfo:
            hdr += ',"%s",%d:' % (ip, port)
        else:
            hdr += ":"
        return hdr.encode()

    def deliver(self, link, data, n, ip, port):
        """Active receive of data that is not in the backlog's buffer (a datagram, a TLS record)."""
        self.out.write(self.header(link, n, ip, port))
        self.out.write(data)

    def notify(self, link):
        """Passive receive: one "+IPD,[<id>,]<len>" until the host reads."""
        if link.notified:
            return
        link.notified = True
        b = link.rxb
        n = b.dgrams[0][0] if (self.lenmode[link.id] and b.dgrams) else b.used()
        if self.mux:
            self.eng.reply("", "+IPD,%d,%d" % (link.id, n))
        else:
            self.eng.reply("", "+IPD,%d" % n)

    def recvdata(self, link, n, whole):
        """AT+CIPRECVDATA: write up to n buffered bytes; False when there are none."""
        b = link.rxb
        if b is None or not b.used():
            return False
        ip, port = link.host, link.port
        if b.dgrams is not None:
            d = b.dgrams
            ip, port = d[0][1], d[0][2]
            if whole:
                # Whole datagrams only, as many as fit in n.
                take = 0
                while d and take + d[0][0] <= n:
                    take += d.pop(0)[0]
                if not take:
                    return False
                n = take
            else:
                n = min(n, b.used())
                left = n
                while d and left >= d[0][0]:
                    left -= d.pop(0)[0]
                if left:
                    d[0][0] -= left
        else:
            n = min(n, b.used())
        if self.dinfo:
            self.eng.write('+CIPRECVDATA:%d,"%s",%d,' % (n, ip, port))
        else:
            self.eng.write("+CIPRECVDATA:%d," % n)
        self.out.write(memoryview(b.buf)[b.s:b.s + n])  # the caller ends it with CR LF
        b.take(n)
        link.notified = False
        link.last = time.ticks_ms()
        if link.stalled:
            link.stalled = False
            self.resume_read(link)
        return True

    def after_read(self, link):
        """After AT+CIPRECVDATA's OK: CLOSED if the peer left and all is read;
        a new +IPD if data is still waiting."""
        b = link.rxb
        if b is None or self.links[link.id] is not link:
            return
        if b.used():
            self.notify(link)
        elif link.eof:
            self.close(link)

    def set_passive(self, lid, mode, lenmode):
        if mode:
            self.windows.reserve()
        self.recvtype[lid] = mode
        self.lenmode[lid] = lenmode
        link = self.links[lid]
        if link is None:
            return
        if mode and link.rxb is None:
            link.rxb = RxBuf(self.windows, link.udp)
        elif not mode and link.rxb is not None:
            b = link.rxb
            link.rxb = None
            if b.used():  # hand over what was buffered as active +IPD
                self.deliver(link, memoryview(b.buf)[b.s:b.e], b.used(), link.host, link.port)
            b.end(link)
            if link.stalled:
                link.stalled = False
                self.resume_read(link)
            if link.eof:
                self.close(link)

    def _pause(self, link):
        """The host is not reading: leave the data in the socket (the TCP window
        closes, the peer stalls) until the UART backlog drains."""
        self.loop.on_read(link.sock, None)
        if link not in self._paused:  # a TLS link may pause again before the drain
            self._paused.append(link)
        self.out.when_drained(self._on_drained)

    def _resume(self):
        p = self._paused
        self._paused = []
        for link in p:
            if self.links[link.id] is link and not link.stalled and not link.eof:
                self.resume_read(link)

    def _window_back(self, link):
        """A passive window came back: a link stalled for want of one reads again."""
        if self.links[link.id] is link and link.stalled and not link.eof:
            link.stalled = False
            self.resume_read(link)

    def resume_read(self, link):
        """Read the link again (after a pause: a full window, a busy UART, passthrough)."""
        self.loop.on_read(link.sock, link.reader)
        if link.tls:  # data mbedTLS already holds raises no poll event: look now
            self.loop.later(0, lambda: self._readable(link, 1) if self.links[link.id] is link else None)

    # -- sending ------------------------------------------------------------------------------------
    def send(self, link, mv, dest=None, note=None):
        """Generator: hand mv to the stack; raises OSError when the link fails
        (ETIMEDOUT when AT+CIPTCPOPT's so_sndtimeo runs out). `note` (e.g.
        "Recv n bytes") is written before the first wait or the failure;
        returns it if neither came, so the caller can write it with the result."""
        s = link.sock
        link.last = time.ticks_ms()
        try:
            if link.udp:
                s.sendto(mv, dest or link.dest)
                return note
            while mv:
                n = sock.write(link.ss, mv)
                if n:
                    mv = mv[n:]
                else:
                    if note:
                        self.out.write(note)
                        note = None
                    ev = yield self.eng.writable(s, link.sndtimeo)
                    if ev == 0:
                        raise OSError(sock.ETIMEDOUT)
        except OSError:
            if note:
                self.out.write(note)
            raise
        return note
