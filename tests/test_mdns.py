"""AT+MDNS against a real mDNS stack (python-zeroconf), inside a private network
namespace with multicast on loopback (never on the machine's own network).

The virtual board runs in the namespace (`ip netns exec`); zeroconf's sockets
are made in the namespace by a thread that joined it with setns(2), and stay
there whatever thread uses them. Tests that need the namespace skip without
root or iproute2; the packet code (lib/at/mdns.py) is also checked directly
under CPython at the end (zeroconf's packets, fuzzing).
"""
import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
import serial

import netns
from board import ROOT, Dut, VirtualBoard
from peers import wait_for

zeroconf = pytest.importorskip("zeroconf")
from zeroconf import (  # noqa: E402
    AddressResolver,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)

LIB = ROOT / "lib"
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))
from at import mdns  # noqa: E402  (the protocol module imports under CPython too)

CLONE_NEWNET = 0x40000000
BOARD_IP = "127.0.0.1"
V6_1 = "240e:1234:204c:bd02:d80f:8c45:3576:2574"
V6_2 = "240e:1234:204c:bd02:f043:47f0:7c39:2"


def in_ns(ns, fn):
    """fn() run by a thread inside the namespace; its result (or exception)."""
    out = {}

    def run():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/var/run/netns/" + ns.name, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out["r"] = fn()
        except BaseException as e:  # handed to the caller
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["r"]


@pytest.fixture(scope="module")
def ns_board(tmp_path_factory, opts):
    if opts.port:
        pytest.skip("host-only: the virtual board runs inside a namespace")
    if not netns.available():
        pytest.skip("needs root and iproute2 for a network namespace")
    ns = netns.Netns("atmdns%d" % os.getpid())
    try:
        d = tmp_path_factory.mktemp("mdnsboard")
        vb = VirtualBoard(d / "flash", d / "log.txt", prefix=ns.prefix)
        try:
            ser = serial.serial_for_url(vb.path, 115200, timeout=0.1)
            yield ns, Dut(ser), vb
            ser.close()
        finally:
            vb.close()
    finally:
        ns.close()


@pytest.fixture
def board(ns_board):
    """The board restored to factory settings, echo off, not joined."""
    ns, d, vb = ns_board
    d.drain()
    d.reset()
    d.ok("ATE0")
    return d


@pytest.fixture
def joined(board, opts):
    board.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    return board


@pytest.fixture
def zc(ns_board):
    """A zeroconf instance on the namespace's loopback, fresh for each test (so
    nothing a previous board left in its cache is seen)."""
    ns = ns_board[0]
    z = in_ns(ns, lambda: Zeroconf(interfaces=[BOARD_IP]))
    yield z
    z.close()


def info(type_, name, port, props=None, server="zc-host.local.", addrs=(BOARD_IP,)):
    return ServiceInfo(type_, "%s.%s" % (name, type_), port=port, properties=props or {},
                       server=server, parsed_addresses=list(addrs))


def norm(r):
    """r with each run of AAAA= lines sorted: zeroconf sends a host's addresses
    in no fixed order, and the board prints them in the order they came."""
    lines = r.split(b"\r\n")
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].startswith(b"AAAA="):
            j += 1
        lines[i:j] = sorted(lines[i:j])
        i = j + 1
    return b"\r\n".join(lines)


def block(*lines):
    """The bytes of one +MDNS result as the spec's example prints it."""
    body = "".join(x + "\r\n" for x in lines)
    return ("+MDNS:%d,\r\n" % len(body.encode()) + body).encode()


def dns_query(qid, name, *types):
    """A plain DNS question (one-shot mDNS querier)."""
    q = struct.pack(">HHHHHH", qid, 0, len(types), 0, 0, 0)
    n = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    return q + b"".join(n + struct.pack(">HH", t, 1) for t in types)


class Seen:
    """What a ServiceBrowser reported, by instance name."""

    def __init__(self):
        self.cv = threading.Condition()
        self.events = []

    def handler(self, zeroconf, service_type, name, state_change):
        with self.cv:
            self.events.append((name, state_change))
            self.cv.notify_all()

    def wait(self, name, change, timeout=10):
        with self.cv:
            ok = self.cv.wait_for(lambda: (name, change) in self.events, timeout)
        assert ok, "no %s for %s; saw %r" % (change, name, self.events)


