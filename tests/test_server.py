"""The board as a TCP server: AT+CIPSERVER, AT+CIPSERVERMAXCONN, AT+CIPSTO,
incoming clients as links, and a web page served to http.client."""
import http.client
import re
import socket
import threading
import time

import pytest

from peers import free_port, wait_for


@pytest.fixture
def server(joined, host_ip, opts):
    """Multi-connection mode and a server on a free port; yields (dut, addr)."""
    d = joined
    d.ok("AT+CIPMUX=1")
    port = free_port(host_ip)
    assert d.cmd("AT+CIPSERVER=1,%d" % port) == b"\r\nOK\r\n"
    yield d, (host_ip, port)


def connect(addr):
    c = socket.create_connection(addr, timeout=5)
    return c


def test_server_query_and_defaults(joined, host_ip):
    d = joined
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSERVERMAXCONN?") == b"+CIPSERVERMAXCONN:5\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSTO?") == b"+CIPSTO:180\r\n\r\nOK\r\n"
    d.error("AT+CIPSERVER=1,%d" % free_port(host_ip))  # needs CIPMUX=1
    d.ok("AT+CIPMUX=1")
    port = free_port(host_ip)
    d.ok("AT+CIPSERVER=1,%d" % port)
    assert d.cmd("AT+CIPSERVER?") == b'+CIPSERVER:1,%d,"TCP",0,0\r\n\r\nOK\r\n' % port
    d.error("AT+CIPSERVER=1,%d" % free_port(host_ip))  # only one server
    d.error("AT+CIPMUX=0")  # the server needs multi mode
    d.error("AT+CIPSERVERMAXCONN=2")  # must be set before the server
    d.error('AT+CIPSERVER=0,0,"TCP"')  # type must be omitted when deleting
    d.ok("AT+CIPSERVER=0")
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    d.error("AT+CIPSERVER=0")  # nothing to delete


def test_default_port_333(joined):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPSERVER=1")
    assert d.cmd("AT+CIPSERVER?").startswith(b'+CIPSERVER:1,333,"TCP"')


def test_clients_get_lowest_ids_and_exchange_data(server, host_ip):
    d, addr = server
    d.ok("AT+CIPDINFO=1")
    c0 = connect(addr)
    assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"
    c1 = connect(addr)
    assert d.read_until(b"CONNECT\r\n") == b"1,CONNECT\r\n"
    c0.sendall(b"from0")
    lp = c0.getsockname()[1]
    assert d.read_until(b"from0") == b'\r\n+IPD,0,5,"%s",%d:from0' % (host_ip.encode(), lp)
    d.write(b"AT+CIPSEND=1,5\r\n")
    d.read_until(b">")
    d.write(b"to__1")
    d.read_until(b"SEND OK\r\n")
    assert c1.recv(10) == b"to__1"
    r = d.cmd("AT+CIPSTATE?")
    assert re.fullmatch(rb'\+CIPSTATE:0,"TCP","%s",%d,%d,1\r\n\+CIPSTATE:1,"TCP","%s",%d,%d,1\r\n\r\nOK\r\n' % (
        re.escape(host_ip.encode()), lp, addr[1], re.escape(host_ip.encode()), c1.getsockname()[1], addr[1]), r), r
    c0.close()
    assert d.read_until(b"CLOSED\r\n") == b"0,CLOSED\r\n"
    c2 = connect(addr)
    assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"  # the freed lowest id
    c1.close()
    c2.close()
    d.read_until(b"1,CLOSED\r\n")


def test_link_conn_for_server_clients(server, host_ip):
    d, addr = server
    d.ok("AT+SYSMSG=2")
    c = connect(addr)
    r = d.read_until(b"\r\n")
    assert r == b'+LINK_CONN:0,0,"TCP",1,"%s",%d,%d\r\n' % (host_ip.encode(), c.getsockname()[1], addr[1])
    c.close()


def test_maxconn_refuses_extra_clients(joined, host_ip):
    d = joined
    d.ok("AT+CIPMUX=1")
    d.ok("AT+CIPSERVERMAXCONN=2")
    assert d.cmd("AT+CIPSERVERMAXCONN?") == b"+CIPSERVERMAXCONN:2\r\n\r\nOK\r\n"
    port = free_port(host_ip)
    d.ok("AT+CIPSERVER=1,%d" % port)
    a = connect((host_ip, port))
    b = connect((host_ip, port))
    d.read_until(b"0,CONNECT\r\n")
    d.read_until(b"1,CONNECT\r\n")
    c = connect((host_ip, port))
    c.settimeout(3)
    assert c.recv(10) == b""  # taken and closed at once
    assert d.quiet(0.3) == b""  # no CONNECT for it
    a.close()
    d.read_until(b"0,CLOSED\r\n")
    e = connect((host_ip, port))
    assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"
    for s in (b, c, e):
        s.close()


