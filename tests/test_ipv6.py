"""IPv6: AT+CIPV6, the station's IPv6 addresses (WIFI GOT IPv6 LL/GL,
AT+CIPSTA?, AT+CIFSR), and TCPv6/UDPv6/SSLv6 links, a TCPv6 server, passthrough
and passive receive, against peers on ::1 (the virtual board's network is the
host's, loopback included).

MicroPython's ESP32 port has IPv4-only sockets (README "Supported targets"):
every test that needs IPv6 carries the `ipv6` marker and skips on an ESP32, twin
or real. The tests of what the board answers without IPv6 run everywhere; on an
ESP32 they check that AT+CIPV6=1 answers ERROR and changes nothing (its ERR CODE,
0x010a0057, is checked by tests/test_chip.py test_6)."""
import re
import socket

import pytest

from board import plus
from peers import TcpServer, UdpEcho, echo, hold, wait_for
from tlspeers import Pki, TlsServer, tls_echo, free_port

LL = b"fe80::ff:fe00:1"  # the virtual board's link-local address (EUI-64 of 02:00:00:00:00:01)
GL = b"::1"  # and its global one
ERROR = b"\r\nERROR\r\n"
STAMAC = {False: b"02:00:00:00:00:01", True: b"24:0a:c4:00:00:01"}  # tools/twin/network.py MACS
JOINED_V4 = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
# "WIFI GOT IPv6 LL/GL ... may be before or after OK" (Wi-Fi_AT_Commands.rst)
JOINED_V6 = (
    b"WIFI CONNECTED\r\nWIFI GOT IP\r\nWIFI GOT IPv6 LL\r\nWIFI GOT IPv6 GL\r\n\r\nOK\r\n",
    b"WIFI CONNECTED\r\nWIFI GOT IP\r\nWIFI GOT IPv6 LL\r\n\r\nOK\r\nWIFI GOT IPv6 GL\r\n",
    b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\nWIFI GOT IPv6 LL\r\nWIFI GOT IPv6 GL\r\n",
)


def join(d, opts):
    d.write('AT+CWJAP="%s","%s"\r\n' % (opts.ssid, opts.password))
    r = d.read_until(b"\r\nOK\r\n", timeout=30)
    return r + d.quiet(0.5)


@pytest.fixture
def v6(dut, opts, vboard):
    """AT+CIPV6=1, then joined (the order the spec asks for)."""
    dut.ok("AT+CIPV6=1")
    r = join(dut, opts)
    assert r in JOINED_V6, r
    return dut


@pytest.fixture
def echo6(vboard):
    s = TcpServer("::1", echo)
    yield s
    s.close()


@pytest.fixture
def hold6(vboard):
    s = TcpServer("::1", hold)
    yield s
    s.close()


@pytest.fixture
def udp6(vboard):
    u = UdpEcho("::1")
    yield u
    u.close()


