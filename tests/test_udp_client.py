"""UDP links: CIPSTART with local port and modes 0/1/2, +IPD with the sender,
CIPSEND to the fixed remote or to one given in the command."""
import re
import socket

import pytest

from peers import UdpEcho, wait_for


def _send(d, head, data):
    d.write(head + b"\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(data)
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(data)


def test_udp_echo_single(joined, udp_echo, host_ip):
    d = joined
    assert d.cmd('AT+CIPSTART="UDP","%s",%d' % (host_ip, udp_echo.port)) == b"CONNECT\r\n\r\nOK\r\n"
    _send(d, b"AT+CIPSEND=4", b"ping")
    assert d.read_until(b"ping") == b"\r\n+IPD,4:ping"
    r = d.cmd("AT+CIPSTATE?")
    assert re.fullmatch(rb'\+CIPSTATE:0,"UDP","%s",%d,\d+,0\r\n\r\nOK\r\n' % (
        re.escape(host_ip.encode()), udp_echo.port), r), r
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


def test_udp_local_port_and_dinfo(joined, udp_echo, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPDINFO=1")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((host_ip, 0))
    lport = probe.getsockname()[1]
    probe.close()
    d.ok('AT+CIPSTART=1,"UDP","%s",%d,%d,0' % (host_ip, udp_echo.port, lport))
    r = d.cmd("AT+CIPSTATE?")
    assert r == b'+CIPSTATE:1,"UDP","%s",%d,%d,0\r\n\r\nOK\r\n' % (host_ip.encode(), udp_echo.port, lport)
    _send(d, b"AT+CIPSEND=1,3", b"abc")
    assert d.read_until(b"abc") == b'\r\n+IPD,1,3,"%s",%d:abc' % (host_ip.encode(), udp_echo.port)
    assert udp_echo.got[-1][1][1] == lport
    # A third party reaches the board's fixed local port.
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((host_ip, 0))
    other.sendto(b"xy", (host_ip, lport))
    assert d.read_until(b"xy") == b'\r\n+IPD,1,2,"%s",%d:xy' % (host_ip.encode(), other.getsockname()[1])
    # mode 0: the remote stays the initial one
    _send(d, b"AT+CIPSEND=1,1", b"z")
    assert wait_for(lambda: udp_echo.got[-1][0] == b"z")
    other.close()


@pytest.mark.parametrize("mode", [1, 2])
def test_udp_modes_follow_sender(joined, udp_echo, host_ip, mode):
    d = joined
    d.ok("AT+CIPMUX=1")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((host_ip, 0))
    lport = probe.getsockname()[1]
    probe.close()
    d.ok('AT+CIPSTART=0,"UDP","%s",%d,%d,%d' % (host_ip, udp_echo.port, lport, mode))
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((host_ip, 0))
    a.settimeout(3)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind((host_ip, 0))
    b.settimeout(3)
    a.sendto(b"A", (host_ip, lport))
    d.read_until(b"+IPD,0,1:A")
    _send(d, b"AT+CIPSEND=0,3", b"toA")
    assert a.recvfrom(100)[0] == b"toA"
    b.sendto(b"B", (host_ip, lport))
    d.read_until(b"+IPD,0,1:B")
    _send(d, b"AT+CIPSEND=0,3", b"nxt")
    if mode == 2:
        assert b.recvfrom(100)[0] == b"nxt"  # every sender becomes the remote
    else:
        assert a.recvfrom(100)[0] == b"nxt"  # only the first change sticks
    a.close()
    b.close()


def test_udp_send_to_given_remote(joined, udp_echo, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    other = UdpEcho(host_ip)
    try:
        d.ok('AT+CIPSTART=2,"UDP","%s",%d' % (host_ip, udp_echo.port))
        _send(d, b'AT+CIPSEND=2,5,"%s",%d' % (host_ip.encode(), other.port), b"there")
        assert wait_for(lambda: other.got and other.got[-1][0] == b"there")
        d.read_until(b"there")
        # the link's remote is unchanged
        _send(d, b"AT+CIPSEND=2,4", b"home")
        assert wait_for(lambda: udp_echo.got and udp_echo.got[-1][0] == b"home")
    finally:
        other.close()


def test_udp_remote_in_cipsend_rejected_for_tcp(joined, host_ip):
    from peers import TcpServer, echo
    srv = TcpServer(host_ip, echo)
    try:
        joined.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, srv.port))
        assert joined.cmd('AT+CIPSEND=3,"%s",1000' % host_ip) == b"\r\nERROR\r\n"
    finally:
        srv.close()


@pytest.mark.parametrize("tail", [",70000", ",1000,3", ",,1", ",1000,0,,60001"])
def test_udp_bad_params(joined, udp_echo, host_ip, tail):
    assert joined.cmd('AT+CIPSTART="UDP","%s",%d%s' % (host_ip, udp_echo.port, tail)) == b"\r\nERROR\r\n"


def test_udp_empty_local_port_with_mode_0(joined, udp_echo, host_ip):
    """lwESP opens UDP links as AT+CIPSTARTEX="UDP","<ip>",<port>,,0 (lwesp_int.c,
    lwespi_initiate_cmd for LWESP_CMD_TCPIP_CIPSTART): an empty <local port> with
    <mode> 0, the default; the link opens on a local port of the stack's choice."""
    d = joined
    d.ok("AT+CIPMUX=1")
    r = d.cmd('AT+CIPSTARTEX="UDP","%s",%d,,0' % (host_ip, udp_echo.port))
    assert r == b"0,CONNECT\r\n\r\nOK\r\n", r
    d.write(b"AT+CIPSEND=0,4\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"ping")
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n"
    assert d.read_until(b"+IPD,0,4:ping") .endswith(b"+IPD,0,4:ping")
    assert d.cmd("AT+CIPCLOSE=0") == b"0,CLOSED\r\n\r\nOK\r\n"
