"""UDP to 255.255.255.255 and to an IPv4 multicast group, inside a private
network namespace (never on the machine's own network)."""
import os
import socket

import pytest

import netns
from board import Dut, VirtualBoard
import serial

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root and iproute2 for a network namespace")


@pytest.fixture(scope="module")
def ns_board(tmp_path_factory, opts):
    if opts.port:
        pytest.skip("host-only: the virtual board runs inside a namespace")
    ns = netns.Netns("attest%d" % os.getpid())
    d = tmp_path_factory.mktemp("nsboard")
    vb = VirtualBoard(d / "flash", d / "log.txt", prefix=ns.prefix)
    ser = serial.serial_for_url(vb.path, 115200, timeout=0.1)
    yield ns, Dut(ser)
    ser.close()
    vb.close()
    ns.close()


@pytest.fixture
def nsdut(ns_board, opts):
    ns, d = ns_board
    d.drain()
    d.reset()
    d.ok("ATE0")
    d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password))
    return ns, d


def send(d, head, data):
    d.write(head + b"\r\n")
    d.read_until(b">")
    d.write(data)
    d.read_until(b"SEND OK\r\n")


def test_broadcast(nsdut):
    ns, d = nsdut
    peer = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    peer.bind(("0.0.0.0", 5000))
    peer.settimeout(3)
    try:
        d.ok('AT+CIPSTART="UDP","255.255.255.255",5000,5001,0')
        send(d, b"AT+CIPSEND=5", b"bcast")
        assert peer.recvfrom(100)[0] == b"bcast"
        peer.sendto(b"back", ("255.255.255.255", 5001))
        assert d.read_until(b"back") == b"\r\n+IPD,4:back"
    finally:
        peer.close()


def test_multicast_group(nsdut):
    ns, d = nsdut
    group = "239.1.2.3"
    peer = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    peer.bind(("0.0.0.0", 6001))
    peer.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
    peer.settimeout(3)
    sender = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok('AT+CIPSTART=1,"UDP","%s",6001,6000,0' % group)
        send(d, b"AT+CIPSEND=1,6", b"to-grp")
        assert peer.recvfrom(100)[0] == b"to-grp"
        sender.sendto(b"from-grp", (group, 6000))  # the board joined the group
        assert d.read_until(b"from-grp") == b"\r\n+IPD,1,8:from-grp"
    finally:
        peer.close()
        sender.close()
