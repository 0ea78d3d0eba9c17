"""AT+CIPCONNPERSIST: query and set in single and multiple connection mode, and
what happens to TCP links when the station leaves the AP (AT+CWQAP): closed
(CLOSED) without persistence, kept with it."""
import itertools
import re
import socket
import time

import pytest

from peers import TcpServer, echo


def cwqap(d, closed=(), timeout=5.0):
    """AT+CWQAP; return everything it printed: OK, WIFI DISCONNECT and the
    given CLOSED lines, in whatever order they come."""
    want = [b"\r\nOK\r\n", b"WIFI DISCONNECT\r\n"] + list(closed)
    d.write(b"AT+CWQAP\r\n")
    out = b""
    deadline = time.monotonic() + timeout
    while not all(w in out for w in want) and time.monotonic() < deadline:
        out += d.quiet(0.1)
    return out + d.quiet(0.3)


def orders(*tokens):
    return [b"".join(p) for p in itertools.permutations(tokens)]


def peer_sees_eof(c, timeout=3.0):
    c.settimeout(timeout)
    try:
        return c.recv(100) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


@pytest.mark.timeout(30)
def test_query_and_set_single(dut):
    d = dut
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST=1") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST=0") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", ["AT+CIPCONNPERSIST=2", "AT+CIPCONNPERSIST=-1", "AT+CIPCONNPERSIST=0,1",
                                  'AT+CIPCONNPERSIST="1"', "AT+CIPCONNPERSIST=", "AT+CIPCONNPERSIST"])
def test_bad_single(dut, line):
    d = dut
    assert d.cmd(line) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_query_and_set_multi(dut):
    d = dut
    d.ok("AT+CIPMUX=1")
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0,0,0,0,0\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST=2,1") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0,0,1,0,0\r\n\r\nOK\r\n"
    d.ok("AT+CIPCONNPERSIST=4,1")
    d.ok("AT+CIPCONNPERSIST=0,1")
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:1,0,1,0,1\r\n\r\nOK\r\n"
    d.ok("AT+CIPCONNPERSIST=2,0")
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:1,0,0,0,1\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", ["AT+CIPCONNPERSIST=5,1", "AT+CIPCONNPERSIST=-1,1", "AT+CIPCONNPERSIST=0,2",
                                  "AT+CIPCONNPERSIST=1", "AT+CIPCONNPERSIST=0,1,1", "AT+CIPCONNPERSIST=,1",
                                  'AT+CIPCONNPERSIST=0,"1"'])
def test_bad_multi(dut, line):
    d = dut
    d.ok("AT+CIPMUX=1")
    assert d.cmd(line) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0,0,0,0,0\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_cwqap_closes_link_without_persist(joined, echo_srv, host_ip):
    d = joined
    assert d.cmd("AT+CIPCONNPERSIST?") == b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n"
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    c = echo_srv.wait_conn()
    out = cwqap(d, [b"CLOSED\r\n"])
    assert out in orders(b"CLOSED\r\n", b"\r\nOK\r\n", b"WIFI DISCONNECT\r\n"), out
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"
    assert peer_sees_eof(c)  # the board closed it itself


@pytest.mark.timeout(30)
def test_cwqap_keeps_link_with_persist(joined, echo_srv, host_ip, opts):
    d = joined
    d.ok("AT+CIPCONNPERSIST=1")
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, echo_srv.port))
    c = echo_srv.wait_conn()
    out = cwqap(d)
    assert out in orders(b"\r\nOK\r\n", b"WIFI DISCONNECT\r\n"), out  # no CLOSED
    r = d.cmd("AT+CIPSTATE?")
    assert re.fullmatch(rb'\+CIPSTATE:0,"TCP","%s",%d,\d+,0\r\n\r\nOK\r\n' % (
        re.escape(host_ip.encode()), echo_srv.port), r), r
    assert not peer_sees_eof(c, 0.5)
    # back on the same network, the link that was kept carries data again
    r = d.cmd('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    assert r.endswith(b"\r\nOK\r\n"), r
    d.write(b"AT+CIPSEND=4\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"kept")
    d.read_until(b"SEND OK\r\n")
    assert d.read_until(b"kept") == b"\r\n+IPD,4:kept"


@pytest.mark.timeout(30)
def test_cwqap_multi_per_link(joined, host_ip):
    """Multiple connections: only the links without persistence are closed."""
    d = joined
    srvs = [TcpServer(host_ip, echo) for _ in range(3)]
    try:
        d.ok("AT+CIPMUX=1")
        d.ok("AT+CIPCONNPERSIST=1,1")
        for lid, s in enumerate(srvs):
            d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, s.port))
        conns = [s.wait_conn() for s in srvs]
        out = cwqap(d, [b"0,CLOSED\r\n", b"2,CLOSED\r\n"])
        assert out.count(b"CLOSED\r\n") == 2, out
        rest = out.replace(b"0,CLOSED\r\n", b"").replace(b"2,CLOSED\r\n", b"")
        assert rest in orders(b"\r\nOK\r\n", b"WIFI DISCONNECT\r\n"), out
        for tok in (b"0,CLOSED\r\n", b"2,CLOSED\r\n"):  # whole lines, not inside another one
            assert out.startswith(tok) or re.search(rb"\n" + re.escape(tok), out), out
        r = d.cmd("AT+CIPSTATE?")
        assert re.fullmatch(rb'\+CIPSTATE:1,"TCP","%s",%d,\d+,0\r\n\r\nOK\r\n' % (
            re.escape(host_ip.encode()), srvs[1].port), r), r
        assert peer_sees_eof(conns[0]) and peer_sees_eof(conns[2])
        assert not peer_sees_eof(conns[1], 0.5)
    finally:
        for s in srvs:
            s.close()