def send(d, head, data):
    d.write(head + b"\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(data)
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(data)


def free_udp6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# -- AT+CIPV6 ----------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_cipv6_query_and_set(dut, twin):
    d = dut
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"
    if twin:
        assert d.cmd("AT+CIPV6=1") == ERROR  # no IPv6 sockets: not stored
        assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"
    else:
        assert d.cmd("AT+CIPV6=1") == b"\r\nOK\r\n"
        assert d.cmd("AT+CIPV6?") == b"+CIPV6:1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPV6=0") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"
    for bad in ("AT+CIPV6=2", "AT+CIPV6=-1", 'AT+CIPV6="1"', "AT+CIPV6=", "AT+CIPV6=1,1", "AT+CIPV6"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"


@pytest.mark.timeout(60)
def test_cipv6_sysstore(dut, twin):
    d = dut
    if twin:
        # Refused, so nothing is saved either.
        assert d.cmd("AT+CIPV6=1") == ERROR
        d.reset(restore=False)
        d.ok("ATE0")
        assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"
        return
    d.ok("AT+CIPV6=1")  # AT+SYSSTORE=1 (the default): saved
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:1\r\n\r\nOK\r\n"
    d.ok("AT+SYSSTORE=0")
    d.ok("AT+CIPV6=0")
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:0\r\n\r\nOK\r\n"
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPV6?") == b"+CIPV6:1\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_v6_types_refused_without_cipv6(joined, echo6, udp6, twin):
    d = joined
    assert d.cmd('AT+CIPSTART="TCPv6","::1",%d' % echo6.port) == b"\r\nERROR\r\n"
    assert d.cmd('AT+CIPSTART="UDPv6","::1",%d' % udp6.port) == b"\r\nERROR\r\n"
    assert d.cmd('AT+CIPSTART="SSLv6","::1",%d' % echo6.port) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"
    assert not echo6.accepted.is_set() and udp6.got == []
    d.ok("AT+CIPMUX=1")
    assert d.cmd('AT+CIPSTART=0,"TCPv6","::1",%d' % echo6.port) == b"\r\nERROR\r\n"
    assert d.cmd('AT+CIPSTARTEX="UDPv6","::1",%d' % udp6.port) == b"\r\nERROR\r\n"
    assert d.cmd('AT+CIPSERVER=1,%d,"TCPv6"' % free_port("::1")) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    if twin:
        # AT+CIPV6=1 is refused: the TCPv6 link stays refused
        assert d.cmd("AT+CIPV6=1") == ERROR
        assert d.cmd('AT+CIPSTART=0,"TCPv6","::1",%d' % echo6.port) == ERROR
        assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"
        assert not echo6.accepted.is_set()
        return
    # with AT+CIPV6=1 the same TCPv6 link opens
    d.ok("AT+CIPV6=1")
    assert d.cmd('AT+CIPSTART=0,"TCPv6","::1",%d' % echo6.port) == b"0,CONNECT\r\n\r\nOK\r\n"


# -- the station's IPv6 addresses ------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_join_reports_ipv6_only_with_cipv6(dut, opts, vboard, twin):
    d = dut
    assert join(d, opts) == JOINED_V4  # no IPv6 lines with AT+CIPV6=0
    d.write(b"AT+CWQAP\r\n")
    assert d.read_until(b"WIFI DISCONNECT\r\n") == b"\r\nOK\r\nWIFI DISCONNECT\r\n"
    if twin:
        assert d.cmd("AT+CIPV6=1") == ERROR
        assert join(d, opts) == JOINED_V4  # still none
        return
    d.ok("AT+CIPV6=1")
    r = join(d, opts)
    assert r in JOINED_V6, r


@pytest.mark.timeout(30)
def test_cipsta_and_cifsr_without_ipv6(joined, vboard, twin):
    d = joined
    assert d.cmd("AT+CIPSTA?") == (b'+CIPSTA:ip:"127.0.0.1"\r\n+CIPSTA:gateway:"127.0.0.1"\r\n'
                                   b'+CIPSTA:netmask:"255.0.0.0"\r\n\r\nOK\r\n')
    assert d.cmd("AT+CIFSR") == (b'+CIFSR:STAIP,"127.0.0.1"\r\n+CIFSR:STAMAC,"%s"\r\n\r\nOK\r\n'
                                 % STAMAC[twin])


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_cipsta_and_cifsr_with_ipv6(v6):
    d = v6
    assert d.cmd("AT+CIPSTA?") == (b'+CIPSTA:ip:"127.0.0.1"\r\n+CIPSTA:gateway:"127.0.0.1"\r\n'
                                   b'+CIPSTA:netmask:"255.0.0.0"\r\n+CIPSTA:ip6ll:"%s"\r\n'
                                   b'+CIPSTA:ip6gl:"%s"\r\n\r\nOK\r\n' % (LL, GL))
    assert d.cmd("AT+CIFSR") == (b'+CIFSR:STAIP,"127.0.0.1"\r\n+CIFSR:STAIP6LL,"%s"\r\n+CIFSR:STAIP6GL,"%s"\r\n'
                                 b'+CIFSR:STAMAC,"02:00:00:00:00:01"\r\n\r\nOK\r\n' % (LL, GL))
    # back to AT+CIPV6=0: the IPv6 lines go
    d.ok("AT+CIPV6=0")
    assert b"ip6" not in d.cmd("AT+CIPSTA?")
    assert b"IP6" not in d.cmd("AT+CIFSR")


@pytest.mark.timeout(30)
def test_no_ipv6_addresses_when_not_joined(dut, vboard, twin):
    d = dut
    if twin:
        assert d.cmd("AT+CIPV6=1") == ERROR
    else:
        d.ok("AT+CIPV6=1")
    assert d.cmd("AT+CIPSTA?") == (b'+CIPSTA:ip:"0.0.0.0"\r\n+CIPSTA:gateway:"0.0.0.0"\r\n'
                                   b'+CIPSTA:netmask:"0.0.0.0"\r\n\r\nOK\r\n')
    assert b"IP6" not in d.cmd("AT+CIFSR")


# -- TCPv6 ----------------------------------------------------------------------------------------------------------
@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_tcpv6_client(v6, echo6):
    d = v6
    port = echo6.port
    assert d.cmd('AT+CIPSTART="TCPv6","::1",%d' % port) == b"CONNECT\r\n\r\nOK\r\n"
    send(d, b"AT+CIPSEND=5", b"hello")
    assert d.read_until(b"hello") == b"\r\n+IPD,5:hello"
    d.ok("AT+CIPDINFO=1")
    send(d, b"AT+CIPSEND=2", b"ab")
    assert d.read_until(b"ab") == b'\r\n+IPD,2,"::1",%d:ab' % port
    r = d.cmd("AT+CIPSTATE?")
    m = re.fullmatch(rb'\+CIPSTATE:0,"TCPv6","::1",%d,(\d+),0\r\n\r\nOK\r\n' % port, r)
    assert m, r
    lport = int(m.group(1))
    assert echo6.wait_conn().getpeername()[1] == lport
    assert d.cmd("AT+CIPSTATUS") == b'STATUS:3\r\n+CIPSTATUS:0,"TCPv6","::1",%d,%d,0\r\n\r\nOK\r\n' % (port, lport)
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSTATUS") == b"STATUS:4\r\n\r\nOK\r\n"


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_tcpv6_multi_link_conn(v6, echo6):
    d = v6
    d.ok("AT+CIPMUX=1")
    d.ok("AT+SYSMSG=2")
    r = d.cmd('AT+CIPSTART=3,"TCPv6","::1",%d' % echo6.port)
    m = re.fullmatch(rb'\+LINK_CONN:0,3,"TCPv6",0,"::1",%d,(\d+)\r\n\r\nOK\r\n' % echo6.port, r)
    assert m, r
    send(d, b"AT+CIPSEND=3,4", b"ping")
    assert d.read_until(b"ping") == b"\r\n+IPD,3,4:ping"
    # a local IPv6 address to bind
    r = d.cmd('AT+CIPSTART=1,"TCPv6","::1",%d,,"::1"' % echo6.port)
    assert re.fullmatch(rb'\+LINK_CONN:0,1,"TCPv6",0,"::1",%d,\d+\r\n\r\nOK\r\n' % echo6.port, r), r
    assert d.cmd("AT+CIPCLOSE=5") == b"1,CLOSED\r\n3,CLOSED\r\n\r\nOK\r\n"


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_tcpv6_refused(v6):
    d = v6
    port = free_port("::1")
    assert d.cmd('AT+CIPSTART="TCPv6","::1",%d' % port) == b"\r\nERROR\r\n"
    assert d.cmd("AT") == b"\r\nOK\r\n"


# -- UDPv6 ----------------------------------------------------------------------------------------------------------
@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_udpv6_echo(v6, udp6):
    d = v6
    assert d.cmd('AT+CIPSTART="UDPv6","::1",%d' % udp6.port) == b"CONNECT\r\n\r\nOK\r\n"
    send(d, b"AT+CIPSEND=4", b"ping")
    assert d.read_until(b"ping") == b"\r\n+IPD,4:ping"
    r = d.cmd("AT+CIPSTATE?")
    assert re.fullmatch(rb'\+CIPSTATE:0,"UDPv6","::1",%d,\d+,0\r\n\r\nOK\r\n' % udp6.port, r), r
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_udpv6_local_port_dinfo_and_third_party(v6, udp6):
    d = v6
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPDINFO=1")
    lport = free_udp6()
    d.ok('AT+CIPSTART=1,"UDPv6","::1",%d,%d,0' % (udp6.port, lport))
    assert d.cmd("AT+CIPSTATE?") == b'+CIPSTATE:1,"UDPv6","::1",%d,%d,0\r\n\r\nOK\r\n' % (udp6.port, lport)
    send(d, b"AT+CIPSEND=1,3", b"abc")
    assert d.read_until(b"abc") == b'\r\n+IPD,1,3,"::1",%d:abc' % udp6.port
    assert udp6.got[-1][1][1] == lport
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        other.bind(("::1", 0))
        other.sendto(b"xy", ("::1", lport))
        assert d.read_until(b"xy") == b'\r\n+IPD,1,2,"::1",%d:xy' % other.getsockname()[1]
        # to a remote given in the command
        other.settimeout(3)
        send(d, b'AT+CIPSEND=1,3,"::1",%d' % other.getsockname()[1], b"you")
        assert other.recvfrom(10)[0] == b"you"
    finally:
        other.close()


@pytest.mark.ipv6
@pytest.mark.timeout(30)
@pytest.mark.parametrize("typ", ["UDPv6", "TCPv6"])
def test_v6_passthrough(v6, udp6, echo6, typ):
    d = v6
    port = udp6.port if typ == "UDPv6" else echo6.port
    d.ok("AT+CIPMODE=1")
    assert d.cmd('AT+CIPSTART="%s","::1",%d' % (typ, port)) == b"CONNECT\r\n\r\nOK\r\n"
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"raw datagram")
    assert d.read_exactly(12) == b"raw datagram"  # no +IPD framing
    plus(d)
    assert d.quiet(0.3) == b""
    assert d.cmd("AT") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSTATUS").startswith(b'STATUS:3\r\n+CIPSTATUS:0,"%s","::1",%d,' % (typ.encode(), port))
    d.ok("AT+CIPMODE=0")
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


