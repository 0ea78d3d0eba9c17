# The one resolver every name goes through (CIPSTART, CIPDOMAIN, SNTP, ...): a
# small A/AAAA client over UDP that never blocks the loop. Its callers are
# generator handlers or tasks: `ips = yield from dns.lookup(at, name, ...)`.
# IP literals and "localhost" never leave the board, as on a real stack.
import os
import socket
import time
from at import sock
from at.addr import A, AAAA, literal
from at.errors import fail, EXEC_FAIL, E_DNS_NOT_FOUND

CNAME = 5
TRY_MS = 1500  # per server and attempt
DEFAULT_MS = 10000  # a lookup with no <timeout> gives up after this
DEFAULT_SERVERS = ["208.67.222.222", "114.114.114.114", "8.8.8.8"]  # AT+CIPDNS's defaults


def servers(eng):
    """The servers in use: AT+CIPDNS's when enabled, else what the network gave."""
    if eng.cfg.get("cipdns_on"):
        return eng.cfg.get("cipdns") or DEFAULT_SERVERS
    return eng.board.dns_servers() or DEFAULT_SERVERS


def _query(qid, name, qtype):
    q = bytearray(qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    for label in name.rstrip(".").split("."):
        if not label or len(label) > 63:
            raise ValueError("bad name")
        q.append(len(label))
        q.extend(label.encode())
    q.extend(b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01")
    return q


def _skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def parse(m, qid, qtype):
    """Addresses of qtype in a reply; None when the reply is not usable (wrong id,
    truncated, malformed); [] for an answer without any (e.g. NXDOMAIN)."""
    if len(m) < 12 or int.from_bytes(m[0:2], "big") != qid or not m[2] & 0x80:
        return None
    if m[2] & 0x02:  # TC: truncated over UDP
        return None
    rcode = m[3] & 0x0F
    if rcode == 3:
        return []  # NXDOMAIN
    if rcode:
        return None
    qd = int.from_bytes(m[4:6], "big")
    an = int.from_bytes(m[6:8], "big")
    i = 12
    for _ in range(qd):
        i = _skip_name(m, i) + 4
    out = []
    for _ in range(an):
        i = _skip_name(m, i)
        typ = int.from_bytes(m[i:i + 2], "big")
        rdlen = int.from_bytes(m[i + 8:i + 10], "big")
        rd = m[i + 10:i + 10 + rdlen]
        i += 10 + rdlen
        if i > len(m):
            return None
        if typ == A and qtype == A and rdlen == 4:
            out.append("%d.%d.%d.%d" % (rd[0], rd[1], rd[2], rd[3]))
        elif typ == AAAA and qtype == AAAA and rdlen == 16:
            out.append(v6_text(rd))
    return out


def v6_text(b):
    """RFC 5952 text of 16 address bytes (the ESP32's socket module has no inet_ntop)."""
    g = [(b[i] << 8) | b[i + 1] for i in range(0, 16, 2)]
    best, blen, i = -1, 1, 0
    while i < 8:  # the longest run of zero groups (at least two) becomes "::"
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > blen:
                best, blen = i, j - i
            i = j
        else:
            i += 1
    h = ["%x" % x for x in g]
    if best < 0:
        return ":".join(h)
    return ":".join(h[:best]) + "::" + ":".join(h[best + blen:])


def _ask(eng, server, name, qtype, deadline):
    """Generator: one question to one server; the addresses, [] or None."""
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        qid = int.from_bytes(os.urandom(2), "big")
        s.sendto(_query(qid, name, qtype), socket.getaddrinfo(server, 53, fam)[0][-1])
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return None
            ev = yield eng.readable(s, min(left, TRY_MS))
            if not ev:
                return None
            try:
                m = sock.datagram(s)
            except OSError:
                return None
            if m is None:
                continue
            r = parse(m, qid, qtype)
            if r is not None or int.from_bytes(m[0:2], "big") == qid:
                return r
    except (OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def lookup(eng, name, prefer=1, timeout_ms=0):
    """Generator: the addresses of name. prefer as AT+CIPDOMAIN's <ip network>:
    1 IPv4 first (then IPv6), 2 IPv4 only, 3 IPv6 only. ERROR if none."""
    order = (AAAA,) if prefer == 3 else ((A,) if prefer == 2 else (A, AAAA))
    deadline = time.ticks_add(time.ticks_ms(), timeout_ms or DEFAULT_MS)  # for the whole lookup
    for qtype in order:
        lit = literal(name, qtype)
        if lit is not None:
            if lit:
                return lit
            continue
        srv = servers(eng)
        done = False
        for attempt in range(2):  # every server in turn, twice
            for server in srv:
                r = yield from _ask(eng, server, name, qtype, deadline)
                if r:
                    return r
                # An answer without addresses (NXDOMAIN) ends it; so does the deadline.
                if r is not None or time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    done = True
                    break
            if done:
                break
    eng.log.write("at-net: unknown host: %s\n" % name)
    raise fail(EXEC_FAIL, E_DNS_NOT_FOUND)
