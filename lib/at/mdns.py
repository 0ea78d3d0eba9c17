# mDNS (RFC 6762) and DNS-SD (RFC 6763), small, inside the event loop:
# - Responder (AT+MDNS=1): one host name and one service. It owns a UDP socket
#   on 5353 joined to 224.0.0.251 (and ff02::fb where the port can join an IPv6
#   group), announces its records when the station has an address, answers
#   questions for them (multicast, or unicast to a "legacy" querier on another
#   port), and says goodbye (TTL 0) when stopped.
# - query() (AT+MDNS=2): a one-shot querier (RFC 6762 5.1): questions go to the
#   group from an ephemeral port, so responders answer by unicast to that port,
#   which the command's generator reads; no group membership is needed for it.
# Names are lists of labels (bytes); they are compared by key(), the lowercase
# dotted form. Nothing here loops per byte: names go label by label.
import os
import socket
import struct
import sys
import time
from at import sock
from at.task import Task

GROUP4 = "224.0.0.251"
GROUP6 = "ff02::fb"
PORT = 5353
A, PTR, TXT, AAAA, SRV, ANY = 1, 12, 16, 28, 33, 255
TTL_HOST = 120  # RFC 6762 10: records with a host name
TTL_OTHER = 4500
LEGACY_TTL = 10  # answers to a one-shot querier (RFC 6762 6.7)
MAX_PKT = 1500  # what is read of a datagram (one Ethernet frame)
POLL_MS = 1000  # how often the responder looks at the station's addresses
ANNOUNCE = 3  # unsolicited announcements, one second apart (RFC 6762 8.3: at least 2)
MAX_TXT = 32  # TXT strings kept per record by the querier
MAX_ADDR = 8  # addresses kept per host by the querier
MAX_HOSTS = 32
_LINUX = sys.platform == "linux"  # the unix port passes every socket option to the OS;
# the ESP32 port implements SO_REUSEADDR and IP_ADD_MEMBERSHIP only (NOTES.md).
_LOCAL = b"local"
_ENUM = [b"_services", b"_dns-sd", b"_udp", _LOCAL]  # service type enumeration


# -- names and addresses -------------------------------------------------------------------------
def key(labels):
    return b".".join(labels).lower()


def encode(labels):
    out = bytearray()
    for lab in labels:
        out.append(len(lab))
        out.extend(lab)
    out.append(0)
    return bytes(out)


def read_name(m, i):
    """(labels, index after the name) of the name at m[i], following pointers."""
    labels = []  # type: list[bytes]
    after = -1
    hops = 0
    n = len(m)
    while True:
        c = m[i]
        if c == 0:
            return labels, (i + 1 if after < 0 else after)
        if c >= 0xC0:
            if after < 0:
                after = i + 2
            i = ((c & 0x3F) << 8) | m[i + 1]
            hops += 1
            if hops > 16:
                raise ValueError("pointer loop")
            continue
        if c > 63 or i + 1 + c > n or len(labels) >= 32:
            raise ValueError("bad name")
        labels.append(bytes(m[i + 1:i + 1 + c]))
        i += 1 + c


def text(b):
    """A label or TXT string as str (bytes that are not UTF-8 become '?')."""
    try:
        return b.decode()
    except Exception:
        return bytes(c if c < 128 else 63 for c in b).decode()


def v4_bytes(ip):
    return bytes(int(x) for x in ip.split("."))


def v6_bytes(s):
    """16 bytes of an IPv6 text address (the ESP32's socket module has no inet_pton)."""
    s = s.split("%")[0]
    if "." in s:  # an IPv4 tail, ::ffff:1.2.3.4
        head, tail = s.rsplit(":", 1)
        q = v4_bytes(tail)
        s = head + ":%x:%x" % ((q[0] << 8) | q[1], (q[2] << 8) | q[3])
    if "::" in s:
        left, right = s.split("::")
        lg = left.split(":") if left else []
        rg = right.split(":") if right else []
        g = lg + ["0"] * (8 - len(lg) - len(rg)) + rg
    else:
        g = s.split(":")
    if len(g) != 8:
        raise ValueError("bad IPv6 address")
    return b"".join(int(x, 16).to_bytes(2, "big") for x in g)


