"""Names: AT+CIPDNS and AT+CIPDOMAIN against DNS servers run by the test (dnslib
on port 53 of spare loopback addresses), names in AT+CIPSTART and AT+CIPSEND,
and a slow or dead DNS server that never stops data on other links."""
import os
import re
import time

import pytest

from board import own_board
from netpeers import DnsServer, NoSpareAddress, spare_servers
from peers import TcpServer, UdpEcho, echo, hold, wait_for

DEFAULTS = b'"208.67.222.222","114.114.114.114","8.8.8.8"'


def records(host_ip):
    return {
        "echo.test": {"A": [host_ip]},
        "udp1.test": {"A": [host_ip]},
        "udp2.test": {"A": [host_ip]},
        "multi.test": {"A": ["10.1.0.1", "10.1.0.2", "10.1.0.3"]},
        "both.test": {"A": ["10.2.0.1"], "AAAA": ["2001:db8::2"]},
        "v6only.test": {"AAAA": ["2001:db8::7"]},
        "v6.test": {"AAAA": ["::1"]},
    }


@pytest.fixture
def dns(vboard, host_ip):
    """Factory of DNS servers on spare loopback addresses, closed after the test."""
    for make in spare_servers(DnsServer, "a DNS server"):
        def server(mode="answer", recs=None, **kw):
            return make(records(host_ip) if recs is None else recs, mode=mode, **kw)

        yield server


def use(d, *servers):
    """AT+CIPDNS=1 with these servers (DnsServer objects or addresses)."""
    d.ok("AT+CIPDNS=1," + ",".join('"%s"' % getattr(s, "host", s) for s in servers))


def resolv_servers():
    """The servers the virtual board takes from the host with AT+CIPDNS=0
    (lib/at/ports/unix.py: $VBOARD_RESOLV_CONF or /etc/resolv.conf, at most 3)."""
    out = []
    try:
        with open(os.getenv("VBOARD_RESOLV_CONF") or "/etc/resolv.conf") as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0] == "nameserver" and p[1] not in out:
                    out.append(p[1])
    except OSError:
        pass
    return out[:3]


def auto_line(twin=False, joined=False, station_ip="127.0.0.1"):
    """AT+CIPDNS? with AT+CIPDNS=0: the servers the network gave, else the defaults.
    The unix personality reads the host's resolv.conf, joined or not. An ESP32 asks
    the DNS server DHCP gave the station, WLAN.ifconfig()[3] (lib/at/ports/esp32.py
    dns_servers): none before a join; the twin's air hands out the station's own
    address (tools/twin/network.py, IP)."""
    if twin:
        srv = [station_ip] if joined else []
    else:
        srv = resolv_servers()
    return b"+CIPDNS:0," + (b",".join(b'"%s"' % s.encode() for s in srv) if srv else DEFAULTS)


def cipv6_on(d, twin):
    """AT+CIPV6=1 where the runtime has IPv6; on an ESP32 it answers ERROR (its
    sockets are IPv4-only, README "Supported targets"; the ERR CODE is checked in
    tests/test_chip.py), and what follows runs without IPv6."""
    if twin:
        assert d.cmd("AT+CIPV6=1") == b"\r\nERROR\r\n"
    else:
        d.ok("AT+CIPV6=1")