@pytest.mark.parametrize("line", ["AT+CIPSERVERMAXCONN=0", "AT+CIPSERVERMAXCONN=6", "AT+CIPSTO=7201",
                                  "AT+CIPSTO=-1", "AT+CIPSERVER=2", "AT+CIPSERVER=1,0", "AT+CIPSERVER=1,65536",
                                  'AT+CIPSERVER=1,80,"UDP"', "AT+CIPSERVER=0,2", 'AT+CIPSERVER=1,80,"TCP",2'])
def test_server_bad_input(joined, line):
    joined.ok("AT+CIPMUX=1")
    assert joined.cmd(line) == b"\r\nERROR\r\n"


def test_server_close_keeps_or_closes_clients(server):
    d, addr = server
    c0 = connect(addr)
    d.read_until(b"0,CONNECT\r\n")
    assert d.cmd("AT+CIPSERVER=0") == b"\r\nOK\r\n"  # clients stay
    c0.sendall(b"still")
    d.read_until(b"+IPD,0,5:still")
    with pytest.raises(OSError):
        connect(addr)
    port = addr[1]
    d.ok("AT+CIPSERVER=1,%d" % port)
    c1 = connect(addr)
    d.read_until(b"1,CONNECT\r\n")
    assert d.cmd("AT+CIPSERVER=0,1") == b"0,CLOSED\r\n1,CLOSED\r\n\r\nOK\r\n"
    c0.settimeout(3)
    assert c0.recv(10) == b""
    c1.close()


def test_cipsto_closes_idle_clients(server):
    d, addr = server
    d.ok("AT+CIPSTO=2")
    assert d.cmd("AT+CIPSTO?") == b"+CIPSTO:2\r\n\r\nOK\r\n"
    c = connect(addr)
    d.read_until(b"0,CONNECT\r\n")
    t = time.monotonic()
    # traffic resets the timer, both ways
    for _ in range(3):
        time.sleep(1)  # idle for half the timeout, then traffic
        c.sendall(b"k")
        d.read_until(b"+IPD,0,1:k")
    d.write(b"AT+CIPSEND=0,1\r\n")
    d.read_until(b">")
    d.write(b"x")
    d.read_until(b"SEND OK\r\n")
    assert d.read_until(b"0,CLOSED\r\n", timeout=5) == b"0,CLOSED\r\n"
    took = time.monotonic() - t
    assert 4 < took < 7.5, took
    c.settimeout(3)
    assert c.recv(10) == b"x"
    assert c.recv(10) == b""


def test_cipsto_zero_never_times_out(server):
    d, addr = server
    d.ok("AT+CIPSTO=0")
    c = connect(addr)
    d.read_until(b"0,CONNECT\r\n")
    assert d.quiet(2.5) == b""
    c.close()
    d.read_until(b"0,CLOSED\r\n")


def _serve_http(d, body):
    """Answer one HTTP request per connection, as a host MCU would."""
    hdr = d.read_until(re.compile(rb"\+IPD,(\d),(\d+):"), timeout=10)
    lid, n = re.search(rb"\+IPD,(\d),(\d+):", hdr).groups()
    req = d.read_exactly(int(n))
    assert req.startswith(b"GET /hello HTTP/1.1\r\n")
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body))
    d.write(b"AT+CIPSEND=%s,%d\r\n" % (lid, len(resp)))
    d.read_until(b">")
    d.write(resp)
    d.read_until(b"SEND OK\r\n")
    # Content-Length tells the client where the body ends; it closes, we see CLOSED.
    d.read_until(b"%s,CLOSED\r\n" % lid, timeout=10)


def test_http_page_served_through_cipserver(server):
    d, addr = server
    body = b"hello from the board\n" * 50
    res = {}

    def fetch():
        conn = http.client.HTTPConnection(*addr, timeout=10)
        conn.request("GET", "/hello")
        r = conn.getresponse()
        res["status"], res["body"] = r.status, r.read()
        conn.close()

    t = threading.Thread(target=fetch)
    t.start()
    d.read_until(b"0,CONNECT\r\n")
    _serve_http(d, body)
    t.join(10)
    assert res == {"status": 200, "body": body}
