# AT+PING (TCP-IP_AT_Commands.rst): one ICMP echo to an IPv4/IPv6 address or a
# name (resolved through at/dns.py, IPv4 first). Raw ICMP sockets where the
# port allows them (the ESP32 has SOCK_RAW; the virtual board needs root), else
# the unprivileged ICMP datagram socket; when neither opens, ERROR with a clear
# ERR CODE: never a made-up time. The wait yields to the loop.
import os
import socket
import time
from at import parse, dns, caps
from at.errors import ATError, fail, not_here, EXEC_FAIL, E_PING_NO_ICMP
from at.commands import row

TIMEOUT_MS = 3000
PAYLOAD = b"micropython-at-ping-0123456789ab"  # 32 bytes, like ESP-IDF's default
_TIMEOUT = ["+PING:TIMEOUT"]


def _checksum(b):
    s = 0
    for i in range(0, len(b) - 1, 2):
        s += (b[i] << 8) | b[i + 1]
    if len(b) & 1:
        s += b[-1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _open(v6):
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    proto = 58 if v6 else 1  # IPPROTO_ICMPV6, IPPROTO_ICMP
    for typ in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        try:
            return socket.socket(fam, typ, proto), typ == socket.SOCK_RAW
        except OSError:
            pass
    return None, False


def s_ping(eng, a):
    parse.count(a, 1, 1)
    return _ping(eng, parse.text(a, 0, 64, minlen=1))


def _ping(eng, host):
    try:
        ips = yield from dns.lookup(eng, host, 1)
    except ATError as e:
        e.lines = _TIMEOUT  # the spec: a name that does not resolve is a TIMEOUT too
        raise
    ip = ips[0]
    v6 = ":" in ip
    if v6 and not caps.IPV6:
        raise not_here()  # no IPv6 sockets on this runtime
    s, raw = _open(v6)
    if s is None:
        eng.log.write("at: AT+PING: no ICMP socket (needs root or net.ipv4.ping_group_range)\n")
        raise fail(EXEC_FAIL, E_PING_NO_ICMP)
    try:
        s.setblocking(False)
        ident = int.from_bytes(os.urandom(2), "big")
        pkt = bytearray(b"\x80\x00\x00\x00" if v6 else b"\x08\x00\x00\x00")
        pkt += ident.to_bytes(2, "big") + b"\x00\x01" + PAYLOAD
        if not v6:  # the kernel fills in the ICMPv6 checksum
            pkt[2:4] = _checksum(pkt).to_bytes(2, "big")
        t0 = time.ticks_us()
        try:
            s.sendto(pkt, socket.getaddrinfo(ip, 0, socket.AF_INET6 if v6 else socket.AF_INET)[0][-1])
        except OSError:
            raise fail(EXEC_FAIL, 1, lines=_TIMEOUT)
        deadline = time.ticks_add(time.ticks_ms(), TIMEOUT_MS)
        reply = 129 if v6 else 0
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0 or not (yield eng.readable(s, left)):
                raise fail(EXEC_FAIL, 2, lines=_TIMEOUT)
            try:
                m, _ = s.recvfrom(256)
            except OSError:
                continue
            us = time.ticks_diff(time.ticks_us(), t0)
            if raw and not v6:
                m = m[(m[0] & 0x0F) * 4:]  # a raw IPv4 socket hands over the IP header too
            # A datagram ICMP socket rewrites the id: match on the payload instead.
            if len(m) >= 8 and m[0] == reply and m[6:8] == b"\x00\x01" and m[8:] == PAYLOAD and (
                    not raw or m[4:6] == pkt[4:6]):
                eng.reply("+PING:%d" % ((us + 999) // 1000))
                return
    finally:
        s.close()


COMMANDS = [
    row("+PING", set=s_ping),
]