# -- AT+CIPDNS -----------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_cipdns_query_default(dut, vboard, twin, opts):
    """Automatic DNS: the servers in use are those the network gave (the host's
    resolv.conf stands in for DHCP on the virtual board; on the ESP32 twin the
    DHCP server the station got when it joined)."""
    assert dut.cmd("AT+CIPDNS?") == auto_line(twin) + b"\r\n\r\nOK\r\n"
    dut.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    assert dut.cmd("AT+CIPDNS?") == auto_line(twin, joined=True) + b"\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_cipdns_set_and_query(dut):
    d = dut
    d.ok('AT+CIPDNS=1,"127.0.0.2"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"127.0.0.2"\r\n\r\nOK\r\n'
    d.ok('AT+CIPDNS=1,"1.1.1.1","8.8.4.4"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"1.1.1.1","8.8.4.4"\r\n\r\nOK\r\n'
    d.ok('AT+CIPDNS=1,"1.1.1.1","8.8.4.4","9.9.9.9"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"1.1.1.1","8.8.4.4","9.9.9.9"\r\n\r\nOK\r\n'
    # enable=1 without servers: the three defaults
    d.ok("AT+CIPDNS=1")
    assert d.cmd("AT+CIPDNS?") == b"+CIPDNS:1," + DEFAULTS + b"\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_cipdns_back_to_automatic(dut, vboard, twin):
    d = dut
    d.ok('AT+CIPDNS=1,"1.1.1.1"')
    d.ok("AT+CIPDNS=0")
    assert d.cmd("AT+CIPDNS?") == auto_line(twin) + b"\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_cipdns_ipv6_servers(dut, twin):
    """The spec's own example: three IPv6 servers."""
    d = dut
    if twin:
        # No IPv6 sockets on the ESP32 (README "Supported targets"): ERROR (ERR CODE
        # 0x010a0057, tests/test_chip.py), and nothing changes.
        before = d.cmd("AT+CIPDNS?")
        for line in ('AT+CIPDNS=1,"240c::6666","2001:4860:4860::8888","240e:5a::6666"',
                     'AT+CIPDNS=1,"1.1.1.1","::1"'):
            assert d.cmd(line) == b"\r\nERROR\r\n", line
            assert d.cmd("AT+CIPDNS?") == before
        return
    d.ok('AT+CIPDNS=1,"240c::6666","2001:4860:4860::8888","240e:5a::6666"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"240c::6666","2001:4860:4860::8888","240e:5a::6666"\r\n\r\nOK\r\n'
    d.ok('AT+CIPDNS=1,"1.1.1.1","::1"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"1.1.1.1","::1"\r\n\r\nOK\r\n'


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", [
    'AT+CIPDNS=1,"1.1.1.1","1.1.1.1"',  # "cannot be set to the same server"
    'AT+CIPDNS=1,"1.1.1.1","2.2.2.2","1.1.1.1"',
    'AT+CIPDNS=1,"1.2.3"',
    'AT+CIPDNS=1,"256.1.1.1"',
    'AT+CIPDNS=1,"1.2.3.4.5"',
    'AT+CIPDNS=1,"1.2.3.x"',
    'AT+CIPDNS=1,"dns.google"',
    'AT+CIPDNS=1,""',
    'AT+CIPDNS=1,"2001:::1"',
    'AT+CIPDNS=1,"1:2:3"',
    'AT+CIPDNS=1,"12345::1"',
    'AT+CIPDNS=1,"1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"',
    'AT+CIPDNS=2',
    'AT+CIPDNS=-1',
    'AT+CIPDNS="1"',
    'AT+CIPDNS=1,1.1.1.1',
    'AT+CIPDNS=',
])
def test_cipdns_bad(dut, line):
    d = dut
    before = d.cmd("AT+CIPDNS?")
    assert d.cmd(line) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPDNS?") == before  # nothing changed


@pytest.mark.timeout(60)
def test_cipdns_sysstore(dut, vboard, twin):
    """Saved with AT+SYSSTORE=1 (kept across AT+RST), not with AT+SYSSTORE=0."""
    d = dut
    d.ok("AT+SYSSTORE=0")
    d.ok('AT+CIPDNS=1,"9.9.9.9"')
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"9.9.9.9"\r\n\r\nOK\r\n'
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPDNS?") == auto_line(twin) + b"\r\n\r\nOK\r\n"
    d.ok("AT+SYSSTORE=1")
    d.ok('AT+CIPDNS=1,"127.0.0.2","1.1.1.1"')
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"127.0.0.2","1.1.1.1"\r\n\r\nOK\r\n'
    # with SYSSTORE=0 a change lives until the reset; the saved value comes back
    d.ok("AT+SYSSTORE=0")
    d.ok("AT+CIPDNS=0")
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:1,"127.0.0.2","1.1.1.1"\r\n\r\nOK\r\n'


# -- AT+CIPDOMAIN -------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_cipdomain_a_record(joined, dns, host_ip):
    d = joined
    s = dns()
    use(d, s)
    assert d.cmd('AT+CIPDOMAIN="echo.test"') == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()
    assert s.names() == [("echo.test", "A")]
    # the name is not case sensitive, a trailing dot is the same name
    assert d.cmd('AT+CIPDOMAIN="Echo.TEST"') == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()


@pytest.mark.timeout(30)
def test_cipdomain_ip_network(joined, dns, twin):
    """<ip network>: 1 IPv4 preferred (IPv6 if there is no IPv4), 2 IPv4 only, 3 IPv6 only.
    AAAA records come over the IPv4 server: an ESP32 resolves them too."""
    d = joined
    cipv6_on(d, twin)
    use(d, dns())
    assert d.cmd('AT+CIPDOMAIN="both.test"') == b'+CIPDOMAIN:"10.2.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="both.test",1') == b'+CIPDOMAIN:"10.2.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="both.test",2') == b'+CIPDOMAIN:"10.2.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="both.test",3') == b'+CIPDOMAIN:"2001:db8::2"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="v6only.test",1', timeout=10) == b'+CIPDOMAIN:"2001:db8::7"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="v6only.test",3') == b'+CIPDOMAIN:"2001:db8::7"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="v6only.test",2', timeout=10) == b"\r\nERROR\r\n"
    assert d.cmd('AT+CIPDOMAIN="echo.test",3', timeout=10) == b"\r\nERROR\r\n"


