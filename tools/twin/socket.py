# The ESP32 port's socket module (ports/esp32/modsocket.c), over the unix
# port's sockets. What it reproduces, with the lines it copies (tag v1.27.0
# unless said; v1.24.1 and v1.28.0 are the same there):
# - IPv4 only: getaddrinfo() formats AF_INET results and gives None as the
#   address of any other family (esp_socket_getaddrinfo, 686-735); accept() and
#   recvfrom() format a sockaddr_in whatever came (accept 352-391, recvfrom
#   675-690); sendto() builds a sockaddr_in from (ip, port) (724-750).
# - Addresses are (host, port) tuples, passed through getaddrinfo (bind 309-320,
#   connect 400-490); a host of "" means 0.0.0.0 (_getaddrinfo_inner 220-226).
# - newlib errno values (ports/esp32/mpconfigport.h MICROPY_USE_INTERNAL_ERRNO 0),
#   and lwIP's error for each condition (lwIP api/err.c err_to_errno_table:
#   a refused connection is ERR_RST -> ECONNRESET, a retransmission timeout
#   ERR_ABRT -> ECONNABORTED, a closed connection ERR_CLSD -> ENOTCONN).
# - A non-blocking connect() raises OSError(EINPROGRESS) (connect 423-428, 484).
# - The poll ioctl answers only the events asked for; HUP only when HUP was
#   asked for and lwIP has an error pending (exceptfds); a failed connect is
#   writable; a new, unconnected TCP socket is writable with HUP; a closed one
#   is NVAL (socket_stream_ioctl 821-866).
# - setsockopt() knows SO_REUSEADDR, SO_BROADCAST, SO_BINDTODEVICE, TCP_NODELAY
#   and IP_ADD_MEMBERSHIP by option number alone (the level is not looked at);
#   anything else prints a warning and does nothing (socket_setsockopt 493-566).
# - A non-blocking send() that takes nothing raises EAGAIN (_socket_send 775-790).
# - lwIP's limits: 10 sockets (ESP-IDF's CONFIG_LWIP_MAX_SOCKETS default; then
#   lwip_socket() fails with ENFILE, socket_make_new 296-306), and TCP buffers of
#   about 5.7 KB each way (ESP-IDF's LWIP_TCP_SND_BUF_DEFAULT/LWIP_TCP_WND_DEFAULT).
# - MSG_PEEK and MSG_DONTWAIT exist from v1.26.0 on.
import os
import sys
from _builtin import builtin

_u = builtin("socket")
_sel = builtin("select")
_uerr = builtin("errno")
import errno as _newlib  # the twin's errno.py (never written as errno.X here: the unix compiler folds it)

# lwIP's numbers (lwip/sockets.h), which the ESP32 module exports
AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 0xFFF
SO_REUSEADDR = 0x0004
SO_BROADCAST = 0x0020
SO_BINDTODEVICE = 0x100B
IP_ADD_MEMBERSHIP = 3
TCP_NODELAY = 1
_MSG_PEEK = 0x01
_MSG_DONTWAIT = 0x08
_RELEASE = tuple(int(x) for x in (os.getenv("TWIN_MPY") or "1.27").split(".")[:2])
if _RELEASE >= (1, 26):
    MSG_PEEK = _MSG_PEEK
    MSG_DONTWAIT = _MSG_DONTWAIT

MAX_SOCKETS = 10
_ENFILE = 23
_TCP_BUF = 5760

# Linux errno -> the ESP32's (newlib numbers, lwIP's choice of error)
_MAP = {
    _uerr.EAGAIN: _newlib.EAGAIN,
    _uerr.EINPROGRESS: _newlib.EINPROGRESS,
    _uerr.EALREADY: _newlib.EALREADY,
    _uerr.ECONNREFUSED: _newlib.ECONNRESET,  # ERR_RST
    _uerr.ECONNRESET: _newlib.ECONNRESET,
    _uerr.ETIMEDOUT: _newlib.ECONNABORTED,  # ERR_ABRT
    _uerr.ECONNABORTED: _newlib.ECONNABORTED,
    _uerr.EHOSTUNREACH: _newlib.EHOSTUNREACH,
    _uerr.ENOTCONN: _newlib.ENOTCONN,
    _uerr.EADDRINUSE: _newlib.EADDRINUSE,
    _uerr.EINVAL: _newlib.EINVAL,
    _uerr.EBADF: _newlib.EBADF,
    _uerr.ENOBUFS: _newlib.ENOBUFS,
    _uerr.ENOMEM: _newlib.ENOMEM,
    _uerr.EOPNOTSUPP: _newlib.EOPNOTSUPP,
    _uerr.EPERM: _newlib.EPERM,
    _uerr.EACCES: _newlib.EACCES,
    32: _newlib.ENOTCONN,  # EPIPE: ERR_CLSD
    101: _newlib.EHOSTUNREACH,  # ENETUNREACH: ERR_RTE
    99: 125,  # EADDRNOTAVAIL
    97: 106,  # EAFNOSUPPORT
    106: 127,  # EISCONN
    90: 122,  # EMSGSIZE
}


