"""Passthrough (transparent) mode: AT+CIPMODE=1 + AT+CIPSEND, raw data both
ways, "+++" timing, packing, reconnects, UDP, and booting into a saved link."""
import os
import socket
import threading
import time

import pytest

from board import GUARD, plus
from peers import TcpServer, UdpEcho, echo, sink, hold, sha, wait_for


def enter(d, host_ip, port, typ="TCP", extra=""):
    d.ok("AT+CIPMODE=1")
    assert d.cmd('AT+CIPSTART="%s","%s",%d%s' % (typ, host_ip, port, extra)) == b"CONNECT\r\n\r\nOK\r\n"
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"


def test_raw_both_ways_and_exit(joined, echo_srv, host_ip):
    d = joined
    enter(d, host_ip, echo_srv.port)
    d.write(b"hello raw world")
    assert d.read_exactly(15) == b"hello raw world"  # no +IPD framing
    plus(d)
    assert d.quiet(0.3) == b""  # +++ has no reply
    assert d.cmd("AT") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPMODE?") == b"+CIPMODE:1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSTATUS").startswith(b"STATUS:3\r\n")  # the link stays open
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"again")
    assert d.read_exactly(5) == b"again"
    plus(d)
    d.ok("AT+CIPMODE=0")
    d.ok("AT+CIPCLOSE")


def test_passive_receive_mode_does_not_apply_in_passthrough(joined, echo_srv, host_ip):
    """AT+CIPRECVMODE "can not be used in the Network Passthrough Mode" (the spec): with
    passive receive on, the link's data still comes raw, 10 KB of it, through and back."""
    d = joined
    d.ok("AT+CIPRECVMODE=1")
    enter(d, host_ip, echo_srv.port)
    blob = bytes(range(256)) * 40
    d.write(blob)
    assert d.read_exactly(len(blob), timeout=10) == blob  # no +IPD, no notice: the bytes
    plus(d)
    d.ok("AT+CIPMODE=0")
    d.ok("AT+CIPCLOSE")
    d.ok("AT+CIPRECVMODE=0")


def test_quitt_with_sysmsg(joined, echo_srv, host_ip):
    d = joined
    d.ok("AT+SYSMSG=1")
    enter(d, host_ip, echo_srv.port)
    plus(d)
    assert d.read_until(b"+QUITT\r\n") == b"+QUITT\r\n"


def test_plus_inside_data_and_too_slow_are_data(joined, echo_srv, host_ip):
    d = joined
    enter(d, host_ip, echo_srv.port)
    d.write(b"a+++b")  # inside a packet
    assert d.read_exactly(5) == b"a+++b"
    time.sleep(GUARD)  # a guard's silence: a fresh start for the next case
    d.write(b"x")
    d.write(b"+++")  # no guard time before the first +
    assert d.read_exactly(4) == b"x+++"
    time.sleep(GUARD)  # a guard's silence before the first "+"
    for _ in range(3):  # more than 20 ms between the +
        d.write(b"+")
        time.sleep(0.06)  # the silence between them is what is tested
    assert d.read_exactly(3) == b"+++"
    time.sleep(GUARD)  # a guard's silence before the "+++"
    d.write(b"+++")
    d.write(b"y")  # data right after the third +: no exit
    assert d.read_exactly(4) == b"+++y"
    plus(d)
    assert d.cmd("AT") == b"\r\nOK\r\n"


def test_packing_interval(joined, host_ip, twin):
    d = joined
    # On the ESP32 twin the bytes also take their time on the line (115200 baud).
    line = (lambda n: n * 10 / 115200) if twin else (lambda n: 0)
    got = []

    def rec(c, srv):
        while True:
            x = c.recv(65536)
            if not x:
                return
            got.append((time.monotonic(), x))

    srv = TcpServer(host_ip, rec)
    try:
        d.ok("AT+TRANSINTVL=300")
        assert d.cmd("AT+TRANSINTVL?") == b"+TRANSINTVL:300\r\n\r\nOK\r\n"
        enter(d, host_ip, srv.port)
        t0 = time.monotonic()
        d.write(b"ab")
        time.sleep(0.1)  # a pause inside the 300 ms interval: both halves go in one send
        d.write(b"cd")
        assert wait_for(lambda: got, 3)
        t, data = got[0]
        assert data == b"abcd"  # packed into one send after the interval
        assert 0.25 < t - t0 < 1.0 + line(4)
        # 2,920 bytes or more go at once
        got.clear()
        t0 = time.monotonic()
        d.write(b"z" * 2920)
        assert wait_for(lambda: sum(len(x) for _, x in got) == 2920, 3)
        assert got[0][0] - t0 < 0.25 + line(2920)
        plus(d)
    finally:
        srv.close()


@pytest.mark.parametrize("line", ["AT+TRANSINTVL=1001", "AT+TRANSINTVL=-1", "AT+CIPRECONNINTV=0",
                                  "AT+CIPRECONNINTV=36001", 'AT+SAVETRANSLINK=1,"127.0.0.1"',
                                  'AT+SAVETRANSLINK=1,"127.0.0.1",80,"XYZ"', "AT+SAVETRANSLINK=4",
                                  'AT+SAVETRANSLINK=1,"127.0.0.1",80,"TCP",7201'])
def test_settings_bad(joined, line):
    assert joined.cmd(line) == b"\r\nERROR\r\n"