@pytest.mark.timeout(30)
def test_cipdomain_show_all(joined, dns):
    d = joined
    use(d, dns())
    assert d.cmd('AT+CIPDOMAIN="multi.test"') == b'+CIPDOMAIN:"10.1.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="multi.test",1,0,0') == b'+CIPDOMAIN:"10.1.0.1"\r\n\r\nOK\r\n'
    all3 = b'+CIPDOMAIN:"10.1.0.1"\r\n+CIPDOMAIN:"10.1.0.2"\r\n+CIPDOMAIN:"10.1.0.3"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="multi.test",1,0,1') == all3
    assert d.cmd('AT+CIPDOMAIN="multi.test",2,5000,1') == all3
    assert d.cmd('AT+CIPDOMAIN="echo.test",2,0,1') == b'+CIPDOMAIN:"127.0.0.1"\r\n\r\nOK\r\n'


@pytest.mark.timeout(30)
def test_cipdomain_localhost_and_literals_stay_local(joined, dns, twin):
    """localhost and IP literals resolve without a single DNS query (IPv6 ones as
    text on an ESP32 too)."""
    d = joined
    cipv6_on(d, twin)
    s = dns()
    use(d, s)
    assert d.cmd('AT+CIPDOMAIN="localhost"') == b'+CIPDOMAIN:"127.0.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="localhost",2') == b'+CIPDOMAIN:"127.0.0.1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="localhost",3') == b'+CIPDOMAIN:"::1"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="192.168.7.9"') == b'+CIPDOMAIN:"192.168.7.9"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="192.168.7.9",2') == b'+CIPDOMAIN:"192.168.7.9"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="2001:db8::5",3') == b'+CIPDOMAIN:"2001:db8::5"\r\n\r\nOK\r\n'
    assert d.cmd('AT+CIPDOMAIN="::1"') == b'+CIPDOMAIN:"::1"\r\n\r\nOK\r\n'
    time.sleep(0.2)  # the window in which no query may reach the server (what it got is checked)
    assert s.queries == []


@pytest.mark.timeout(30)
def test_cipdomain_nxdomain(joined, dns):
    """NXDOMAIN is an answer: ERROR at once, no other server is asked; with
    AT+SYSLOG=1 the ERR CODE says the name did not resolve."""
    d = joined
    nx = dns(recs={})  # knows no name at all
    other = dns()  # would know it
    use(d, nx, other)
    t = time.monotonic()
    assert d.cmd('AT+CIPDOMAIN="echo.test"') == b"\r\nERROR\r\n"
    assert time.monotonic() - t < 1.0
    d.ok("AT+SYSLOG=1")
    assert d.cmd('AT+CIPDOMAIN="echo.test",2') == b"ERR CODE:0x010a0060\r\n\r\nERROR\r\n"
    assert d.cmd('AT+CIPDOMAIN="no-such-name.test",3') == b"ERR CODE:0x010a0060\r\n\r\nERROR\r\n"
    assert nx.queries and other.queries == []
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("prefer,timeout_ms,dead", [(2, 2000, 1), (1, 2000, 1), (2, 4000, 2), (3, 1000, 1)])
def test_cipdomain_timeout_dead_server(joined, dns, twin, prefer, timeout_ms, dead):
    """<timeout>: with servers that never answer, ERROR comes within about the
    given time ("the command will return within the specified timeout")."""
    d = joined
    cipv6_on(d, twin)
    droppers = [dns("drop") for _ in range(dead)]
    use(d, *droppers)
    d.ok("AT+SYSLOG=1")
    t = time.monotonic()
    r = d.cmd('AT+CIPDOMAIN="echo.test",%d,%d' % (prefer, timeout_ms), timeout=timeout_ms / 1000 + 15)
    took = time.monotonic() - t
    assert r == b"ERR CODE:0x010a0060\r\n\r\nERROR\r\n"
    assert timeout_ms / 1000 * 0.6 < took < timeout_ms / 1000 + 0.7, took
    assert all(s.queries for s in droppers)  # every server was asked
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(60)
def test_cipdomain_dead_servers_default_timeout(joined, dns):
    """No <timeout>: every server is tried, then ERROR (not a hang)."""
    d = joined
    a, b = dns("drop"), dns("drop")
    use(d, a, b)
    t = time.monotonic()
    assert d.cmd('AT+CIPDOMAIN="echo.test",2', timeout=40) == b"\r\nERROR\r\n"
    assert time.monotonic() - t < 35
    assert a.queries and b.queries
    assert a.queries[0][0] < b.queries[0][0]  # in the configured order


