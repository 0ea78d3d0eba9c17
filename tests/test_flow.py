"""No lost bytes: a host that stops reading the UART holds the board's sockets
back (TCP window), and AT+CIPTCPOPT's options reach the socket."""
import os
import re
import socket
import struct
import threading
import time

import pytest

from peers import TcpServer, hold, sha, wait_for


def test_host_stops_reading_nothing_lost(joined, bulk, host_ip):
    """The peer sends 4 MB while the host reads nothing for 2 s: the host's
    buffer fills (the pty; on the ESP32 twin, its serial buffer, then CTS holds
    the line), the board stops reading its socket, the peer stalls; then all
    arrives."""
    d = joined
    data = os.urandom(4 << 20)
    done = threading.Event()

    def source(c, srv):
        c.sendall(data)
        done.set()
        hold(c, srv)  # open until the test ends

    srv = TcpServer(host_ip, source)
    try:
        d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, srv.port))
        time.sleep(2.0)  # the host is busy elsewhere
        assert not done.is_set(), "the peer was never held back"
        got = d.read_ipd(len(data))
        assert sha(got) == sha(data)
        assert d.cmd("AT") == b"\r\nOK\r\n"
    finally:
        srv.close()


def test_commands_wait_while_host_not_reading(joined, bulk, host_ip):
    """Commands sent while the output is blocked are answered, in order, once
    the host reads again."""
    d = joined
    data = os.urandom(1 << 20)

    def source(c, srv):
        c.sendall(data)
        hold(c, srv)  # open until the test ends

    srv = TcpServer(host_ip, source)
    try:
        d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, srv.port))
        time.sleep(1.0)  # not reading: the output blocks (nothing to read that says so)
        d.write(b"AT+CIPSTATE?\r\nAT\r\n")
        other = bytearray()
        got = d.read_ipd(len(data), between=other)
        assert sha(got) == sha(data)
        other += d.quiet(0.5)
        assert re.fullmatch(rb'\+CIPSTATE:0,"TCP",[^\r]*\r\n\r\nOK\r\n\r\nOK\r\n', bytes(other)), other
    finally:
        srv.close()


def test_tcpopt_query_default(joined):
    assert joined.cmd("AT+CIPTCPOPT?") == b"+CIPTCPOPT:0,-1,0,0,0\r\n\r\nOK\r\n"
    joined.ok("AT+CIPMUX=1")
    assert joined.cmd("AT+CIPTCPOPT?") == b"".join(
        b"+CIPTCPOPT:%d,-1,0,0,0\r\n" % i for i in range(5)) + b"\r\nOK\r\n"


