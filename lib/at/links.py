# The link table: five link slots, their non-blocking sockets, "+IPD" framing and
# CONNECT/CLOSED reports. Commands in at/commands/tcpip.py drive it; the event
# loop calls _readable() when a socket has data.
import socket
import os
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID

MAX_LINKS = 5
RX_SIZE = 2920  # bytes read per +IPD, ESP-AT's two TCP segments
CONNECT_MS = 20000  # when CIPSTART gives no timeout
EINPROGRESS = 115
EAGAIN = 11

SOCK_STREAM = socket.SOCK_STREAM
SOCK_DGRAM = socket.SOCK_DGRAM


def is_ipv4(s):
    p = s.split(".")
    if len(p) != 4:
        return False
    for x in p:
        if not x or len(x) > 3 or not x.isdigit() or int(x) > 255:
            return False
    return True


def peer(addr):
    """(ip, port) from what recvfrom/accept gives: a tuple on the ESP32, raw sockaddr bytes on unix."""
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    fam, ip, port = socket.sockaddr(addr)[:3]
    return socket.inet_ntop(fam, ip), port


def errno_of(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


class Link:
    __slots__ = ("id", "type", "sock", "host", "port", "lport", "server", "udp_mode", "dest", "reader", "udp_fixed")

    def __init__(self, lid, typ, sock, host, port, lport, server=0):
        self.id = lid
        self.type = typ
        self.sock = sock
        self.host = host
        self.port = port
        self.lport = lport
        self.server = server
        self.udp_mode = 0
        self.dest = None
        self.reader = None
        self.udp_fixed = False

    @property
    def udp(self):
        return self.type[0] == "U"


class Net:
    def __init__(self, at):
        self.at = at
        self.loop = at.loop
        self.out = at.out
        self.links = [None] * MAX_LINKS
        self.mux = 0
        self.dinfo = 0
        self.mode = 0  # AT+CIPMODE
        self.keepalive = 0  # last keep_alive given to CIPSTART/CIPTCPOPT
        self.had_link = False
        self.rx = bytearray(RX_SIZE)
        self.rxv = memoryview(self.rx)
        self._paused = []
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

    def count(self):
        n = 0
        for l in self.links:
            if l is not None:
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
        """(family, sockaddr) for host; IP literals never touch DNS."""
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        if host == "localhost":
            host = "::1" if v6 else "127.0.0.1"
        if not v6 and not is_ipv4(host) and ":" not in host:
            # A name: for now through the platform resolver (see README, "DNS").
            pass
        try:
            ai = socket.getaddrinfo(host, port, fam)
        except OSError as e:
            raise fail(EXEC_FAIL, 1, errno=errno_of(e))
        for a in ai:
            if a[0] == fam:
                return fam, a[-1]
        raise fail(EXEC_FAIL, 1)

    def open(self, lid, typ, host, port, keepalive, local_ip, timeout_ms, lport=0, udp_mode=0):
        """Generator: open a TCP or UDP link in slot lid and report CONNECT."""
        v6 = typ.endswith("v6")
        fam, addr = self.resolve(host, port, v6)
        udp = typ[0] == "U"
        s = socket.socket(fam, SOCK_DGRAM if udp else SOCK_STREAM)
        try:
            s.setblocking(False)
            if udp:
                lport = self._bind(s, fam, local_ip, lport)
                if host == "255.255.255.255":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:
                lport = self._bind(s, fam, local_ip, 0)
                if keepalive:
                    self.at.board.keepalive(s, keepalive)
                try:
                    s.connect(addr)
                except OSError as e:
                    if errno_of(e) != EINPROGRESS:
                        raise fail(EXEC_FAIL, 2, errno=errno_of(e))
                # Hold the slot while connecting.
                self.links[lid] = Link(lid, typ, s, host, port, lport)
                ev = yield self.at.writable(s, timeout_ms or CONNECT_MS)
                if ev == 0:
                    raise fail(EXEC_FAIL, 3, errno=110)  # ETIMEDOUT
                if ev & 0x18:  # POLLERR | POLLHUP: read the pending error
                    err = 111
                    try:
                        s.recv(1)
                    except OSError as e:
                        err = errno_of(e) or err
                    raise fail(EXEC_FAIL, 2, errno=err)
        except BaseException:
            self.links[lid] = None
            s.close()
            raise
        link = Link(lid, typ, s, host, port, lport)
        if udp:
            link.dest = addr
            link.udp_mode = udp_mode
        self.attach(link)
        self.announce(link)

    def attach(self, link):
        self.links[link.id] = link
        self.had_link = True
        link.reader = lambda obj, ev: self._readable(link, ev)
        self.loop.on_read(link.sock, link.reader)

    def announce(self, link):
        if self.at.cfg.get("sysmsg") & 2:
            self.at.reply('+LINK_CONN:0,%d,"%s",%d,"%s",%d,%d' % (
                link.id, link.type, link.server, link.host, link.port, link.lport))
        else:
            self.at.reply(self.prefix(link) + "CONNECT")

    # -- closing ---------------------------------------------------------------------------
    def close(self, link, report=True):
        if self.links[link.id] is not link:
            return
        self.links[link.id] = None
        self.loop.forget(link.sock)
        if link in self._paused:
            self._paused.remove(link)
        try:
            link.sock.close()
        except OSError:
            pass
        if self.at._waitobj is link.sock:
            # A command waits on this socket (a send): wake it so it fails now.
            self.at._ready(link.sock, 0x08)
        if report:
            self.at.reply(self.prefix(link) + "CLOSED")

    # -- receiving ------------------------------------------------------------------------------
    def _readable(self, link, ev):
        if self.out.blocked:
            # The host is not reading: leave the data in the socket (TCP window
            # closes, the peer stalls) until the UART backlog drains.
            self.loop.on_read(link.sock, None)
            self._paused.append(link)
            self.out.when_drained(self._resume)
            return
        s = link.sock
        if link.udp:
            try:
                data, addr = s.recvfrom(RX_SIZE)
            except OSError as e:
                if errno_of(e) == EAGAIN:
                    return
                self.close(link)
                return
            ip, port = peer(addr)
            if link.udp_mode == 2 or (link.udp_mode == 1 and not link.udp_fixed and
                                      (ip != link.host or port != link.port)):
                link.udp_fixed = True
                link.host, link.port, link.dest = ip, port, addr
            self.deliver(link, data, len(data), ip, port)
            return
        try:
            n = s.readinto(self.rx)
        except OSError as e:
            n = 0 if errno_of(e) != EAGAIN else None
        if n is None:
            return
        if n == 0:
            self.close(link)
            return
        self.deliver(link, self.rxv[:n], n, link.host, link.port)

    def deliver(self, link, data, n, ip, port):
        """Active receive: "+IPD" in the format AT+CIPMUX and AT+CIPDINFO select."""
        if self.mux:
            hdr = "\r\n+IPD,%d,%d" % (link.id, n)
        else:
            hdr = "\r\n+IPD,%d" % n
        if self.dinfo:
            hdr += ',"%s",%d:' % (ip, port)
        else:
            hdr += ":"
        self.out.write(hdr.encode())
        self.out.write(data)

    def _resume(self):
        p = self._paused
        self._paused = []
        for link in p:
            if self.links[link.id] is link:
                self.loop.on_read(link.sock, link.reader)

    # -- sending ------------------------------------------------------------------------------------
    def send(self, link, mv, dest=None, timeout_ms=-1):
        """Generator: hand mv to the stack; raises OSError when the link fails."""
        s = link.sock
        if link.udp:
            s.sendto(mv, dest or link.dest)
            return
        while mv:
            try:
                n = s.send(mv)
            except OSError as e:
                if errno_of(e) != EAGAIN:
                    raise
                n = 0
            if n:
                mv = mv[n:]
            else:
                ev = yield self.at.writable(s, timeout_ms)
                if ev == 0:
                    raise OSError(110)