@pytest.mark.timeout(30)
def test_failover_dead_to_good(joined, dns, host_ip):
    d = joined
    dead, good = dns("drop"), dns()
    use(d, dead, good)
    t = time.monotonic()
    r = d.cmd('AT+CIPDOMAIN="echo.test"', timeout=15)
    assert r == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()
    assert time.monotonic() - t < 6
    assert dead.queries and good.queries
    assert dead.queries[0][0] < good.queries[0][0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["truncate", "garbage"])
def test_bad_replies_are_skipped(joined, dns, host_ip, bad):
    """A truncated reply (TC bit: over UDP its answer is incomplete) and garbage
    are not answers: the next server is asked and its answer used."""
    d = joined
    b, good = dns(bad), dns()
    use(d, b, good)
    r = d.cmd('AT+CIPDOMAIN="echo.test",2', timeout=15)
    assert r == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()
    assert b.queries and good.queries


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["truncate", "garbage"])
def test_only_bad_replies_error(joined, dns, bad):
    d = joined
    b = dns(bad)
    use(d, b)
    r = d.cmd('AT+CIPDOMAIN="echo.test",2,3000', timeout=15)
    assert r == b"\r\nERROR\r\n"
    assert b.queries
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", [
    'AT+CIPDOMAIN=""',
    'AT+CIPDOMAIN="echo.test",0',
    'AT+CIPDOMAIN="echo.test",4',
    'AT+CIPDOMAIN="echo.test",1,60001',
    'AT+CIPDOMAIN="echo.test",1,-1',
    'AT+CIPDOMAIN="echo.test",1,0,2',
    'AT+CIPDOMAIN="echo.test",1,0,1,1',
    'AT+CIPDOMAIN=echo.test',
    'AT+CIPDOMAIN=1',
    'AT+CIPDOMAIN?',
    'AT+CIPDOMAIN',
])
def test_cipdomain_bad(joined, dns, line):
    d = joined
    s = dns()
    use(d, s)
    assert d.cmd(line) == b"\r\nERROR\r\n"
    assert s.queries == []


@pytest.mark.timeout(30)
@pytest.mark.ipv6
def test_dns_server_over_ipv6(joined, vboard, host_ip):
    """An IPv6 DNS server (on ::1) answers the board."""
    try:
        s = DnsServer(records(host_ip), host="::1")
    except OSError as e:
        pytest.skip("cannot run a DNS server on [::1]:53: %r" % e)
    try:
        d = joined
        d.ok("AT+CIPV6=1")
        d.ok('AT+CIPDNS=1,"::1"')
        assert d.cmd('AT+CIPDOMAIN="echo.test"') == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()
        assert d.cmd('AT+CIPDOMAIN="both.test",3') == b'+CIPDOMAIN:"2001:db8::2"\r\n\r\nOK\r\n'
        assert ("echo.test", "A") in s.names()
    finally:
        s.close()