def v6_full(b):
    """ESP-IDF's IPV6STR: eight groups of four hex digits, nothing compressed."""
    return ":".join("%04x" % ((b[i] << 8) | b[i + 1]) for i in range(0, 16, 2))


def src_port(addr):
    """The port of a recvfrom() address: a tuple on the ESP32, raw sockaddr bytes on unix."""
    if isinstance(addr, tuple):
        return addr[1]
    return (addr[2] << 8) | addr[3]


_group = {}  # type: dict


def group_addr(fam):
    """The sockaddr of the group of an address family (looked up once)."""
    a = _group.get(fam)
    if a is None:
        if fam == socket.AF_INET6:
            a = socket.getaddrinfo(GROUP6, PORT, fam)[0][-1]
        else:
            a = socket.getaddrinfo(GROUP4, PORT)[0][-1]
        _group[fam] = a
    return a


def _mcast_opts(s, fam, ip):
    """Send multicast with TTL 255 on the station's interface (unix port only).
    The virtual board's station address is a host address (127.0.0.1 by
    default): its packets stay on that interface, off the machine's own LAN."""
    if not _LINUX:
        return
    try:
        if fam == socket.AF_INET:
            s.setsockopt(0, 33, 255)  # IPPROTO_IP, IP_MULTICAST_TTL
            s.setsockopt(0, 32, v4_bytes(ip))  # IP_MULTICAST_IF
        else:
            s.setsockopt(41, 18, 255)  # IPPROTO_IPV6, IPV6_MULTICAST_HOPS
    except OSError:
        pass


def _rr(name, typ, unique, ttl, rdata):
    return name + struct.pack(">HHIH", typ, 0x8001 if unique else 1, ttl, len(rdata)) + rdata


def _header(qid, qd, an, ar, response=True):
    return struct.pack(">HHHHHH", qid, 0x8400 if response else 0, qd, an, 0, ar)


