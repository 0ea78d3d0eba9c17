"""AT+CIPSENDEX and AT+CIPSENDL/AT+CIPSENDLCFG against real peers."""
import os
import re
import socket
import threading
import time

import pytest

from board import plus
from peers import TcpServer, UdpEcho, echo, sink, hold, sha, wait_for


def test_sendex_length(joined, echo_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    d.write(b"AT+CIPSENDEX=4\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"abcd")
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n"
    assert d.read_until(b"abcd") == b"\r\n+IPD,4:abcd"


def test_sendex_terminator_and_escapes(joined, echo_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    d.write(b"AT+CIPSENDEX=100\r\n")
    d.read_until(b">")
    # "\\0" is a literal backslash and 0; "\," is a comma; "\0" ends the data
    d.write(b"a\\\\0b\\,c\\0")
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 6 bytes\r\n\r\nSEND OK\r\n"
    assert d.read_until(b"\\0b,c") == b"\r\n+IPD,6:a\\0b,c"
    assert d.cmd("AT") == b"\r\nOK\r\n"


def test_sendex_terminator_split_across_writes(joined, echo_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    d.write(b"AT+CIPSENDEX=50\r\n")
    d.read_until(b">")
    d.write(b"xy\\")
    time.sleep(0.1)  # the terminator split across two reads of the UART is what is tested
    d.write(b"0")
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n"


@pytest.mark.parametrize("line", ["AT+CIPSENDEX=0", "AT+CIPSENDEX=8193", "AT+CIPSENDEX=1", 'AT+CIPSENDEX="1"'])
def test_sendex_bad(joined, line):
    assert joined.cmd(line) == b"\r\nERROR\r\n"  # (no link open for the valid length)


def test_sendlcfg(joined):
    d = joined
    assert d.cmd("AT+CIPSENDLCFG?") == b"+CIPSENDLCFG:1024,2920\r\n\r\nOK\r\n"
    d.ok("AT+CIPSENDLCFG=100")
    assert d.cmd("AT+CIPSENDLCFG?") == b"+CIPSENDLCFG:100,2920\r\n\r\nOK\r\n"
    d.ok("AT+CIPSENDLCFG=2048,1460")
    assert d.cmd("AT+CIPSENDLCFG?") == b"+CIPSENDLCFG:2048,1460\r\n\r\nOK\r\n"
    for bad in ("AT+CIPSENDLCFG=99", "AT+CIPSENDLCFG=1048577", "AT+CIPSENDLCFG=100,99",
                "AT+CIPSENDLCFG=100,2921", "AT+CIPSENDLCFG=", "AT+CIPSENDLCFG=1,2,3"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad


def test_sendl_reports(joined, sink_srv, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok('AT+CIPSTART=1,"TCP","%s",%d' % (host_ip, sink_srv.port))
    d.ok("AT+CIPSENDLCFG=1000,500")
    data = os.urandom(3500)
    d.write(b"AT+CIPSENDL=1,3500\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(data)
    r = d.read_until(b"SEND OK\r\n", timeout=10)
    reports = re.findall(rb"\+CIPSENDL:(\d+),(\d+)\r\n", r)
    assert [int(s) for s, _ in reports] == [1000, 2000, 3000, 3500]
    for s, g in reports:
        assert int(s) <= int(g) <= 3500
    assert r.endswith(b"\r\nSEND OK\r\n")
    assert wait_for(lambda: len(sink_srv.received) == 3500)
    assert bytes(sink_srv.received) == data
    assert d.cmd("AT") == b"\r\nOK\r\n"


def test_sendl_10mb_sha(joined, bulk, sink_srv, host_ip):
    """10 MB through AT+CIPSENDL, byte-exact: the host writes as fast as the
    pty lets it; the board holds the UART back while the network drains."""
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, sink_srv.port))
    size = 10 * 1000 * 1000
    data = os.urandom(size)
    d.ok("AT+CIPSENDLCFG=1048576")
    d.write(b"AT+CIPSENDL=%d\r\n" % size)
    d.read_until(b">")

    def writer():
        mv = memoryview(data)
        for i in range(0, size, 65536):
            d.ser.write(mv[i:i + 65536])

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = d.read_until(b"SEND OK\r\n", timeout=120)
    t.join(10)
    assert len(re.findall(rb"\+CIPSENDL:", r)) == 10
    assert wait_for(lambda: len(sink_srv.received) == size, 20)
    assert sha(sink_srv.received) == sha(data)


def test_sendl_cancel_with_plus(joined, sink_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, sink_srv.port))
    d.write(b"AT+CIPSENDL=100000\r\n")
    d.read_until(b">")
    d.write(b"x" * 3000)
    # "+++" is a lone packet only after 20 ms of silence on the line, which begins
    # when the 3,000 bytes have left it (on the ESP32 twin they take 0.26 s of line
    # at 115200 baud): once the peer has them all.
    assert wait_for(lambda: len(sink_srv.received) == 3000)
    plus(d)
    r = d.read_until(b"SEND CANCELLED\r\n", timeout=5)
    assert r.endswith(b"\r\nSEND CANCELLED\r\n")
    assert d.cmd("AT") == b"\r\nOK\r\n"
    assert wait_for(lambda: len(sink_srv.received) == 3000)


def test_sendl_plus_inside_data_is_data(joined, sink_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, sink_srv.port))
    payload = b"ab+++cd" + b"+++" + b"ef"
    d.write(b"AT+CIPSENDL=%d\r\n" % len(payload))
    d.read_until(b">")
    d.write(payload)
    d.read_until(b"SEND OK\r\n")
    assert wait_for(lambda: bytes(sink_srv.received) == payload)


def test_sendl_plus_too_slow_is_data(joined, sink_srv, host_ip):
    d = joined
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, sink_srv.port))
    d.write(b"AT+CIPSENDL=3\r\n")
    d.read_until(b">")
    time.sleep(0.1)  # a guard's silence before the first "+"
    for _ in range(3):
        d.write(b"+")
        time.sleep(0.06)  # more than 20 ms between the "+": data
    d.read_until(b"SEND OK\r\n")
    assert wait_for(lambda: bytes(sink_srv.received) == b"+++")


def unread(c):
    """How many bytes wait in socket c, not read yet."""
    try:
        return len(c.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0


def test_sendl_link_dies(joined, host_ip):
    """The peer resets: the board takes the rest of <length> and says SEND FAIL."""
    d = joined
    srv = TcpServer(host_ip, hold)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok('AT+CIPSTART=0,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        d.write(b"AT+CIPSENDL=0,10000\r\n")
        d.read_until(b">")
        d.write(b"y" * 1000)
        assert wait_for(lambda: unread(c) == 1000)  # the first part reached the peer before its reset
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        d.read_until(b"0,CLOSED\r\n")
        d.write(b"y" * 9000)
        r = d.read_until(b"SEND FAIL\r\n", timeout=5)
        assert r.endswith(b"\r\nSEND FAIL\r\n")
        assert d.cmd("AT") == b"\r\nOK\r\n"
    finally:
        srv.close()


def test_sendl_udp_with_remote(joined, host_ip):
    d = joined
    a, b = UdpEcho(host_ip), UdpEcho(host_ip)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok('AT+CIPSTART=0,"UDP","%s",%d' % (host_ip, a.port))
        d.write(b'AT+CIPSENDL=0,5,"%s",%d\r\n' % (host_ip.encode(), b.port))
        d.read_until(b">")
        d.write(b"12345")
        d.read_until(b"SEND OK\r\n")
        assert wait_for(lambda: b.got and b.got[0][0] == b"12345")
        assert not a.got
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("line", ["AT+CIPSENDL=0", "AT+CIPSENDL=2147483648", "AT+CIPSENDL=5"])
def test_sendl_bad(joined, line):
    assert joined.cmd(line) == b"\r\nERROR\r\n"