@pytest.mark.timeout(60)
def test_automatic_dns_uses_network_servers(tmp_path, opts, host_ip, twin):
    """AT+CIPDNS=0: the board asks the servers the network gave it. The virtual
    board reads them from $VBOARD_RESOLV_CONF (standing in for DHCP). The ESP32
    asks the one DHCP gave the station, WLAN.ifconfig()[3], which the twin's air
    sets to the station's own address (--ip): a twin whose station address is the
    test's DNS server asks that server."""
    if opts.port:
        pytest.skip("needs the virtual board (host-only)")
    try:
        s = DnsServer(records(host_ip))
    except NoSpareAddress as e:
        pytest.skip("no loopback address to run a DNS server on: %s" % e)
    if twin:
        kw = {"extra": ["--ip", s.host]}
    else:
        conf = tmp_path / "resolv.conf"
        conf.write_text("# test\nsearch example\nnameserver %s\nnameserver %s\n" % (s.host, s.host))
        kw = {"prefix": ("env", "VBOARD_RESOLV_CONF=%s" % conf)}
    try:
        with own_board(tmp_path / "flash", tmp_path / "log.txt", **kw) as d:
            d.reset()
            d.ok("ATE0")
            d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
            assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:0,"%s"\r\n\r\nOK\r\n' % s.host.encode()
            assert d.cmd('AT+CIPDOMAIN="echo.test"') == b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % host_ip.encode()
            assert s.names() == [("echo.test", "A")]
            # manual servers take over; AT+CIPDNS=0 gives the network's back
            d.ok('AT+CIPDNS=1,"1.1.1.1"')
            d.ok("AT+CIPDNS=0")
            assert d.cmd("AT+CIPDNS?") == b'+CIPDNS:0,"%s"\r\n\r\nOK\r\n' % s.host.encode()
    finally:
        s.close()