def _oserror(e):
    if e.args and isinstance(e.args[0], int):
        return OSError(_MAP.get(e.args[0], e.args[0]))
    return e


_all = []  # open Sockets, for the shared poll below
_rp = _sel.poll()
_rev = {}  # real socket -> Linux revents of this round
_round = [0]


def refresh():
    """One real poll over every open socket (select.poll calls it each round);
    ipoll() allocates nothing."""
    for s in _rev:
        _rev[s] = 0
    for s, ev in _rp.ipoll(0):
        _rev[s] = ev


def _v4(addr):
    """A sockaddr_in formatted as the ESP32 module does: (ip, port)."""
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    fam, ip, port = _u.sockaddr(addr)[:3]
    ip = _u.inet_ntop(fam, ip)
    if fam != _u.AF_INET:
        # an IPv6 peer: the C code reads 4 bytes of a sockaddr_in6 as sin_addr
        ip = "0.0.0.0"
    return ip, port


def _resolve(addr, fam):
    """(host, port) -> a unix sockaddr, the way _socket_getaddrinfo does it."""
    if not isinstance(addr, (tuple, list)) or len(addr) != 2:
        raise TypeError("object with buffer protocol required" if addr is None else "tuple/list required")
    host, port = addr
    if host == "":
        host = "0.0.0.0"
    ufam = _u.AF_INET6 if fam == AF_INET6 else _u.AF_INET
    try:
        return _u.getaddrinfo(host, port, ufam)[0][-1]
    except OSError:
        raise OSError(-202)  # lwip_getaddrinfo: EAI_FAIL