# -- the responder ---------------------------------------------------------------------------------
class Responder:
    """One host name and one service (AT+MDNS=1). start() runs it as a task of
    the loop; stop() says goodbye and closes its sockets."""

    def __init__(self, eng, host, stype, port, instance, proto, txt):
        self.eng = eng
        self.log = eng.log
        host_l = [host.encode(), _LOCAL]
        svc_l = [stype.encode(), proto.encode(), _LOCAL]
        inst_l = [instance.encode()] + svc_l
        self.host = encode(host_l)
        svc = encode(svc_l)
        inst = encode(inst_l)
        rd = bytearray()
        for k, v in txt:
            s = (k + "=" + v).encode()
            rd.append(len(s))
            rd.extend(s)
        # name, type, unique (cache-flush), TTL, rdata; address records follow (_addresses)
        self.base = [
            (svc, PTR, False, TTL_OTHER, inst),
            (inst, SRV, True, TTL_HOST, struct.pack(">HHH", 0, 0, port) + self.host),
            (inst, TXT, True, TTL_OTHER, bytes(rd) or b"\x00"),  # an empty TXT is one empty string
            (encode(_ENUM), PTR, False, TTL_OTHER, svc),
        ]
        self.keys = {key(svc_l): (0,), key(inst_l): (1, 2), key(_ENUM): (3,), key(host_l): ()}
        self._host_key = key(host_l)
        self.recs = self.base
        self.index = self.keys
        self.addrs = None
        self.s4 = None
        self.s6 = None
        self._task = None
        self._todo = 0

    # -- records --------------------------------------------------------------------------------
    def _addresses(self, addrs):
        """The record table with address records for (ip4, ip6...)."""
        recs = list(self.base)
        idx = dict(self.keys)
        mine = []
        for ip in addrs:
            try:
                rd = v6_bytes(ip) if ":" in ip else v4_bytes(ip)
            except ValueError:
                continue
            mine.append(len(recs))
            recs.append((self.host, AAAA if len(rd) == 16 else A, True, TTL_HOST, rd))
        idx[self._host_key] = tuple(mine)
        self.recs = recs
        self.index = idx

    def _extra(self, j):
        """Additional records for an answer (RFC 6763 12, RFC 6762 6.2)."""
        typ = self.recs[j][1]
        addr = self.index[self._host_key]
        if j == 0:
            return (1, 2) + addr
        if typ == SRV:
            return addr
        if typ in (A, AAAA):
            return tuple(x for x in addr if self.recs[x][1] != typ)
        return ()

    def _packet(self, ans, add, ttl=None, qid=0, questions=b"", qd=0, legacy=False):
        out = [_header(qid, qd, len(ans), len(add)), questions]
        for j in ans + add:
            name, typ, unique, t, rd = self.recs[j]
            if ttl is not None:
                t = ttl
            elif legacy:
                t = min(t, LEGACY_TTL)
            out.append(_rr(name, typ, unique and not legacy, t, rd))
        return b"".join(out)

    # -- running --------------------------------------------------------------------------------
    def start(self):
        self._task = Task(self.eng.loop, self._run(), self._ended)

    def _ended(self, result, err):
        if err is not None:
            self.log.write("at-mdns: responder stopped: %r\n" % (err,))
        self._task = None

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.addrs:
            self._multicast(self._packet(list(range(len(self.recs))), [], ttl=0))  # goodbye
        self._close()

    def _station(self):
        """(ip4, ip6 ...) of the station, or None while it has no address."""
        w = self.eng.wifi
        if not w.has_ip():
            return None
        v6 = w.ip6()
        return (w.radio.ifconfig()[0],) + (tuple(x for x in v6 if x) if v6 else ())

    def _run(self):
        while True:
            addrs = self._station()
            if addrs != self.addrs:
                self._close()
                self.addrs = addrs
                if addrs:
                    self._addresses(addrs)
                    self._open(addrs)
                    self._todo = ANNOUNCE
            if self._todo and self.addrs:
                self._todo -= 1
                self._multicast(self._packet(list(range(len(self.recs))), []))
            yield POLL_MS

    def _open(self, addrs):
        ip = addrs[0]
        s = None
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo("0.0.0.0", PORT)[0][-1])
            s.setsockopt(0, socket.IP_ADD_MEMBERSHIP, v4_bytes(GROUP4) + v4_bytes(ip))  # IPPROTO_IP
            _mcast_opts(s, socket.AF_INET, ip)
            s.setblocking(False)
        except OSError as e:
            self.log.write("at-mdns: cannot listen on %s:%d: %r\n" % (GROUP4, PORT, e))
            if s is not None:
                s.close()
            return
        self.s4 = s
        self.eng.loop.on_read(s, self._readable)
        if len(addrs) > 1 and _LINUX:
            # IPv6 group membership needs IPV6_JOIN_GROUP, which the ESP32 port
            # lacks: there the AAAA records are served over IPv4 only.
            s = None
            try:
                fam = socket.AF_INET6
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(41, 26, 1)  # IPV6_V6ONLY
                s.bind(socket.getaddrinfo("::", PORT, fam)[0][-1])
                s.setsockopt(41, 20, v6_bytes(GROUP6) + bytes(4))  # IPV6_JOIN_GROUP, any interface
                _mcast_opts(s, fam, None)
                s.setblocking(False)
            except OSError as e:
                self.log.write("at-mdns: no IPv6 group: %r\n" % (e,))
                if s is not None:
                    s.close()
                return
            self.s6 = s
            self.eng.loop.on_read(s, self._readable)

    def _close(self):
        for s in (self.s4, self.s6):
            if s is not None:
                self.eng.loop.on_read(s, None)
                s.close()
        self.s4 = self.s6 = None

    def _multicast(self, pkt):
        for s, fam in ((self.s4, socket.AF_INET), (self.s6, socket.AF_INET6)):
            if s is not None:
                try:
                    s.sendto(pkt, group_addr(fam))
                except OSError as e:
                    self.log.write("at-mdns: send failed: %r\n" % (e,))

    def _readable(self, s, ev):
        for _ in range(8):  # a few datagrams per wake; the rest wait for the next poll
            try:
                m, src = s.recvfrom(MAX_PKT)
            except OSError:
                return
            try:
                self._question(s, m, src)
            except (ValueError, IndexError):
                pass  # malformed: ignored

    def _question(self, s, m, src):
        if len(m) < 12 or m[2] & 0xF8:  # a response, or an opcode other than QUERY
            return
        qd = min((m[4] << 8) | m[5], 16)
        i = 12
        ans = []
        for _ in range(qd):
            labels, i = read_name(m, i)
            qt = (m[i] << 8) | m[i + 1]
            i += 4
            for j in self.index.get(key(labels), ()):
                if (qt == ANY or qt == self.recs[j][1]) and j not in ans:
                    ans.append(j)
        if not ans:
            return
        add = []
        for j in ans:
            for x in self._extra(j):
                if x not in ans and x not in add:
                    add.append(x)
        if src_port(src) != PORT:
            # A one-shot querier: answer it alone, by unicast, with its question
            # and ID (RFC 6762 6.7). The questions are copied as they came: they
            # sit at the same offset, so pointers into them stay valid.
            pkt = self._packet(ans, add, qid=(m[0] << 8) | m[1], questions=m[12:i], qd=qd, legacy=True)
            try:
                s.sendto(pkt, src)
            except OSError:
                pass
        else:
            self._multicast(self._packet(ans, add))