# -- a TCPv6 server ---------------------------------------------------------------------------------------------------
@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_tcpv6_server(v6):
    d = v6
    d.ok("AT+CIPMUX=1")
    d.ok("AT+SYSMSG=2")
    port = free_port("::1")
    assert d.cmd('AT+CIPSERVER=1,%d,"TCPv6"' % port) == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSERVER?") == b'+CIPSERVER:1,%d,"TCPv6",0,0\r\n\r\nOK\r\n' % port
    c = socket.create_connection(("::1", port), timeout=5)
    try:
        cport = c.getsockname()[1]
        assert d.read_until(b"\r\n") == b'+LINK_CONN:0,0,"TCPv6",1,"::1",%d,%d\r\n' % (cport, port)
        d.ok("AT+CIPDINFO=1")
        c.sendall(b"from6")
        assert d.read_until(b"from6") == b'\r\n+IPD,0,5,"::1",%d:from6' % cport
        send(d, b"AT+CIPSEND=0,4", b"back")
        assert c.recv(10) == b"back"
        assert d.cmd("AT+CIPSTATE?") == b'+CIPSTATE:0,"TCPv6","::1",%d,%d,1\r\n\r\nOK\r\n' % (cport, port)
    finally:
        c.close()
    assert d.read_until(b"CLOSED\r\n") == b"0,CLOSED\r\n"
    d.ok("AT+CIPSERVER=0")
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_tcpv6_server_plain_connect(v6):
    d = v6
    d.ok("AT+CIPMUX=1")
    port = free_port("::1")
    d.ok('AT+CIPSERVER=1,%d,"TCPv6"' % port)
    c = socket.create_connection(("::1", port), timeout=5)
    try:
        assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"
        c.sendall(b"hi")
        assert d.read_until(b"hi") == b"\r\n+IPD,0,2:hi"
    finally:
        c.close()
    assert d.read_until(b"CLOSED\r\n") == b"0,CLOSED\r\n"


