"""AT+PING: IPv4, IPv6, names, a timeout inside a private network namespace, and
other links keep flowing while a ping is outstanding."""
import os
import re
import subprocess
import time

import pytest

import netns
from board import Dut, VirtualBoard
from peers import TcpServer, hold
import serial

PING = re.compile(rb"\+PING:(\d+)\r\n\r\nOK\r\n")


def test_ping_ipv4(joined, host_ip):
    r = joined.cmd('AT+PING="%s"' % host_ip, timeout=10)
    m = PING.fullmatch(r)
    assert m, r
    assert 1 <= int(m.group(1)) < 1000


def test_ping_name_and_localhost(joined):
    assert PING.fullmatch(joined.cmd('AT+PING="localhost"', timeout=10))


@pytest.mark.ipv6
def test_ping_ipv6(joined, vboard):
    joined.ok("AT+CIPV6=1")
    assert PING.fullmatch(joined.cmd('AT+PING="::1"', timeout=10))


def test_ping_unknown_name(joined, vboard, tmp_path):
    """A name that does not resolve: +PING:TIMEOUT then ERROR, as the spec says."""
    joined.ok('AT+CIPDNS=1,"127.0.0.66"')  # nobody answers there
    r = joined.cmd('AT+PING="no-such-host.test"', timeout=40)
    assert r == b"+PING:TIMEOUT\r\n\r\nERROR\r\n"


@pytest.mark.parametrize("line", ['AT+PING=', 'AT+PING=1', 'AT+PING="%s"' % ("a" * 65), 'AT+PING',
                                  'AT+PING="a","b"'])
def test_ping_bad(joined, line):
    assert joined.cmd(line) == b"\r\nERROR\r\n"


@pytest.fixture(scope="module")
def ns_board(tmp_path_factory, opts):
    if opts.port:
        pytest.skip("host-only: the virtual board runs inside a namespace")
    if not netns.available():
        pytest.skip("needs root and iproute2 for a network namespace")
    ns = netns.Netns("atping%d" % os.getpid())
    # A veth pair whose far end is down: 10.99.0.5 is on its subnet, and nobody answers there.
    for c in ("ip link add v0 type veth peer name v1", "ip addr add 10.99.0.2/24 dev v0", "ip link set v0 up"):
        subprocess.run(ns.prefix + c.split(), check=True)
    d = tmp_path_factory.mktemp("pingns")
    vb = VirtualBoard(d / "flash", d / "log.txt", prefix=ns.prefix)
    ser = serial.serial_for_url(vb.path, 115200, timeout=0.1)
    yield ns, Dut(ser)
    ser.close()
    vb.close()
    ns.close()


@pytest.mark.timeout(60)
def test_ping_timeout_and_loop_keeps_going(ns_board, opts):
    ns, d = ns_board
    d.drain()
    d.reset()
    d.ok("ATE0")
    d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password))
    d.ok("AT+CIPMUX=1")
    ls = ns.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    d.ok('AT+CIPSTART=0,"TCP","127.0.0.1",%d' % ls.getsockname()[1])
    c, _ = ls.accept()
    t = time.monotonic()
    d.write(b'AT+PING="10.99.0.5"\r\n')
    time.sleep(0.5)  # the ping is under way (it prints nothing until it ends) when the data comes
    c.sendall(b"during")
    assert d.read_until(b"during", timeout=5) == b"\r\n+IPD,0,6:during"  # before the ping ends
    d.write(b"AT\r\n")
    assert d.read_until(b"busy p...\r\n") == b"\r\nbusy p...\r\n"
    assert d.read_until(b"\r\nERROR\r\n", timeout=10) == b"+PING:TIMEOUT\r\n\r\nERROR\r\n"
    assert 2.5 < time.monotonic() - t < 6
    c.close()
    ls.close()