# -- the querier -------------------------------------------------------------------------------------
class Found:
    """What the answers to one query said, per IP version (0 IPv4, 1 IPv6)."""

    def __init__(self):
        self.ptr = []  # instance names (labels), in the order they came
        self.srv = {}  # key -> (target labels, port)
        self.txt = {}  # key -> [str]
        self.addr = {}  # host key -> ([ip4], [ip6])

    def add(self, m, svc_key, room):
        """Take the records of one response (answers and additionals)."""
        if len(m) < 12 or not m[2] & 0x80:
            return
        qd = (m[4] << 8) | m[5]
        nrec = ((m[6] << 8) | m[7]) + ((m[8] << 8) | m[9]) + ((m[10] << 8) | m[11])
        i = 12
        for _ in range(qd):
            i = read_name(m, i)[1] + 4
        for _ in range(min(nrec, 64)):
            labels, i = read_name(m, i)
            if i + 10 > len(m):
                return
            typ, _c, ttl, rdlen = struct.unpack_from(">HHIH", m, i)
            i += 10
            rd = i
            i += rdlen
            if i > len(m):
                return
            if ttl == 0:
                continue  # a goodbye
            k = key(labels)
            if typ == PTR:
                if k == svc_key and len(self.ptr) < room:
                    target = read_name(m, rd)[0]
                    if all(key(t) != key(target) for t in self.ptr):
                        self.ptr.append(target)
            elif typ == SRV and rdlen > 6:
                self.srv[k] = (read_name(m, rd + 6)[0], (m[rd + 4] << 8) | m[rd + 5])
            elif typ == TXT:
                out = []  # type: list[str]
                j = rd
                while j < i and len(out) < MAX_TXT:
                    n = m[j]
                    if n:
                        out.append(text(bytes(m[j + 1:min(j + 1 + n, i)])))
                    j += 1 + n
                self.txt[k] = out
            elif typ in (A, AAAA) and rdlen in (4, 16):
                if k not in self.addr:
                    if len(self.addr) >= MAX_HOSTS:
                        continue
                    self.addr[k] = ([], [])
                v4 = rdlen == 4
                ips = self.addr[k][0 if v4 else 1]
                ip = "%d.%d.%d.%d" % tuple(m[rd:rd + 4]) if v4 else v6_full(m[rd:rd + 16])
                if ip not in ips and len(ips) < MAX_ADDR:
                    ips.append(ip)


def _block(ipv, lines):
    """One result: the station's interface (IF=1), the IP version, the lines."""
    return "IF=1\r\nIP=%d\r\n" % ipv + "".join(x + "\r\n" for x in lines)


def _service_lines(f, inst):
    """PTR, SRV, TXT and the addresses of the SRV target, for one instance."""
    k = key(inst)
    lines = ["PTR=" + text(inst[0])]
    srv = f.srv.get(k)
    if srv:
        lines.append("SRV=%s:%d" % (".".join(text(x) for x in srv[0]), srv[1]))
    lines.extend("TXT=" + x for x in f.txt.get(k, ()))
    if srv:
        v4, v6 = f.addr.get(key(srv[0]), ((), ()))
        lines.extend("A=" + x for x in v4)
        lines.extend("AAAA=" + x for x in v6)
    return lines