# -- mode 1: the board announces a service -------------------------------------------------------------
@pytest.mark.timeout(60)
def test_service_seen_by_zeroconf(joined, zc):
    joined.ok('AT+MDNS=1,"espressif","_printer",35,"my_instance","_tcp",2,'
              '"product","my_printer","firmware_version","AT-V3.4.1.0"')
    seen = Seen()
    browser = ServiceBrowser(zc, "_printer._tcp.local.", handlers=[seen.handler])
    try:
        seen.wait("my_instance._printer._tcp.local.", ServiceStateChange.Added)
    finally:
        browser.cancel()
    i = zc.get_service_info("_printer._tcp.local.", "my_instance._printer._tcp.local.", timeout=5000)
    assert i is not None
    assert i.port == 35
    assert i.server == "espressif.local."
    assert i.properties == {b"product": b"my_printer", b"firmware_version": b"AT-V3.4.1.0"}
    assert i.parsed_addresses() == [BOARD_IP]


@pytest.mark.timeout(60)
def test_defaults_instance_is_hostname_proto_tcp(joined, zc):
    joined.ok('AT+MDNS=1,"espressif","_iot",8080')
    i = zc.get_service_info("_iot._tcp.local.", "espressif._iot._tcp.local.", timeout=5000)
    assert i is not None
    assert i.port == 8080
    assert i.server == "espressif.local."
    assert i.properties in ({}, {b"": None})  # an empty TXT is one empty string (RFC 6763 6.1)
    assert i.parsed_addresses() == [BOARD_IP]


@pytest.mark.timeout(60)
def test_udp_proto_and_fresh_query(joined, zc):
    joined.ok('AT+MDNS=1,"dev1","_echo",7,,"_udp",1,"k","v"')
    time.sleep(3.5)  # the announcements are over: what follows is answered to a query
    i = zc.get_service_info("_echo._udp.local.", "dev1._echo._udp.local.", timeout=5000)
    assert i is not None and i.port == 7 and i.properties == {b"k": b"v"}


@pytest.mark.timeout(60)
def test_hostname_resolves(joined, zc):
    joined.ok('AT+MDNS=1,"espressif","_iot",8080')
    time.sleep(3.5)  # the announcements are over: what follows is answered to a query
    r = AddressResolver("espressif.local.")
    assert r.request(zc, 5000)
    assert r.parsed_addresses() == [BOARD_IP]


