"""The working set a WROOM must hold (issue 13's target for the frozen image):
five TCP links at once, one of them a client of the board's own server, passive
receive on every link with data waiting on all of them, and an AT+CIPSENDL
running on one while the others are read; then passthrough both ways. Every
byte arrives, in order, and the board still answers.

On the default boards it checks the behaviour. Given a MicroPython and a heap
(VBOARD_MICROPYTHON, VBOARD_HEAP, VBOARD_TARGET=wroom: tools/vboard.py), it is
how BENCHMARKS.md ("Heap") measures the smallest GC heap the firmware, frozen
into a 32-bit MicroPython, serves this in."""
import os
import re
import socket
import threading
import time

import pytest

from peers import TcpServer, free_port, hold, sha, sink, wait_for

SIZE = 20000  # per passive link
SENDL = 200000  # through AT+CIPSENDL meanwhile


def read_round(d, want):
    """AT+CIPRECVDATA round the links until each has its `want[lid]` bytes."""
    got = {lid: bytearray() for lid in want}
    deadline = time.monotonic() + 60
    while any(len(got[lid]) < n for lid, n in want.items()):
        assert time.monotonic() < deadline, {lid: len(g) for lid, g in got.items()}
        for lid, n in want.items():
            if len(got[lid]) >= n:
                continue
            d.write(b"AT+CIPRECVDATA=%d,2048\r\n" % lid)
            r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"), timeout=20)
            if r.endswith(b"ERROR\r\n"):
                continue
            k = int(re.search(rb"\+CIPRECVDATA:(\d+),$", r).group(1))
            got[lid] += d.read_exactly(k)
            d.read_until(b"\r\nOK\r\n")
    return got


@pytest.mark.timeout(180)
def test_five_passive_links_server_and_sendl(joined, host_ip):
    d = joined
    out = TcpServer(host_ip, hold)
    snk = TcpServer(host_ip, sink)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok("AT+CIPRECVMODE=1")
        port = free_port(host_ip)
        d.ok("AT+CIPSERVER=1,%d" % port)
        peers = {}
        for lid in range(3):
            d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, out.port))
            # the peer's accept may come after the board's OK: wait for this link's
            assert wait_for(lambda: len(out.conns) == lid + 1)
            peers[lid] = out.conns[lid]
        d.ok('AT+CIPSTART=3,"TCP","%s",%d' % (host_ip, snk.port))
        client = socket.create_connection((host_ip, port), timeout=5)
        d.read_until(b"4,CONNECT\r\n")
        peers[4] = client
        data = {lid: os.urandom(SIZE) for lid in peers}
        for lid, c in peers.items():
            threading.Thread(target=c.sendall, args=(data[lid],), daemon=True).start()
        # AT+CIPSENDL on link 3 while the four others hold data for the host
        blob = os.urandom(SENDL)
        d.write(b"AT+CIPSENDL=3,%d\r\n" % SENDL)
        d.read_until(b">")
        d.write(blob)
        d.read_until(b"SEND OK\r\n", timeout=60)
        got = read_round(d, {lid: SIZE for lid in peers})
        for lid in peers:
            assert sha(got[lid]) == sha(data[lid]), lid
        assert wait_for(lambda: len(snk.received) == SENDL, 20)
        assert sha(snk.received) == sha(blob)
        assert d.cmd("AT") == b"\r\nOK\r\n"
        d.ok("AT+CIPCLOSE=5")
        d.ok("AT+CIPSERVER=0")
    finally:
        out.close()
        snk.close()


@pytest.mark.timeout(180)
def test_passthrough_both_ways(joined, echo_srv, host_ip):
    """Passthrough (AT+CIPMODE=1): 200 KB up and the same 200 KB echoed back."""
    d = joined
    d.ok("AT+CIPMUX=0")
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    d.ok("AT+CIPMODE=1")
    d.write(b"AT+CIPSEND\r\n")
    d.read_until(b">")
    blob = os.urandom(SENDL)
    back = bytearray()
    for i in range(0, SENDL, 4096):
        d.ser.write(blob[i:i + 4096])
        back += d.ser.read(65536)
    deadline = time.monotonic() + 30
    while len(back) < SENDL:
        assert time.monotonic() < deadline, len(back)
        back += d.ser.read(65536)
    assert sha(back) == sha(blob)
    d.quiet(1.1)
    d.write(b"+++")
    d.quiet(1.1)
    d.ok("AT+CIPMODE=0")
    d.ok("AT+CIPCLOSE")