class Socket:
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0, _real=None):
        if _real is None:
            if len(_all) >= MAX_SOCKETS:
                raise OSError(_ENFILE)
            ufam = _u.AF_INET6 if af == AF_INET6 else _u.AF_INET
            utype = {SOCK_STREAM: _u.SOCK_STREAM, SOCK_DGRAM: _u.SOCK_DGRAM, SOCK_RAW: _u.SOCK_RAW}[type]
            try:
                _real = _u.socket(ufam, utype, proto)
            except OSError as e:
                raise _oserror(e)
            if type == SOCK_STREAM:
                _real.setsockopt(_u.SOL_SOCKET, 7, _TCP_BUF)  # SO_SNDBUF
                _real.setsockopt(_u.SOL_SOCKET, 8, _TCP_BUF)  # SO_RCVBUF
            self._new = type == SOCK_STREAM  # SOCKET_STATE_NEW until bind/connect/listen
        else:
            self._new = False
        self._s = _real
        self.af = af
        self.type = type
        _all.append(self)
        _rp.register(_real, _sel.POLLIN | _sel.POLLOUT)

    # -- the poll ioctl ------------------------------------------------------------------------
    def _poll(self, ev):
        s = self._s
        if s is None:
            return 0x20  # MP_STREAM_POLL_NVAL
        r = _rev.get(s, 0)
        out = 0
        if ev & 1 and r & (_sel.POLLIN | _sel.POLLERR | _sel.POLLHUP):
            out |= 1
        if ev & 4 and r & (_sel.POLLOUT | _sel.POLLERR):
            out |= 4
        if ev & 16 and r & _sel.POLLERR:
            out |= 16
        if self._new:
            out |= (ev & 4) | 16
        return out

    def _live(self):
        if self._s is None:
            raise OSError(_newlib.EBADF)
        return self._s

    # -- setup -------------------------------------------------------------------------------------
    def bind(self, addr):
        s = self._live()
        self._new = False
        try:
            s.bind(_resolve(addr, self.af))
        except OSError as e:
            raise _oserror(e)

    def listen(self, backlog=2):
        self._new = False
        try:
            self._live().listen(backlog)
        except OSError as e:
            raise _oserror(e)

    def accept(self):
        try:
            c, a = self._live().accept()
        except OSError as e:
            raise _oserror(e)
        if len(_all) >= MAX_SOCKETS:
            c.close()  # lwIP has no netconn left: the connection is dropped
            raise OSError(_ENFILE)
        return Socket(self.af, self.type, 0, c), _v4(a)

    def connect(self, addr):
        s = self._live()
        self._new = False
        try:
            s.connect(_resolve(addr, self.af))
        except OSError as e:
            raise _oserror(e)

    def setblocking(self, flag):
        self._live().setblocking(flag)

    def settimeout(self, t):
        self._live().settimeout(t)

    def setsockopt(self, level, opt, val):
        s = self._live()
        try:
            if opt in (SO_REUSEADDR, SO_BROADCAST):
                s.setsockopt(_u.SOL_SOCKET, 2 if opt == SO_REUSEADDR else 6, int(val))
            elif opt == SO_BINDTODEVICE:
                pass  # an lwIP interface name ("st1"): nothing to bind to here
            elif opt == TCP_NODELAY:
                s.setsockopt(6, 1, int(val))
            elif opt == IP_ADD_MEMBERSHIP:
                if len(val) != 8:
                    raise ValueError()
                s.setsockopt(0, 35, bytes(val))  # Linux IP_ADD_MEMBERSHIP, same (group, if) order
            else:
                sys.stdout.write("Warning: lwip.setsockopt() option not implemented\n")
        except OSError as e:
            raise _oserror(e)

    # -- data ----------------------------------------------------------------------------------------
    def send(self, data):
        try:
            n = self._live().send(data)
        except OSError as e:
            raise _oserror(e)
        if not n and len(data):
            raise OSError(_newlib.EAGAIN)
        return n

    def sendall(self, data):
        self.write(data)

    def sendto(self, data, addr):
        try:
            return self._live().sendto(data, _resolve(addr, AF_INET))
        except OSError as e:
            raise _oserror(e)

    def recv(self, n, flags=0):
        if self._new:
            raise OSError(_newlib.ENOTCONN)
        uf = (2 if flags & _MSG_PEEK else 0) | (0x40 if flags & _MSG_DONTWAIT else 0)
        try:
            return self._live().recv(n, uf) if uf else self._live().recv(n)
        except OSError as e:
            raise _oserror(e)

    def recvfrom(self, n, flags=0):
        try:
            d, a = self._live().recvfrom(n)
        except OSError as e:
            raise _oserror(e)
        return d, _v4(a)

    def read(self, n=-1):
        try:
            return self._live().read(n) if n >= 0 else self._live().read()
        except OSError as e:
            raise _oserror(e)

    def readinto(self, buf, n=None):
        try:
            return self._live().readinto(buf) if n is None else self._live().readinto(buf, n)
        except OSError as e:
            raise _oserror(e)

    def readline(self):
        return self._live().readline()

    def write(self, data):
        try:
            return self._live().write(data)
        except OSError as e:
            raise _oserror(e)

    def fileno(self):
        return self._live().fileno()

    def makefile(self, *a):
        return self

    def close(self):
        s = self._s
        if s is None:
            return
        self._s = None
        _rp.unregister(s)
        _rev.pop(s, None)
        if self in _all:
            _all.remove(self)
        try:
            s.close()
        except OSError:
            pass

    __del__ = close


socket = Socket


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    """lwip_getaddrinfo: IP literals of either family; a name through DNS (this
    blocks on the chip too). Only AF_INET results carry an address."""
    if not type:
        type = SOCK_STREAM
    if host == "":
        host = "0.0.0.0"
    if ":" in host or af == AF_INET6:
        try:
            _u.getaddrinfo(host, port, _u.AF_INET6)
        except OSError:
            raise OSError(-202)
        return [(AF_INET6, type, proto, host, None)]
    try:
        r = _u.getaddrinfo(host, port, _u.AF_INET)
    except OSError:
        raise OSError(-202)
    return [(AF_INET, type, proto, host, _v4(r[0][-1]))]
