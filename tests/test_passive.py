"""Passive receive: AT+CIPRECVTYPE, AT+CIPRECVDATA, AT+CIPRECVLEN?, the +IPD
notice, the 5,760-byte window with TCP back-pressure, UDP drops, and CLOSED
only after the buffer is read."""
import os
import re
import socket
import threading
import time

import pytest

from peers import TcpServer, UdpEcho, hold, sha, wait_for


@pytest.fixture
def held(joined, host_ip):
    """A TCP peer the test drives itself; the board on link 0 (multi mode)."""
    srv = TcpServer(host_ip, hold)
    d = joined
    d.ok("AT+CIPMUX=1")
    yield d, srv
    srv.close()


def open_passive(d, srv, host_ip, lid=0):
    d.ok("AT+CIPRECVTYPE=%d,1" % lid)
    d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, srv.port))
    return srv.wait_conn()


def recvdata(d, line, dinfo=False):
    """Send AT+CIPRECVDATA and return (header, data). With AT+CIPDINFO=1 the
    header carries the remote, and is read to its end (on a paced line it
    arrives a byte at a time)."""
    d.write(line.encode() + b"\r\n")
    remote = rb"\"[^\"]*\",\d+," if dinfo else b""
    hdr = d.read_until(re.compile(rb"\+CIPRECVDATA:(\d+)," + remote), timeout=5)
    n = int(re.search(rb"\+CIPRECVDATA:(\d+),", hdr).group(1))
    data = d.read_exactly(n)
    assert d.read_until(b"\r\nOK\r\n") == b"\r\n\r\nOK\r\n"
    return hdr, data


def drain_passive(d, lid, total, chunk=2048, timeout=60):
    """Read `total` bytes with AT+CIPRECVDATA as a host would: read while data is
    there, wait for the next +IPD notice when the buffer is empty (ERROR)."""
    got = bytearray()
    notice = re.compile(rb"\+IPD,%d,\d+\r\n" % lid)
    deadline = time.monotonic() + timeout
    while len(got) < total:
        assert time.monotonic() < deadline
        d.write(b"AT+CIPRECVDATA=%d,%d\r\n" % (lid, chunk))
        r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"))
        if r.endswith(b"ERROR\r\n"):
            if not notice.search(r):
                d.read_until(notice, timeout=10)
            continue
        n = int(re.search(rb"\+CIPRECVDATA:(\d+),$", r).group(1))
        got += d.read_exactly(n)
        d.read_until(b"\r\nOK\r\n")
    return got