@pytest.mark.timeout(60)
def test_one_shot_query_answered_by_unicast(ns_board, joined):
    """A querier on a port other than 5353 (dig -p 5353 @224.0.0.251) gets a
    unicast answer with its ID and question, TTLs of at most 10 s and no
    cache-flush bit (RFC 6762 6.7); a PTR brings SRV, TXT and A along."""
    from zeroconf import DNSIncoming
    joined.ok('AT+MDNS=1,"espressif","_iot",8080,"inst","_tcp",1,"a","b"')
    q = in_ns(ns_board[0], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    q.settimeout(2)
    try:
        q.sendto(dns_query(0xBEEF, "_iot._tcp.local", 12), ("224.0.0.251", 5353))
        r, src = q.recvfrom(2000)
        joined.ok("AT+MDNS=0")  # off: the same question gets no answer
        q.settimeout(1)
        q.sendto(dns_query(0xBEEF, "_iot._tcp.local", 12), ("224.0.0.251", 5353))
        with pytest.raises(socket.timeout):
            q.recvfrom(2000)
    finally:
        q.close()
    assert src == (BOARD_IP, 5353)
    m = DNSIncoming(r)
    assert m.valid and m.id == 0xBEEF and m.is_response()
    assert [(x.name, x.type) for x in m.questions] == [("_iot._tcp.local.", 12)]
    got = {(x.name, x.type): x for x in m.answers()}
    assert set(got) == {("_iot._tcp.local.", 12), ("inst._iot._tcp.local.", 33),
                        ("inst._iot._tcp.local.", 16), ("espressif.local.", 1)}
    assert all(x.ttl <= 10 and not x.unique for x in got.values())
    assert got[("_iot._tcp.local.", 12)].alias == "inst._iot._tcp.local."
    assert got[("inst._iot._tcp.local.", 33)].port == 8080
    assert got[("espressif.local.", 1)].address == socket.inet_aton(BOARD_IP)


@pytest.mark.timeout(60)
def test_goodbye_on_mode_0(joined, zc):
    joined.ok('AT+MDNS=1,"espressif","_iot",8080,"bye_instance"')
    seen = Seen()
    browser = ServiceBrowser(zc, "_iot._tcp.local.", handlers=[seen.handler])
    try:
        seen.wait("bye_instance._iot._tcp.local.", ServiceStateChange.Added)
        joined.ok("AT+MDNS=0")
        seen.wait("bye_instance._iot._tcp.local.", ServiceStateChange.Removed, timeout=5)
    finally:
        browser.cancel()
    joined.ok("AT+MDNS=0")  # already off: still OK


@pytest.mark.timeout(60)
def test_started_before_wifi_announces_on_got_ip(board, zc, opts):
    board.ok('AT+MDNS=1,"late","_iot",81')
    seen = Seen()
    browser = ServiceBrowser(zc, "_iot._tcp.local.", handlers=[seen.handler])
    try:
        time.sleep(1)  # the window in which nothing may be announced (the browser records what comes)
        assert not seen.events
        board.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
        seen.wait("late._iot._tcp.local.", ServiceStateChange.Added)
    finally:
        browser.cancel()


@pytest.mark.timeout(60)
@pytest.mark.ipv6
def test_aaaa_with_ipv6(board, zc, opts):
    board.ok("AT+CIPV6=1")
    board.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    board.ok('AT+MDNS=1,"six","_iot",8080')
    i = zc.get_service_info("_iot._tcp.local.", "six._iot._tcp.local.", timeout=5000)
    assert i is not None
    # The virtual board's global IPv6 address is ::1 ($VBOARD_IP6), its
    # link-local one fe80::ff:fe00:1 (tests: lib/at/ports/unix.py).
    assert sorted(i.parsed_addresses()) == sorted([BOARD_IP, "::1", "fe80::ff:fe00:1"])


# -- mode 2: the board queries ----------------------------------------------------------------------------
@pytest.fixture
def printer(zc):
    """The spec's example service (avahi-publish -s my_instance _my_printer._tcp 35 "version=v4.1.0.0")."""
    i = info("_my_printer._tcp.local.", "my_instance", 35, {"version": "v4.1.0.0"},
             server="espressif-1.local.", addrs=(BOARD_IP, V6_1, V6_2))
    zc.register_service(i, strict=False)
    yield i
    zc.unregister_service(i)


SPEC_BLOCK = block("IF=1", "IP=0", "PTR=my_instance", "SRV=espressif-1.local:35", "TXT=version=v4.1.0.0",
                   "A=127.0.0.1", "AAAA=240e:1234:204c:bd02:d80f:8c45:3576:2574",
                   "AAAA=240e:1234:204c:bd02:f043:47f0:7c39:0002")


@pytest.mark.timeout(60)
def test_query_ptr_prints_the_spec_block(joined, printer):
    t = time.monotonic()
    r = joined.cmd('AT+MDNS=2,0,"_my_printer","_tcp"', timeout=10)
    assert norm(r) == norm(SPEC_BLOCK + b"\r\nOK\r\n")
    assert time.monotonic() - t < 2.5  # max_results (1) reached: no wait for the timeout


@pytest.mark.timeout(60)
def test_query_txt(joined, printer):
    r = joined.cmd('AT+MDNS=2,1,"my_instance","_my_printer","_tcp"', timeout=10)
    assert r == block("IF=1", "IP=0", "PTR=my_instance", "TXT=version=v4.1.0.0") + b"\r\nOK\r\n"


@pytest.mark.timeout(60)
def test_query_srv(joined, printer):
    r = joined.cmd('AT+MDNS=2,2,"my_instance","_my_printer","_tcp"', timeout=10)
    assert r.endswith(b"\r\nOK\r\n")
    assert r.startswith(b"+MDNS:")
    assert b"PTR=my_instance\r\nSRV=espressif-1.local:35\r\n" in r
    assert b"A=127.0.0.1\r\n" in r
    assert b"TXT=" not in r  # only SRV was asked (with its host's addresses)
    assert r.count(b"+MDNS:") == 1


@pytest.mark.timeout(60)
def test_query_txt_and_srv(joined, printer):
    r = joined.cmd('AT+MDNS=2,3,"my_instance","_my_printer","_tcp"', timeout=10)
    assert norm(r) == norm(SPEC_BLOCK + b"\r\nOK\r\n")


@pytest.mark.timeout(60)
def test_query_a_aaaa(joined, printer):
    r = joined.cmd('AT+MDNS=2,4,"espressif-1"', timeout=10)
    assert r == block("IF=1", "IP=0", "A=127.0.0.1") + b"\r\nOK\r\n"
    r = joined.cmd('AT+MDNS=2,5,"espressif-1"', timeout=10)
    assert norm(r) == block("IF=1", "IP=0", "AAAA=240e:1234:204c:bd02:d80f:8c45:3576:2574",
                      "AAAA=240e:1234:204c:bd02:f043:47f0:7c39:0002") + b"\r\nOK\r\n"
    r = joined.cmd('AT+MDNS=2,6,"espressif-1.local",3000,1', timeout=10)
    assert norm(r) == block("IF=1", "IP=0", "A=127.0.0.1", "AAAA=240e:1234:204c:bd02:d80f:8c45:3576:2574",
                      "AAAA=240e:1234:204c:bd02:f043:47f0:7c39:0002") + b"\r\nOK\r\n"


@pytest.fixture
def three(zc):
    infos = [info("_multi._tcp.local.", "inst%d" % n, 1000 + n, {"n": str(n)}, server="h%d.local." % n)
             for n in range(3)]
    for i in infos:
        zc.register_service(i, strict=False)
    yield infos
    for i in infos:
        zc.unregister_service(i)


def blocks(r):
    """The +MDNS blocks of a reply, checked against their <data_len>."""
    out = []
    assert r.endswith(b"\r\nOK\r\n"), r
    rest = r[:-6]
    while rest:
        assert rest.startswith(b"+MDNS:"), rest
        head, rest = rest.split(b",\r\n", 1)
        n = int(head[6:])
        out.append(rest[:n])
        rest = rest[n:]
    return out


@pytest.mark.timeout(60)
def test_query_max_results(joined, three):
    t = time.monotonic()
    got = blocks(joined.cmd('AT+MDNS=2,0,"_multi","_tcp",10000,3', timeout=15))
    assert time.monotonic() - t < 5  # all three came: no wait for the 10 s timeout
    assert sorted(b.split(b"\r\n")[2] for b in got) == [b"PTR=inst0", b"PTR=inst1", b"PTR=inst2"]
    for b in got:
        n = b.split(b"\r\n")[2][-1:]
        assert b == block("IF=1", "IP=0", "PTR=inst" + n.decode(), "SRV=h%s.local:100%s" % (n.decode(), n.decode()),
                          "TXT=n=" + n.decode(), "A=127.0.0.1")[len(b"+MDNS:00,\r\n"):]
    assert len(blocks(joined.cmd('AT+MDNS=2,0,"_multi","_tcp",10000,2', timeout=15))) == 2
    assert len(blocks(joined.cmd('AT+MDNS=2,0,"_multi","_tcp"', timeout=15))) == 1


@pytest.mark.timeout(60)
def test_query_fewer_than_max_waits_for_timeout(joined, three):
    t = time.monotonic()
    got = blocks(joined.cmd('AT+MDNS=2,0,"_multi","_tcp",2000,5', timeout=15))
    dt = time.monotonic() - t
    assert len(got) == 3
    assert 1.9 < dt < 4


@pytest.mark.timeout(60)
def test_query_nothing_there_errors_after_timeout(joined, zc):
    t = time.monotonic()
    joined.error('AT+MDNS=2,0,"_nothing","_tcp",1000', timeout=10)
    assert 0.9 < time.monotonic() - t < 3
    joined.error('AT+MDNS=2,4,"nobody",1000', timeout=10)
    joined.ok("AT+SYSLOG=1")
    r = joined.error('AT+MDNS=2,1,"x","_nothing","_tcp",1000', timeout=10)
    assert b"ERR CODE:0x010a0061" in r


@pytest.mark.timeout(60)
def test_query_long_names_are_truncated(joined, zc):
    i = info("_trunc._tcp.local.", "a" * 63, 9, {"t": "1"})
    zc.register_service(i, strict=False)
    try:
        r = joined.cmd('AT+MDNS=2,1,"%s","_trunc","_tcp"' % ("a" * 70), timeout=10)
        assert r == block("IF=1", "IP=0", "PTR=" + "a" * 63, "TXT=t=1") + b"\r\nOK\r\n"
    finally:
        zc.unregister_service(i)


@pytest.mark.timeout(60)
def test_board_finds_its_own_service_while_zeroconf_runs(joined, printer):
    joined.ok('AT+MDNS=1,"espressif","_iot",8080,"self","_tcp",1,"a","b"')
    r = joined.cmd('AT+MDNS=2,0,"_iot","_tcp",3000', timeout=10)
    assert r == block("IF=1", "IP=0", "PTR=self", "SRV=espressif.local:8080", "TXT=a=b",
                      "A=127.0.0.1") + b"\r\nOK\r\n"
    # and the network still sees the board and zeroconf's service
    r = joined.cmd('AT+MDNS=2,0,"_my_printer","_tcp"', timeout=10)
    assert norm(r) == norm(SPEC_BLOCK + b"\r\nOK\r\n")


# -- argument checks ------------------------------------------------------------------------------------
BAD = [
    "AT+MDNS=3", "AT+MDNS=-1", 'AT+MDNS="1"', "AT+MDNS=", "AT+MDNS?", "AT+MDNS=?", "AT+MDNS",
    # mode 0 takes nothing else
    'AT+MDNS=0,"espressif"', "AT+MDNS=0,1",
    # mode 1: hostname, service type and port are required
    "AT+MDNS=1", 'AT+MDNS=1,"h"', 'AT+MDNS=1,"h","_s"', 'AT+MDNS=1,"h",,80', 'AT+MDNS=1,,"_s",80',
    'AT+MDNS=1,"h","_s","80"', 'AT+MDNS=1,"h","_s",65536', 'AT+MDNS=1,"h","_s",-1',
    'AT+MDNS=1,"","_s",80', 'AT+MDNS=1,"h","",80',
    'AT+MDNS=1,"%s","_s",80' % ("h" * 64), 'AT+MDNS=1,"h","%s",80' % ("_" + "s" * 63),
    'AT+MDNS=1,"h","_s",80,"%s"' % ("i" * 64), 'AT+MDNS=1,"h","_s",80,"i","%s"' % ("_" + "t" * 63),
    'AT+MDNS=1,"h.x","_s",80',
    # TXT: 1..20 pairs, exactly <txt_number> of them
    'AT+MDNS=1,"h","_s",80,"i","_tcp",0', 'AT+MDNS=1,"h","_s",80,"i","_tcp",21',
    'AT+MDNS=1,"h","_s",80,"i","_tcp",1', 'AT+MDNS=1,"h","_s",80,"i","_tcp",1,"k"',
    'AT+MDNS=1,"h","_s",80,"i","_tcp",1,"k","v","k2","v2"', 'AT+MDNS=1,"h","_s",80,"i","_tcp",,"k","v"',
    'AT+MDNS=1,"h","_s",80,"i","_tcp",2,"k","v","k2"', 'AT+MDNS=1,"h","_s",80,"i","_tcp",1,"","v"',
    'AT+MDNS=1,"h","_s",80,"i","_tcp",1,"k=","v"',
    # mode 2: per <type> its names, then <timeout> [1000,180000] and <max_results> [1,255]
    "AT+MDNS=2", "AT+MDNS=2,0", 'AT+MDNS=2,0,"_s"', 'AT+MDNS=2,7,"h"', 'AT+MDNS=2,-1,"h"',
    'AT+MDNS=2,1,"i","_s"', 'AT+MDNS=2,2,"i"', 'AT+MDNS=2,3,"i","_s"', "AT+MDNS=2,4", "AT+MDNS=2,5",
    'AT+MDNS=2,6,""', 'AT+MDNS=2,0,"_s","_tcp",999', 'AT+MDNS=2,0,"_s","_tcp",180001',
    'AT+MDNS=2,0,"_s","_tcp",1000,0', 'AT+MDNS=2,0,"_s","_tcp",1000,256', 'AT+MDNS=2,4,"h",1000,1,1',
    'AT+MDNS=2,1,"i","_s","_tcp",5000,1,9', 'AT+MDNS=2,4,"h","x"', 'AT+MDNS=2,4,".local"',
    'AT+MDNS=2,0,"_s",1', 'AT+MDNS=2,"0","_s","_tcp"',
]


@pytest.mark.timeout(120)
def test_bad_arguments(joined):
    for line in BAD:
        t = time.monotonic()
        joined.error(line)
        assert time.monotonic() - t < 1, line  # refused at once, nothing sent
    joined.ok("AT")


@pytest.mark.timeout(60)
def test_error_codes(joined):
    """With AT+SYSLOG=1 each refusal says why (esp_at_core.h's layout)."""
    joined.ok("AT+SYSLOG=1")
    for line, want in [
        ("AT+MDNS=3", 0x01070000),  # parameter 0 out of range
        ('AT+MDNS=1,"h"', 0x01062f02),  # wrong number of parameters
        ('AT+MDNS=1,"%s","_s",80' % ("h" * 64), 0x01040001),  # parameter 1 too long
        ('AT+MDNS=1,"h","_s",70000', 0x01070003),
        ('AT+MDNS=1,"h","_s",80,"i","_tcp",1,"k=","v"', 0x01070007),
        ('AT+MDNS=2,0,"_s","_tcp",999', 0x01070004),
        ('AT+MDNS=2,4,"h",1000,256', 0x01070004),
        ("AT+MDNS=0,1", 0x01060102),
    ]:
        r = joined.error(line)
        assert b"ERR CODE:0x%08x" % want in r, (line, r)


@pytest.mark.timeout(60)
def test_longest_accepted_values(joined, zc):
    host, inst = "h" * 63, "i" * 63
    joined.ok('AT+MDNS=1,"%s","_s",80,"%s","_tcp",1,"k","%s"' % (host, inst, "v" * 60))
    i = zc.get_service_info("_s._tcp.local.", "%s._s._tcp.local." % inst, timeout=5000)
    assert i is not None and i.server == host + ".local." and i.properties == {b"k": b"v" * 60}


@pytest.mark.timeout(60)
def test_twenty_txt_pairs(joined, zc):
    pairs = ",".join('"k%d","%d"' % (n, n) for n in range(20))
    joined.ok('AT+MDNS=1,"t","_t",1,"t","_tcp",20,' + pairs)
    i = zc.get_service_info("_t._tcp.local.", "t._t._tcp.local.", timeout=5000)
    assert i is not None and i.properties == {("k%d" % n).encode(): str(n).encode() for n in range(20)}


@pytest.mark.timeout(60)
def test_start_twice_is_an_error(joined):
    joined.ok('AT+MDNS=1,"espressif","_iot",8080')
    joined.error('AT+MDNS=1,"other","_iot",8080')
    joined.ok("AT+MDNS=0")
    joined.ok('AT+MDNS=1,"other","_iot",8080')
    joined.ok("AT+MDNS=0")


@pytest.mark.timeout(60)
def test_query_without_wifi_is_an_error(board):
    t = time.monotonic()
    board.error('AT+MDNS=2,0,"_iot","_tcp"')
    assert time.monotonic() - t < 1


@pytest.mark.timeout(60)
def test_board_stays_responsive_during_query(joined, zc):
    """A query waits inside the loop: other lines get busy p..., as ESP-AT answers them."""
    t = time.monotonic()
    joined.write(b'AT+MDNS=2,0,"_none","_tcp",1500\r\n')
    time.sleep(0.3)  # the query is under way (it prints nothing) when the AT comes
    joined.write(b"AT\r\n")
    assert joined.read_until(b"\r\nbusy p...\r\n", timeout=1) == b"\r\nbusy p...\r\n"
    assert joined.read_until(b"\r\nERROR\r\n", timeout=5) == b"\r\nERROR\r\n"
    assert time.monotonic() - t >= 1.4
    joined.ok("AT")


# -- IPv6: ff02::fb --------------------------------------------------------------------------------------
# Linux does not loop IPv6 multicast back on lo, so these tests add a veth pair
# to the namespace: the board joins ff02::fb on the interface the kernel picks,
# and the test's socket joins on both ends.
def sh(ns, *cmd):
    subprocess.run(ns.prefix + list(cmd), check=True, capture_output=True)


@pytest.fixture
def veth(ns_board):
    ns = ns_board[0]
    sh(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
    sh(ns, "ip", "link", "add", "mv0", "type", "veth", "peer", "name", "mv1")
    try:
        for dev in ("mv0", "mv1"):
            sh(ns, "ip", "link", "set", dev, "up")
        idx = in_ns(ns, lambda: [socket.if_nametoindex(d) for d in ("mv0", "mv1")])
        # the link-local addresses come with the carrier
        wait_for(lambda: in_ns(ns, lambda: open("/proc/net/if_inet6").read()).count("fe80") >= 2, 5, 0.1)
        yield ns, idx
    finally:
        sh(ns, "ip", "link", "del", "mv0")


def v6_listener(ns, idx):
    def make():
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", 5353))
        for i in idx:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         socket.inet_pton(socket.AF_INET6, "ff02::fb") + struct.pack("@I", i))
        s.settimeout(0.5)
        return s
    return in_ns(ns, make)


@pytest.mark.timeout(60)
@pytest.mark.ipv6
def test_ipv6_announce_answer_and_query(board, opts, veth):
    ns, idx = veth
    lis = v6_listener(ns, idx)
    q = in_ns(ns, lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    q.settimeout(2)
    try:
        board.ok("AT+CIPV6=1")
        board.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
        board.ok('AT+MDNS=1,"six","_iot",8080,"six6","_tcp",1,"v","6"')
        # The announcement reaches ff02::fb, with the board's addresses.
        deadline = time.monotonic() + 5
        got = b""
        while time.monotonic() < deadline and b"\x03six\x05local" not in got:
            try:
                got = lis.recvfrom(2000)[0]
            except socket.timeout:
                pass
        assert got[2] & 0x80 and b"\x03six\x05local" in got
        assert socket.inet_pton(socket.AF_INET6, "::1") in got and bytes([127, 0, 0, 1]) in got
        # A one-shot query over IPv6 is answered by unicast, with its ID.
        q.sendto(dns_query(0x1234, "six.local", 1, 28), ("ff02::fb", 5353, 0, idx[1]))
        r = q.recvfrom(2000)[0]
        assert r[:2] == b"\x12\x34" and r[2] & 0x80
        assert socket.inet_pton(socket.AF_INET6, "::1") in r and bytes([127, 0, 0, 1]) in r
        # The board's own query goes out over both versions: one result each.
        res = blocks(board.cmd('AT+MDNS=2,0,"_iot","_tcp",3000,2', timeout=10))
        body = ("PTR=six6\r\nSRV=six.local:8080\r\nTXT=v=6\r\nA=127.0.0.1\r\n"
                "AAAA=fe80:0000:0000:0000:0000:00ff:fe00:0001\r\nAAAA=0000:0000:0000:0000:0000:0000:0000:0001\r\n")
        assert res == [("IF=1\r\nIP=0\r\n" + body).encode(), ("IF=1\r\nIP=1\r\n" + body).encode()]
    finally:
        lis.close()
        q.close()


# -- the packet code under CPython (no board) ----------------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from zeroconf import DNSAddress, DNSIncoming, DNSOutgoing, DNSPointer, DNSQuestion, DNSService, DNSText  # noqa: E402

_IN, _FLUSH = 1, 0x8001


def zc_response(*records):
    out = DNSOutgoing(0x8400, multicast=False, id_=7)
    for r in records:
        out.add_answer_at_time(r, 0)
    return out.packets()[0]  # zeroconf compresses names, so pointers are exercised


@pytest.mark.timeout(30)
def test_found_reads_zeroconf_packets():
    inst = "My Printer 2._ipp._tcp.local."  # an instance label with a space
    pkt = zc_response(
        DNSPointer("_ipp._tcp.local.", 12, _IN, 4500, inst),
        DNSService(inst, 33, _FLUSH, 120, 0, 0, 631, "Host-1.local."),
        DNSText(inst, 16, _FLUSH, 4500, b"\x06txtv=1\x00\x0anote=a=b c"),
        DNSAddress("host-1.local.", 1, _FLUSH, 120, socket.inet_aton("10.0.0.7")),
        DNSAddress("host-1.local.", 28, _FLUSH, 120, socket.inet_pton(socket.AF_INET6, "fe80::1:2")),
        DNSAddress("host-1.local.", 1, _FLUSH, 0, socket.inet_aton("10.0.0.9")),  # a goodbye: ignored
    )
    f = mdns.Found()
    name = [b"_IPP", b"_tcp", b"local"]  # names compare without case
    f.add(pkt, mdns.key(name), 5)
    assert mdns.results(0, name, [f, None]) == [
        "IF=1\r\nIP=0\r\nPTR=My Printer 2\r\nSRV=Host-1.local:631\r\nTXT=txtv=1\r\nTXT=note=a=b c\r\n"
        "A=10.0.0.7\r\nAAAA=fe80:0000:0000:0000:0000:0000:0001:0002\r\n"]
    assert mdns.count(0, name, [f]) == 1
    assert mdns.results(0, name, [None, f])[0].startswith("IF=1\r\nIP=1\r\n")
    assert mdns.results(1, [b"My Printer 2"] + name, [f, None])[0].count("\r\n") == 8
    assert mdns.results(4, [b"host-1", b"local"], [f, None]) == ["IF=1\r\nIP=0\r\nA=10.0.0.7\r\n"]
    assert mdns.results(5, [b"host-1", b"local"], [f, None]) == [
        "IF=1\r\nIP=0\r\nAAAA=fe80:0000:0000:0000:0000:0000:0001:0002\r\n"]
    assert mdns.results(4, [b"nobody", b"local"], [f, None]) == []
    g = mdns.Found()
    g.add(pkt, mdns.key(name), 0)  # no room: no PTR result is kept
    assert g.ptr == []


@pytest.mark.timeout(30)
def test_addresses_text():
    for a in ["::", "::1", "fe80::1:2", "2001:db8::", "1:2:3:4:5:6:7:8", "::ffff:1.2.3.4",
              "240e:1234:204c:bd02:f043:47f0:7c39:2"]:
        b = mdns.v6_bytes(a)
        assert b == socket.inet_pton(socket.AF_INET6, a)
        assert mdns.v6_full(b) == ":".join(socket.inet_pton(socket.AF_INET6, a)[i:i + 2].hex() for i in range(0, 16, 2))
    assert mdns.v6_full(mdns.v6_bytes("240e:1234:204c:bd02:f043:47f0:7c39:2")) == \
        "240e:1234:204c:bd02:f043:47f0:7c39:0002"  # as the spec's example prints it
    with pytest.raises(ValueError):
        mdns.v6_bytes("1:2:3")
    assert mdns.src_port(("192.168.1.2", 5353)) == 5353  # the ESP32 port's recvfrom address
    assert mdns.src_port(b"\x02\x00\x14\xe9\x7f\x00\x00\x01" + bytes(8)) == 5353  # the unix port's


class _Sock:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((bytes(data), addr))


class _At:
    log = sys.stderr


def _responder():
    r = mdns.Responder(_At(), "espressif", "_iot", 8080, "inst", "_tcp", [("a", "b")])
    r._addresses(("192.168.4.2", "fe80::1"))
    r.s4 = _Sock()
    return r


@pytest.mark.timeout(30)
def test_responder_answers_zeroconf_questions():
    r = _responder()
    q = DNSOutgoing(0, multicast=True)
    q.add_question(DNSQuestion("_IOT._tcp.local.", 12, _IN | 0x8000))  # a QU question, other case
    r._question(r.s4, q.packets()[0], ("192.168.4.9", 5353))
    (pkt, dest), = r.s4.sent
    assert dest == mdns.group_addr(socket.AF_INET)
    m = DNSIncoming(pkt)
    assert m.valid and m.is_response() and m.id == 0
    assert [(x.name, x.type) for x in m.answers()][:1] == [("_iot._tcp.local.", 12)]
    assert {(x.name, x.type, x.unique) for x in m.answers()[1:]} == {
        ("inst._iot._tcp.local.", 33, True), ("inst._iot._tcp.local.", 16, True),
        ("espressif.local.", 1, True), ("espressif.local.", 28, True)}
    # An ANY question for the host from a one-shot querier: A and AAAA, unicast, its ID.
    r.s4.sent.clear()
    q = DNSOutgoing(0, multicast=False, id_=99)
    q.add_question(DNSQuestion("espressif.local.", 255, _IN))
    r._question(r.s4, q.packets()[0], ("192.168.4.9", 40000))
    (pkt, dest), = r.s4.sent
    assert dest == ("192.168.4.9", 40000)
    m = DNSIncoming(pkt)
    assert m.id == 99 and [x.name for x in m.questions] == ["espressif.local."]
    assert {(x.type, x.ttl) for x in m.answers()} == {(1, 10), (28, 10)}
    # Questions for other names, and responses, are not answered.
    r.s4.sent.clear()
    q = DNSOutgoing(0, multicast=True)
    q.add_question(DNSQuestion("other.local.", 1, _IN))
    r._question(r.s4, q.packets()[0], ("192.168.4.9", 5353))
    r._question(r.s4, zc_response(DNSAddress("espressif.local.", 1, _FLUSH, 120, bytes(4))), ("192.168.4.9", 5353))
    assert r.s4.sent == []


def _mutations(draw_base):
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(draw_base), st.integers(0, 400), st.binary(min_size=1, max_size=4)).map(
            lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):]),
        st.tuples(st.sampled_from(draw_base), st.integers(0, 400)).map(lambda t: t[0][:t[1]]),
    )