def test_tcpopt_set_and_linger_zero_resets(joined, host_ip, vboard, twin):
    """SO_LINGER=0 really reaches the socket: closing the link sends RST. The
    ESP32 port's setsockopt() has no SO_LINGER nor keep-alive (modsocket.c): there
    the request is stored but answers ERROR 0x010a0020, and the close is a FIN."""
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+SYSLOG=1")
    srv = TcpServer(host_ip, hold)
    try:
        d.ok('AT+CIPSTART=2,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        r = d.cmd("AT+CIPTCPOPT=2,0,1,5000,60")
        if twin:
            assert r == b"ERR CODE:0x010a0020\r\n\r\nERROR\r\n", r
        else:
            assert r == b"\r\nOK\r\n", r
        r = d.cmd("AT+CIPTCPOPT?")
        assert b"+CIPTCPOPT:2,0,1,5000,60\r\n" in r
        assert b"+CIPTCPOPT:1,-1,0,0,0\r\n" in r
        d.ok("AT+CIPCLOSE=2")
        c.settimeout(3)
        if twin:
            assert c.recv(10) == b""  # an orderly close: no linger to apply
        else:
            with pytest.raises(ConnectionResetError):
                c.recv(10)
    finally:
        srv.close()


def test_cipclosemode_abort_resets(joined, host_ip, twin):
    """AT+CIPCLOSEMODE=<id>,1 then AT+CIPCLOSE=<id>: WiFiEspAT's EspAtDrv::close()
    with abort (EspAtDrv.cpp; it goes on whatever the first answers). The close is
    an RST where the runtime has SO_LINGER; on an ESP32 (no SO_LINGER: modsocket.c)
    AT+CIPCLOSEMODE answers ERROR 0x010a0020 and the close is a FIN."""
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+SYSLOG=1")
    srv = TcpServer(host_ip, hold)
    try:
        assert d.cmd("AT+CIPCLOSEMODE=1,1") == b"ERR CODE:0x010a0000\r\n\r\nERROR\r\n"  # no link 1
        for bad in ("AT+CIPCLOSEMODE=1,2", "AT+CIPCLOSEMODE=5,1", "AT+CIPCLOSEMODE=1", "AT+CIPCLOSEMODE=1,1,1"):
            assert d.cmd(bad).endswith(b"\r\nERROR\r\n"), bad
        d.ok('AT+CIPSTART=1,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        r = d.cmd("AT+CIPCLOSEMODE=1,1")
        assert r == (b"ERR CODE:0x010a0020\r\n\r\nERROR\r\n" if twin else b"\r\nOK\r\n"), r
        assert d.cmd("AT+CIPCLOSE=1") == b"1,CLOSED\r\n\r\nOK\r\n"
        c.settimeout(3)
        if twin:
            assert c.recv(10) == b""
        else:
            with pytest.raises(ConnectionResetError):
                c.recv(10)
        # the next connection on that id closes normally again
        d.ok('AT+CIPSTART=1,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        assert d.cmd("AT+CIPCLOSE=1") == b"1,CLOSED\r\n\r\nOK\r\n"
        c.settimeout(3)
        assert c.recv(10) == b""
    finally:
        srv.close()


def test_tcpopt_all_links_and_keepalive_shared_with_cipstart(joined, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPTCPOPT=5,,1,,")
    assert d.cmd("AT+CIPTCPOPT?").count(b",-1,1,0,0\r\n") == 5
    srv = TcpServer(host_ip, hold)
    try:
        d.ok('AT+CIPSTART=0,"TCP","%s",%d,120' % (host_ip, srv.port))
        assert b"+CIPTCPOPT:0,-1,1,0,120\r\n" in d.cmd("AT+CIPTCPOPT?")
    finally:
        srv.close()


def test_tcpopt_sndtimeo_send_fail(joined, host_ip):
    """so_sndtimeo bounds a send that cannot progress: SEND FAIL within it."""
    d = joined
    d.ok("AT+CIPMUX=1")
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ls.bind((host_ip, 0))
    ls.listen(1)
    try:
        d.ok('AT+CIPSTART=0,"TCP","%s",%d' % (host_ip, ls.getsockname()[1]))
        c, _ = ls.accept()
        d.ok("AT+CIPTCPOPT=0,,,500")
        chunk = os.urandom(8192)
        for _ in range(3000):
            d.write(b"AT+CIPSEND=0,8192\r\n")
            d.read_until(b">")
            d.write(chunk)
            r = d.read_until(re.compile(rb"SEND OK\r\n|SEND FAIL\r\n"), timeout=5)
            if r.endswith(b"SEND FAIL\r\n"):
                break
        else:
            pytest.fail("never blocked")
        assert d.cmd("AT") == b"\r\nOK\r\n"
        c.close()
    finally:
        ls.close()


@pytest.mark.parametrize("line", ["AT+CIPTCPOPT=-2", "AT+CIPTCPOPT=,2", "AT+CIPTCPOPT=,,-1", "AT+CIPTCPOPT=,,,7201",
                                  "AT+CIPTCPOPT=1,2,3,4,5"])
def test_tcpopt_bad(joined, line):
    assert joined.cmd(line) == b"\r\nERROR\r\n"