# -- names in AT+CIPSTART / AT+CIPSEND ----------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_cipstart_tcp_by_name(joined, dns, echo_srv):
    d = joined
    s = dns()
    use(d, s)
    assert d.cmd('AT+CIPSTART="TCP","echo.test",%d' % echo_srv.port) == b"CONNECT\r\n\r\nOK\r\n"
    assert ("echo.test", "A") in s.names()
    d.write(b"AT+CIPSEND=5\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"hello")
    assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n"
    assert d.read_until(b"hello") == b"\r\n+IPD,5:hello"
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_link_by_name_reports_remote_ip(joined, dns, echo_srv, host_ip):
    """AT+CIPSTATE's <"remote IP">, +IPD's <"remote IP"> and +LINK_CONN's
    remote_ip are addresses, also when the link was opened by name."""
    d = joined
    use(d, dns())
    d.ok("AT+CIPDINFO=1")
    d.ok("AT+SYSMSG=2")
    d.ok("AT+CIPMUX=1")
    ip = re.escape(host_ip.encode())
    conn = d.cmd('AT+CIPSTART=0,"TCP","echo.test",%d' % echo_srv.port)
    conn_ok = re.fullmatch(rb'\+LINK_CONN:0,0,"TCP",0,"%s",%d,\d+\r\n\r\nOK\r\n' % (ip, echo_srv.port), conn)
    state = d.cmd("AT+CIPSTATE?")
    state_ok = re.fullmatch(rb'\+CIPSTATE:0,"TCP","%s",%d,\d+,0\r\n\r\nOK\r\n' % (ip, echo_srv.port), state)
    d.write(b"AT+CIPSEND=0,2\r\n")
    d.read_until(b">")
    d.write(b"ab")
    d.read_until(b"SEND OK\r\n")
    ipd = d.read_until(b"ab")
    ipd_ok = ipd == b'\r\n+IPD,0,2,"%s",%d:ab' % (host_ip.encode(), echo_srv.port)
    assert (bool(conn_ok), bool(state_ok), ipd_ok) == (True, True, True), (conn, state, ipd)


@pytest.mark.timeout(30)
def test_cipstart_unknown_name(joined, dns, echo_srv):
    d = joined
    use(d, dns())
    assert d.cmd('AT+CIPSTART="TCP","nope.test",%d' % echo_srv.port) == b"\r\nERROR\r\n"
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSTATUS").startswith(b"STATUS:2\r\n")


@pytest.mark.timeout(30)
def test_udp_by_name_and_cipsend_remote_by_name(joined, dns, host_ip):
    d = joined
    s = dns()
    use(d, s)
    u1, u2 = UdpEcho(host_ip), UdpEcho(host_ip)
    try:
        d.ok("AT+CIPMUX=1")
        assert d.cmd('AT+CIPSTART=0,"UDP","udp1.test",%d' % u1.port) == b"0,CONNECT\r\n\r\nOK\r\n"
        d.write(b"AT+CIPSEND=0,4\r\n")
        assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
        d.write(b"one!")
        assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n"
        assert d.read_until(b"one!") == b"\r\n+IPD,0,4:one!"
        # a remote given by name in AT+CIPSEND
        d.write(b'AT+CIPSEND=0,5,"udp2.test",%d\r\n' % u2.port)
        assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
        d.write(b"there")
        assert d.read_until(b"SEND OK\r\n") == b"\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n"
        assert wait_for(lambda: u2.got and u2.got[-1][0] == b"there")
        assert d.read_until(b"there") == b"\r\n+IPD,0,5:there"
        assert ("udp2.test", "A") in s.names()
        # a name that does not resolve: ERROR before the prompt
        assert d.cmd('AT+CIPSEND=0,5,"nope.test",%d' % u2.port) == b"\r\nERROR\r\n"
        assert [g[0] for g in u1.got] == [b"one!"]
    finally:
        u1.close()
        u2.close()


@pytest.mark.timeout(30)
@pytest.mark.ipv6
def test_tcpv6_by_name(joined, dns, vboard):
    d = joined
    srv = TcpServer("::1", echo)
    try:
        d.ok("AT+CIPV6=1")
        use(d, dns())
        assert d.cmd('AT+CIPSTART="TCPv6","v6.test",%d' % srv.port) == b"CONNECT\r\n\r\nOK\r\n"
        d.write(b"AT+CIPSEND=3\r\n")
        d.read_until(b">")
        d.write(b"six")
        d.read_until(b"SEND OK\r\n")
        assert d.read_until(b"six") == b"\r\n+IPD,3:six"
    finally:
        srv.close()


# -- a slow resolver never stops the data -------------------------------------------------------------------
@pytest.mark.timeout(40)
def test_dead_dns_does_not_stop_other_links(joined, dns, host_ip):
    """While AT+CIPDOMAIN waits on a server that never answers, a TCP link keeps
    receiving (+IPD comes before the ERROR), new commands get "busy p...", and
    the link sends as usual afterwards."""
    d = joined
    dead = dns("drop")
    use(d, dead)
    srv = TcpServer(host_ip, hold)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok('AT+CIPSTART=0,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        t = time.monotonic()
        d.write(b'AT+CIPDOMAIN="slow.test",2,4000\r\n')
        assert dead.asked.wait(3)
        c.sendall(b"tick")
        assert d.read_until(b"tick", timeout=2) == b"\r\n+IPD,0,4:tick"
        d.write(b"AT\r\n")
        assert d.read_until(b"busy p...\r\n", timeout=2) == b"\r\nbusy p...\r\n"
        c.sendall(b"tock")
        assert d.read_until(b"tock", timeout=2) == b"\r\n+IPD,0,4:tock"
        assert time.monotonic() - t < 3.5  # all of it while the lookup was still waiting
        assert d.read_until(b"\r\nERROR\r\n", timeout=10) == b"\r\nERROR\r\n"
        assert d.cmd("AT") == b"\r\nOK\r\n"
        d.write(b"AT+CIPSEND=0,4\r\n")
        assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
        d.write(b"done")
        d.read_until(b"SEND OK\r\n")
        c.settimeout(3)
        assert c.recv(10) == b"done"
    finally:
        srv.close()


@pytest.mark.timeout(40)
def test_dead_dns_during_cipstart_by_name(joined, dns, host_ip, echo_srv):
    """The same while AT+CIPSTART waits for the name of its remote."""
    d = joined
    dead = dns("drop")
    use(d, dead)
    srv = TcpServer(host_ip, hold)
    try:
        d.ok("AT+CIPMUX=1")
        d.ok('AT+CIPSTART=0,"TCP","%s",%d' % (host_ip, srv.port))
        c = srv.wait_conn()
        d.write(b'AT+CIPSTART=1,"TCP","echo.test",%d,,,3000\r\n' % echo_srv.port)
        assert dead.asked.wait(3)
        c.sendall(b"flow")
        assert d.read_until(b"flow", timeout=2) == b"\r\n+IPD,0,4:flow"
        assert d.read_until(b"\r\nERROR\r\n", timeout=10) == b"\r\nERROR\r\n"
        r = d.cmd("AT+CIPSTATE?")
        assert re.fullmatch(rb'\+CIPSTATE:0,"TCP","%s",%d,\d+,0\r\n\r\nOK\r\n' % (
            re.escape(host_ip.encode()), srv.port), r), r
    finally:
        srv.close()