_q = DNSOutgoing(0, multicast=True)
_q.add_question(DNSQuestion("_iot._tcp.local.", 12, _IN))
_q.add_question(DNSQuestion("espressif.local.", 255, _IN))
_BASES = [_q.packets()[0], zc_response(
    DNSPointer("_iot._tcp.local.", 12, _IN, 4500, "x._iot._tcp.local."),
    DNSService("x._iot._tcp.local.", 33, _FLUSH, 120, 0, 0, 1, "h.local."),
    DNSText("x._iot._tcp.local.", 16, _FLUSH, 4500, b"\x03a=b"),
    DNSAddress("h.local.", 1, _FLUSH, 120, bytes(4)))]


@pytest.mark.timeout(120)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(_BASES))
def test_malformed_packets_raise_only_what_the_readers_catch(m):
    """Whatever arrives, the readers see ValueError or IndexError at worst (and
    both catch those), never a hang: pointers and labels are bounded."""
    r = _responder()
    for call in (lambda: r._question(r.s4, m, ("1.2.3.4", 5353)),
                 lambda: r._question(r.s4, m, ("1.2.3.4", 1234)),
                 lambda: mdns.Found().add(m, b"_iot._tcp.local", 5)):
        try:
            call()
        except (ValueError, IndexError):
            pass