def test_settings_query(joined):
    d = joined
    assert d.cmd("AT+TRANSINTVL?") == b"+TRANSINTVL:20\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPRECONNINTV?") == b"+CIPRECONNINTV:1\r\n\r\nOK\r\n"
    d.ok("AT+CIPRECONNINTV=25")
    assert d.cmd("AT+CIPRECONNINTV?") == b"+CIPRECONNINTV:25\r\n\r\nOK\r\n"


def test_cipsend_exec_needs_passthrough(joined, echo_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    assert d.cmd("AT+CIPSEND") == b"\r\nERROR\r\n"  # CIPMODE=0
    d.ok("AT+CIPCLOSE")
    d.ok("AT+CIPMODE=1")
    assert d.cmd("AT+CIPSEND") == b"\r\nERROR\r\n"  # no link
    d.ok("AT+CIPMODE=0")
    d.ok("AT+CIPMUX=1")
    assert d.cmd("AT+CIPMODE=1") == b"\r\nERROR\r\n"


def test_udp_passthrough(joined, host_ip):
    d = joined
    u = UdpEcho(host_ip)
    try:
        enter(d, host_ip, u.port, "UDP")
        d.write(b"datagram")
        assert d.read_exactly(8) == b"datagram"
        plus(d)
        d.ok("AT+CIPCLOSE")
        d.ok('AT+CIPSTART="UDP","%s",%d,0,1' % (host_ip, u.port))
        assert d.cmd("AT+CIPSEND") == b"\r\nERROR\r\n"  # mode 1: the remote may change
    finally:
        u.close()


def test_data_held_outside_data_mode(joined, host_ip):
    d = joined
    srv = TcpServer(host_ip, hold)
    try:
        enter(d, host_ip, srv.port)
        c = srv.wait_conn()
        plus(d)
        c.sendall(b"while you were out")
        assert d.quiet(0.4) == b""  # kept in the socket, not printed
        d.write(b"AT+CIPSEND\r\n")
        assert d.read_until(b"out") == b"\r\nOK\r\n\r\n>while you were out"
        plus(d)
    finally:
        srv.close()


def test_10mb_both_ways(joined, bulk, echo_srv, host_ip):
    """10 MB of random data through an echo peer: what comes back equals what went."""
    d = joined
    enter(d, host_ip, echo_srv.port)
    size = 10 * 1000 * 1000
    data = os.urandom(size)

    def writer():
        mv = memoryview(data)
        for i in range(0, size, 65536):
            d.ser.write(mv[i:i + 65536])

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = d.read_exactly(size, timeout=120)
    t.join(10)
    assert sha(got) == sha(data)
    assert len(echo_srv.received) == size
    plus(d)
    assert d.cmd("AT") == b"\r\nOK\r\n"


def test_reconnect_after_peer_restart(joined, host_ip):
    """The peer goes away and comes back on the same port: the board reconnects by
    itself; UART data sent meanwhile reaches the new connection."""
    d = joined
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host_ip, 0))
    port = ls.getsockname()[1]
    ls.listen(1)
    ls.settimeout(5)
    d.ok("AT+CIPRECONNINTV=5")  # 500 ms
    enter(d, host_ip, port)
    c, _ = ls.accept()
    ls.close()  # the peer "restarts": nothing listens for a while
    c.close()
    time.sleep(0.3)  # the board sees the close (silently): the data comes while the link is down
    d.write(b"queued while down")
    time.sleep(1.0)  # the peer stays away: reconnects (every 500 ms) fail meanwhile
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host_ip, port))
    ls.listen(1)
    ls.settimeout(5)
    c2, _ = ls.accept()
    c2.settimeout(3)
    got = b""
    while len(got) < 17:
        got += c2.recv(100)
    assert got == b"queued while down"
    c2.sendall(b"back")
    assert d.read_exactly(4) == b"back"
    assert b"CLOSED" not in d.quiet(0.1)
    plus(d)
    c2.close()
    ls.close()


def test_reconnect_messages_with_sysmsg4(joined, host_ip):
    d = joined
    d.ok("AT+SYSMSG=4")
    srv = TcpServer(host_ip, hold)
    try:
        enter(d, host_ip, srv.port)
        c = srv.wait_conn()
        srv.accepted.clear()
        c.close()
        assert d.read_until(b"CLOSED\r\n") == b"CLOSED\r\n"
        srv.wait_conn()  # the server still listens: the board comes back
        assert d.read_until(b"CONNECT\r\n", timeout=5) == b"CONNECT\r\n"
        plus(d)
    finally:
        srv.close()


def test_boot_into_saved_link(raw_dut, host_ip, opts, vboard):
    d = raw_dut
    srv = TcpServer(host_ip, echo)
    try:
        d.ok("ATE0")
        d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password))
        d.ok('AT+SAVETRANSLINK=1,"%s",%d,"TCP"' % (host_ip, srv.port))
        d.write(b"AT+RST\r\n")
        d.read_until(b"\r\nOK\r\n")
        d.read_until(b"\r\nready\r\n")
        d.read_until(b"WIFI GOT IP\r\n", timeout=10)
        assert srv.accepted.wait(10)
        time.sleep(0.3)  # passthrough begins after the connect, silently: earlier bytes would be a command
        d.write(b"booted into passthrough")
        assert d.read_until(b"passthrough") == b"booted into passthrough"
        plus(d)
        d.ok("AT+SAVETRANSLINK=0")
        assert d.cmd("AT") == b"AT\r\n\r\nOK\r\n"  # echo is on again after the reset
    finally:
        srv.close()