def test_recvtype_query_and_set(joined):
    d = joined
    assert d.cmd("AT+CIPRECVTYPE?") == b"+CIPRECVTYPE:0,0\r\n\r\nOK\r\n"
    d.ok("AT+CIPRECVTYPE=1")
    assert d.cmd("AT+CIPRECVTYPE?") == b"+CIPRECVTYPE:0,1\r\n\r\nOK\r\n"
    d.ok("AT+CIPRECVTYPE=0")
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPRECVTYPE=5,1")
    d.ok("AT+CIPRECVTYPE=2,0")
    assert d.cmd("AT+CIPRECVTYPE?") == (b"+CIPRECVTYPE:0,1\r\n+CIPRECVTYPE:1,1\r\n+CIPRECVTYPE:2,0\r\n"
                                        b"+CIPRECVTYPE:3,1\r\n+CIPRECVTYPE:4,1\r\n\r\nOK\r\n")
    for bad in ("AT+CIPRECVTYPE=6,1", "AT+CIPRECVTYPE=0,2", "AT+CIPRECVTYPE=0,1,2", "AT+CIPRECVTYPE=0"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad


def test_notice_read_and_repeat(held, host_ip):
    d, srv = held
    c = open_passive(d, srv, host_ip, 2)
    c.sendall(b"hello")
    assert d.read_until(b"+IPD,2,5\r\n") == b"\r\n+IPD,2,5\r\n"
    c.sendall(b"world!")
    # no second notice until the host reads
    assert d.quiet(0.3) == b""
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:-1,-1,11,-1,-1\r\n\r\nOK\r\n"
    hdr, data = recvdata(d, "AT+CIPRECVDATA=2,4")
    assert hdr == b"+CIPRECVDATA:4," and data == b"hell"
    # data is still waiting: a new notice with what is left
    assert d.read_until(b"+IPD,2,7\r\n") == b"\r\n+IPD,2,7\r\n"
    hdr, data = recvdata(d, "AT+CIPRECVDATA=2,100")
    assert data == b"oworld!"
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:-1,-1,0,-1,-1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPRECVDATA=2,100") == b"\r\nERROR\r\n"  # nothing to read
    c.sendall(b"again")
    assert d.read_until(b"+IPD,2,5\r\n") == b"\r\n+IPD,2,5\r\n"


def test_dinfo_in_recvdata(held, host_ip):
    d, srv = held
    d.ok("AT+CIPDINFO=1")
    c = open_passive(d, srv, host_ip)
    c.sendall(b"abc")
    d.read_until(b"+IPD,0,3\r\n")
    hdr, data = recvdata(d, "AT+CIPRECVDATA=0,3", dinfo=True)
    assert hdr == b'+CIPRECVDATA:3,"%s",%d,' % (host_ip.encode(), srv.port) and data == b"abc"


def test_single_connection_passive(joined, host_ip):
    srv = TcpServer(host_ip, hold)
    d = joined
    try:
        d.ok("AT+CIPRECVTYPE=1")
        d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        c.sendall(b"xyz")
        assert d.read_until(b"+IPD,3\r\n") == b"\r\n+IPD,3\r\n"
        hdr, data = recvdata(d, "AT+CIPRECVDATA=10")
        assert hdr == b"+CIPRECVDATA:3," and data == b"xyz"
    finally:
        srv.close()


def test_recvdata_errors(held, host_ip):
    d, srv = held
    d.ok('AT+CIPSTART=0,"TCP","%s",%d' % (host_ip, srv.port))
    assert d.cmd("AT+CIPRECVDATA=0,10") == b"\r\nERROR\r\n"  # active mode
    assert d.cmd("AT+CIPRECVDATA=1,10") == b"\r\nERROR\r\n"  # no such link
    assert d.cmd("AT+CIPRECVDATA=0,0") == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPRECVDATA=5,10") == b"\r\nERROR\r\n"


def test_window_backpressure_then_drain(held, bulk, host_ip):
    """The peer sends far more than the window: the board stops reading, the
    peer's send stalls (nothing dropped), and every byte arrives once read."""
    d, srv = held
    c = open_passive(d, srv, host_ip)
    data = os.urandom(3 << 20)
    sent = [0]

    def push():
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        mv = memoryview(data)
        while sent[0] < len(data):
            sent[0] += c.send(mv[sent[0]:sent[0] + 65536])

    t = threading.Thread(target=push, daemon=True)
    t.start()
    d.read_until(re.compile(rb"\+IPD,0,\d+\r\n"))
    time.sleep(1.0)  # the window in which the peer must stay held back (the assertion below)
    stalled_at = sent[0]
    assert stalled_at < len(data), "the peer was never held back"
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:5760,-1,-1,-1,-1\r\n\r\nOK\r\n"
    got = drain_passive(d, 0, len(data))
    assert sha(got) == sha(data)
    t.join(5)
    c.close()


def test_passive_10mb_sha(held, bulk, host_ip):
    """10 MB through passive receive with 2,048-byte reads, byte-exact."""
    d, srv = held
    c = open_passive(d, srv, host_ip)
    data = os.urandom(10 * 1000 * 1000)
    t = threading.Thread(target=lambda: (c.sendall(data), c.close()), daemon=True)
    t.start()
    got = drain_passive(d, 0, len(data), chunk=2048, timeout=100)
    assert sha(got) == sha(data)
    t.join(5)
    # the peer has closed and everything is read: CLOSED now
    d.read_until(b"0,CLOSED\r\n", timeout=5)


def test_closed_only_after_drain(held, host_ip):
    d, srv = held
    c = open_passive(d, srv, host_ip, 1)
    c.sendall(b"last words")
    d.read_until(b"+IPD,1,10\r\n")
    c.close()
    assert d.quiet(0.5) == b""  # no CLOSED while data waits
    hdr, data = recvdata(d, "AT+CIPRECVDATA=1,5")
    assert data == b"last "
    assert d.read_until(b"+IPD,1,5\r\n")
    d.write(b"AT+CIPRECVDATA=1,5\r\n")
    r = d.read_until(b"1,CLOSED\r\n")
    assert r == b"+CIPRECVDATA:5,words\r\n\r\nOK\r\n1,CLOSED\r\n"
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"


def test_cipclose_discards_buffer(held, host_ip):
    d, srv = held
    c = open_passive(d, srv, host_ip, 3)
    c.sendall(b"unread")
    d.read_until(b"+IPD,3,6\r\n")
    c.close()
    assert d.cmd("AT+CIPCLOSE=3") == b"3,CLOSED\r\n\r\nOK\r\n"


def test_switch_back_to_active_flushes(held, host_ip):
    d, srv = held
    c = open_passive(d, srv, host_ip)
    c.sendall(b"buffered")
    d.read_until(b"+IPD,0,8\r\n")
    d.write(b"AT+CIPRECVTYPE=0,0\r\n")
    assert d.read_until(b"\r\nOK\r\n") == b"\r\n+IPD,0,8:buffered\r\nOK\r\n"
    c.sendall(b"live")
    assert d.read_until(b"live") == b"\r\n+IPD,0,4:live"


def test_udp_passive_datagrams_and_drop(joined, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    u = UdpEcho(host_ip)
    try:
        d.ok("AT+CIPRECVTYPE=0,1,1")  # report each datagram's length
        d.ok('AT+CIPSTART=0,"UDP","%s",%d' % (host_ip, u.port))
        d.write(b"AT+CIPSEND=0,3\r\n")
        d.read_until(b">")
        d.write(b"one")
        d.read_until(b"SEND OK\r\n")
        d.read_until(b"+IPD,0,3\r\n")
        d.write(b"AT+CIPSEND=0,5\r\n")
        d.read_until(b">")
        d.write(b"three")
        d.read_until(b"SEND OK\r\n")
        assert wait_for(lambda: len(u.got) == 2)
        assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:3,-1,-1,-1,-1\r\n\r\nOK\r\n"
        # keep_datagram_integrity: one whole datagram that fits
        hdr, data = recvdata(d, "AT+CIPRECVDATA=0,4,1")
        assert data == b"one"
        d.read_until(b"+IPD,0,5\r\n")  # the next datagram is there
        hdr, data = recvdata(d, "AT+CIPRECVDATA=0,100,1")
        assert data == b"three"
        # fill the window with 1,000-byte datagrams: the rest are dropped
        me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r = d.cmd("AT+CIPSTATE?")
        lport = int(re.search(rb",(\d+),0\r\n", r).group(1))
        for i in range(8):
            me.sendto(bytes([65 + i]) * 1000, (host_ip, lport))
            time.sleep(0.02)  # pacing: one datagram at a time, not a burst
        time.sleep(0.3)  # all eight are in or dropped before the first read (it makes room for more)
        got = bytearray()
        while True:
            d.write(b"AT+CIPRECVDATA=0,1000,1\r\n")
            r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"))
            if r.endswith(b"ERROR\r\n"):
                break
            got += d.read_exactly(1000)
            d.read_until(b"\r\nOK\r\n")
        assert got == b"".join(bytes([65 + i]) * 1000 for i in range(5))  # 5 fit in 5,760
        me.close()
    finally:
        u.close()


def test_server_client_passive(joined, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPRECVTYPE=5,1")
    s = socket.socket()
    s.bind((host_ip, 0))
    port = s.getsockname()[1]
    s.close()
    d.ok("AT+CIPSERVER=1,%d" % port)
    c = socket.create_connection((host_ip, port))
    d.read_until(b"0,CONNECT\r\n")
    c.sendall(b"to server")
    assert d.read_until(b"+IPD,0,9\r\n") == b"\r\n+IPD,0,9\r\n"
    hdr, data = recvdata(d, "AT+CIPRECVDATA=0,9")
    assert data == b"to server"
    c.close()


@pytest.mark.timeout(60)
def test_ciprecvmode_the_v2_name_for_every_link(held, host_ip):
    """AT+CIPRECVMODE (ESP-AT's name up to v3.x, one mode for all links): what
    WiFiEspAT's EspAtDrv::reset() sends ("AT+CIPRECVMODE=1", and it gives up for
    good if that fails), lwESP's reset chain (lwesp_int.c) and Zephyr's
    esp_at init (drivers/wifi/esp_at/esp.c) too. Then the passive dialogue as
    those drivers read it: the +IPD notice, AT+CIPRECVLEN?, AT+CIPRECVDATA."""
    d, srv = held
    assert d.cmd("AT+CIPRECVMODE?") == b"+CIPRECVMODE:0\r\n\r\nOK\r\n"
    d.ok("AT+CIPRECVMODE=1")
    assert d.cmd("AT+CIPRECVMODE?") == b"+CIPRECVMODE:1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPRECVTYPE?") == b"".join(b"+CIPRECVTYPE:%d,1\r\n" % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd('AT+CIPSTART=3,"TCP","%s",%d' % (host_ip, srv.port)) == b"3,CONNECT\r\n\r\nOK\r\n"
    c = srv.wait_conn()
    c.sendall(b"hello passive")
    assert d.read_until(b"+IPD,3,13\r\n", timeout=5).endswith(b"+IPD,3,13\r\n")
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:-1,-1,-1,13,-1\r\n\r\nOK\r\n"
    assert recvdata(d, "AT+CIPRECVDATA=3,100") == (b"+CIPRECVDATA:13,", b"hello passive")
    for bad in ("AT+CIPRECVMODE=2", "AT+CIPRECVMODE=-1", "AT+CIPRECVMODE=", "AT+CIPRECVMODE=1,0",
                'AT+CIPRECVMODE="1"', "AT+CIPRECVMODE=?"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad
    d.ok("AT+CIPRECVMODE=0")
    c.sendall(b"active")
    assert d.read_until(b"+IPD,3,6:active", timeout=5).endswith(b"+IPD,3,6:active")
    assert d.cmd("AT+CIPRECVTYPE?") == b"".join(b"+CIPRECVTYPE:%d,0\r\n" % i for i in range(5)) + b"\r\nOK\r\n"


def test_windows_lent_only_while_data_waits(held, twin, host_ip):
    """Five passive links whose peers each send 20,000 bytes at once: a link holds
    a receive window only while unread data waits in it, and a board without
    PSRAM (the ESP32 twin: a WROOM) lends one at a time (net.Windows), so the
    other links' data waits in their sockets (as it does when the heap has no
    block for another window). Every byte of every link arrives,
    in order, as the host reads round the links."""
    d, srv = held
    size = 20000
    data = [os.urandom(size) for _ in range(5)]
    peers = []
    for lid in range(5):
        d.ok("AT+CIPRECVTYPE=%d,1" % lid)
        d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, srv.port))
        # the peer's accept may come after the board's OK: wait for this link's
        assert wait_for(lambda: len(srv.conns) == lid + 1)
        peers.append(srv.conns[lid])
    for c, blob in zip(peers, data):
        threading.Thread(target=c.sendall, args=(blob,), daemon=True).start()
    most = 1 if twin else 5
    # (fewer than `most` when the heap has no 5,760-byte block left for the others)
    d.read_until(re.compile(rb"\+IPD,\d,\d+\r\n"), timeout=10)
    d.quiet(0.5)
    r = d.cmd("AT+CIPRECVLEN?")
    lens = [int(x) for x in re.search(rb"\+CIPRECVLEN:([-\d,]+)", r).group(1).split(b",")]
    assert 0 < sum(1 for n in lens if n > 0) <= most, lens
    got = [bytearray() for _ in range(5)]
    deadline = time.monotonic() + 60
    while any(len(g) < size for g in got):
        assert time.monotonic() < deadline, [len(g) for g in got]
        for lid in range(5):
            if len(got[lid]) >= size:
                continue
            d.write(b"AT+CIPRECVDATA=%d,4096\r\n" % lid)
            r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"))
            if r.endswith(b"ERROR\r\n"):
                continue
            n = int(re.search(rb"\+CIPRECVDATA:(\d+),$", r).group(1))
            got[lid] += d.read_exactly(n)
            d.read_until(b"\r\nOK\r\n")
    for lid in range(5):
        assert sha(got[lid]) == sha(data[lid]), lid
    for c in peers:
        c.close()