# -- passive receive ----------------------------------------------------------------------------------------------------
@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_passive_receive_shows_v6_remote(v6, hold6):
    d = v6
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPDINFO=1")
    d.ok("AT+CIPRECVTYPE=0,1")
    d.ok('AT+CIPSTART=0,"TCPv6","::1",%d' % hold6.port)
    c = hold6.wait_conn()
    c.sendall(b"abc")
    assert d.read_until(b"+IPD,0,3\r\n") == b"\r\n+IPD,0,3\r\n"
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:3,-1,-1,-1,-1\r\n\r\nOK\r\n"
    r = d.cmd("AT+CIPRECVDATA=0,10")
    assert r == b'+CIPRECVDATA:3,"::1",%d,abc\r\n\r\nOK\r\n' % hold6.port


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_passive_udpv6_shows_sender(v6, udp6):
    d = v6
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPDINFO=1")
    d.ok("AT+CIPRECVTYPE=2,1")
    lport = free_udp6()
    d.ok('AT+CIPSTART=2,"UDPv6","::1",%d,%d,0' % (udp6.port, lport))
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        other.bind(("::1", 0))
        other.sendto(b"dgram", ("::1", lport))
        assert d.read_until(b"+IPD,2,5\r\n") == b"\r\n+IPD,2,5\r\n"
        r = d.cmd("AT+CIPRECVDATA=2,100")
        assert r == b'+CIPRECVDATA:5,"::1",%d,dgram\r\n\r\nOK\r\n' % other.getsockname()[1]
    finally:
        other.close()


# -- SSLv6 ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.mark.ipv6
@pytest.mark.timeout(60)
def test_sslv6_client(v6, pki):
    d = v6
    srv = TlsServer("::1", pki.server_ctx(), tls_echo)
    try:
        d.ok("AT+CIPSSLCCONF=0")  # no authentication
        assert d.cmd('AT+CIPSTART="SSLv6","::1",%d' % srv.port, timeout=30) == b"CONNECT\r\n\r\nOK\r\n"
        srv.wait_conn()
        send(d, b"AT+CIPSEND=6", b"secret")
        assert d.read_until(b"secret", timeout=10) == b"\r\n+IPD,6:secret"
        assert wait_for(lambda: bytes(srv.received) == b"secret")
        r = d.cmd("AT+CIPSTATE?")
        assert re.fullmatch(rb'\+CIPSTATE:0,"SSLv6","::1",%d,\d+,0\r\n\r\nOK\r\n' % srv.port, r), r
        assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    finally:
        srv.close()