def results(kind, name, found):
    """The result blocks (text after "+MDNS:<len>,") of a query: one per
    instance (PTR) or per name, IPv4 ones first."""
    out = []
    for ipv, f in enumerate(found):
        if f is None:
            continue
        if kind == 0:
            for inst in f.ptr:
                out.append(_block(ipv, _service_lines(f, inst)))
        elif kind <= 3:
            k = key(name)
            if k in f.txt or k in f.srv:
                out.append(_block(ipv, _service_lines(f, name)))
        else:
            v4, v6 = f.addr.get(key(name), ((), ()))
            lines = ["A=" + x for x in v4] if kind in (4, 6) else []
            if kind in (5, 6):
                lines.extend("AAAA=" + x for x in v6)
            if lines:
                out.append(_block(ipv, lines))
    return out


def count(kind, name, found):
    """How many results results() would give, without building them."""
    n = 0
    k = key(name)
    for f in found:
        if kind == 0:
            n += len(f.ptr)
        elif kind <= 3:
            n += k in f.txt or k in f.srv
        else:
            v4, v6 = f.addr.get(k, ((), ()))
            n += bool(v4 and kind != 5 or v6 and kind != 4)
    return n


def question(kind, name):
    """The question section for AT+MDNS=2's <type>: (count, bytes)."""
    n = encode(name)
    types = ((PTR,), (TXT,), (SRV,), (TXT, SRV), (A,), (AAAA,), (A, AAAA))[kind]
    return len(types), b"".join(n + struct.pack(">HH", t, 1) for t in types)


def query(eng, kind, name, timeout_ms, max_results, ipv6=False):
    """Generator: ask the network; returns the result blocks (maybe none).
    name: the labels asked about (the service type for PTR, the instance for
    TXT/SRV, the host for A/AAAA). Stops at max_results or at the timeout."""
    qd, qs = question(kind, name)
    socks = []
    for fam in (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,):
        try:
            s = socket.socket(fam, socket.SOCK_DGRAM)
        except OSError:
            continue
        s.setblocking(False)
        if fam == socket.AF_INET:
            _mcast_opts(s, fam, eng.wifi.radio.ifconfig()[0])
        else:
            _mcast_opts(s, fam, None)
        socks.append((s, fam, Found()))
    svc_key = key(name) if kind == 0 else None
    now = time.ticks_ms()
    deadline = time.ticks_add(now, timeout_ms)
    resend = now
    gap = 1000  # 1 s, then doubling (RFC 6762 5.2)
    try:
        while True:
            now = time.ticks_ms()
            if time.ticks_diff(resend, now) <= 0:
                for s, fam, _f in socks:
                    qid = int.from_bytes(os.urandom(2), "big")  # a new ID: the same packet twice may be ignored
                    try:
                        s.sendto(_header(qid, qd, 0, 0, False) + qs, group_addr(fam))
                    except OSError as e:
                        eng.log.write("at-mdns: query not sent: %r\n" % (e,))
                resend = time.ticks_add(now, gap)
                gap = min(gap * 2, 60000)
            left = time.ticks_diff(deadline, now)
            if left <= 0:
                break
            wait = min(left, time.ticks_diff(resend, now))
            if len(socks) > 1:
                wait = min(wait, 100)  # the generator waits on one socket; look at the other often
            if socks:
                yield eng.readable(socks[0][0], max(wait, 1))
            else:
                yield eng.sleep(max(wait, 1))
            for s, fam, f in socks:
                for _ in range(8):
                    try:
                        m = sock.datagram(s)
                    except OSError:
                        break
                    if m is None:
                        break
                    try:
                        f.add(m, svc_key, max_results)
                    except (ValueError, IndexError):
                        pass
            if count(kind, name, [x[2] for x in socks]) >= max_results:
                break
    finally:
        for s, _fam, _f in socks:
            s.close()
    found = [None, None]  # type: list
    for s, fam, f in socks:
        found[0 if fam == socket.AF_INET else 1] = f
    return results(kind, name, found)[:max_results]
