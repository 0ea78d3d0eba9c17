"""SSL links (TCP-IP_AT_Commands.rst: CIPSTART "SSL", CIPSERVER "SSL", AT+CIPSSLC*),
byte for byte against real peers: Python ssl servers and clients with trustme
certificates (tlspeers.py) and `openssl s_server` for TLS-PSK.

ERR CODE extensions the firmware gives SSL failures (0x010a00xx, shown with
AT+SYSLOG=1): 0x50 handshake failed, 0x51 untrusted CA, 0x52 name mismatch,
0x53 expired, 0x54 certificate/key/CA not provisioned ("NO CERT FOUND",
"NO PRVT_KEY FOUND", "NO CA FOUND" before ERROR), 0x55 garbage certificate,
0x56 handshake timeout, 0x57 ALPN unsupported, 0x58 cipher, 0x59 clock not set.

On the ESP32 twin (and a real ESP32), what the ESP32 port at a release does
(README, "The ESP32 twin" and "Supported targets"): the clock reads 2000-01-01
until SNTP sets it, so tests that verify certificates take the `clock` fixture;
no TLS-PSK and no IPv6 (those tests carry the `psk`/`ipv6` markers; test_chip.py
checks the ERROR they answer there); the UART is paced at the line rate, so the
tests that move megabytes take the `bulk` fixture (3 Mbaud, RTS/CTS)."""
import os
import re
import socket
import ssl
import struct
import threading
import time

import pytest

from board import plus
from peers import TcpServer, echo, hold, sha, wait_for
from tlspeers import (Pki, TlsServer, PskServer, SSL_NAMESPACES, provision, erase, free_port,
                      tls_echo, tls_sink, tls_hold, tls_source, tls_http, tls_close, sees_eof)

MB10 = 10 * 1000 * 1000
SUITES_SEEN = {  # IANA number -> OpenSSL's name, as the peer's ssl socket reports it
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC024: "ECDHE-ECDSA-AES256-SHA384",
}


def err(ext):
    """The tail of a failed command with AT+SYSLOG=1 and ERR CODE 0x010a00<ext>."""
    return re.compile(rb"(\+ERRNO:-?\d+\r\n)?ERR CODE:0x010a00%02x\r\n\r\nERROR\r\n" % ext)


def assert_err(r, ext, lines=b""):
    assert r.startswith(lines), r
    assert err(ext).fullmatch(r[len(lines):]), "expected ERR CODE 0x010a00%02x: %r" % (ext, r)


# -- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def esp32(opts):
    """The board runs MicroPython's ESP32 port (the twin, or a real board)."""
    return opts.board == "esp32" or bool(opts.port)


@pytest.fixture(scope="module")
def pki(host_ip):
    return Pki(host_ip)


@pytest.fixture
def peers():
    """Peers made by a test, closed when it ends."""
    made = []

    def make(p):
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def wipe(d):
    """No SSL certificate, key or CA at index 0 (the manufacturing store survives AT+RESTORE)."""
    for ns in SSL_NAMESPACES:
        erase(d, ns, ns + ".0")


@pytest.fixture
def ssl_dut(joined):
    wipe(joined)
    yield joined


@pytest.fixture
def mux(ssl_dut):
    ssl_dut.ok("AT+CIPMUX=1")
    return ssl_dut


def provision_client(d, pki, which=("cert", "key", "ca")):
    files = pki.client_files()
    for (ns, key), data in files.items():
        if ns.split("_")[1] in which:
            provision(d, ns, key, data)


def provision_server(d, pki, which=("cert", "key", "ca")):
    for (ns, key), data in pki.server_files().items():
        if ns.split("_")[1] in which:
            provision(d, ns, key, data)


def start(d, host, port, lid=None, extra="", timeout=20):
    if lid is None:
        return d.cmd('AT+CIPSTART="SSL","%s",%d%s' % (host, port, extra), timeout=timeout)
    return d.cmd('AT+CIPSTART=%d,"SSL","%s",%d%s' % (lid, host, port, extra), timeout=timeout)


def connected(r, lid=None):
    want = b"CONNECT\r\n\r\nOK\r\n" if lid is None else b"%d,CONNECT\r\n\r\nOK\r\n" % lid
    assert r == want, r


def no_links(d):
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"


def send(d, data, lid=None):
    d.write(b"AT+CIPSEND=%d\r\n" % len(data) if lid is None else b"AT+CIPSEND=%d,%d\r\n" % (lid, len(data)))
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(data)
    assert d.read_until(b"SEND OK\r\n", timeout=10) == b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(data)


def roundtrip(d, data, lid=None):
    """Send through an echo peer and check the +IPD that comes back, byte for byte."""
    send(d, data, lid)
    hdr = b"\r\n+IPD,%d:" % len(data) if lid is None else b"\r\n+IPD,%d,%d:" % (lid, len(data))
    assert d.read_until(data, timeout=10) == hdr + data




# == settings and their queries ===================================================================================
@pytest.mark.timeout(30)
def test_query_forms_single(ssl_dut):
    d = ssl_dut
    assert d.cmd("AT+CIPSSLCCONF?") == b"+CIPSSLCCONF:0,0,0,0\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCCN?") == b'+CIPSSLCCN:0,""\r\n\r\nOK\r\n'
    assert d.cmd("AT+CIPSSLCSNI?") == b'+CIPSSLCSNI:0,""\r\n\r\nOK\r\n'
    assert d.cmd("AT+CIPSSLCALPN?") == b"+CIPSSLCALPN:0\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCPSK?") == b'+CIPSSLCPSK:0,"",""\r\n\r\nOK\r\n'
    assert d.cmd("AT+CIPSSLCPSKHEX?") == b'+CIPSSLCPSKHEX:0,"",""\r\n\r\nOK\r\n'
    d.ok("AT+CIPSSLCCONF=3,1,2")
    assert d.cmd("AT+CIPSSLCCONF?") == b"+CIPSSLCCONF:0,3,1,2\r\n\r\nOK\r\n"
    d.ok("AT+CIPSSLCCONF=2")  # pki and ca numbers default to 0
    assert d.cmd("AT+CIPSSLCCONF?") == b"+CIPSSLCCONF:0,2,0,0\r\n\r\nOK\r\n"
    d.ok('AT+CIPSSLCCN="cn.example"')
    assert d.cmd("AT+CIPSSLCCN?") == b'+CIPSSLCCN:0,"cn.example"\r\n\r\nOK\r\n'
    d.ok('AT+CIPSSLCSNI="sni.example"')
    assert d.cmd("AT+CIPSSLCSNI?") == b'+CIPSSLCSNI:0,"sni.example"\r\n\r\nOK\r\n'
    d.ok("AT+CIPSSLCALPN=0")
    assert d.cmd("AT+CIPSSLCALPN?") == b"+CIPSSLCALPN:0\r\n\r\nOK\r\n"
    # single mode takes no link id
    for line in ('AT+CIPSSLCCN=0,"x"', 'AT+CIPSSLCSNI=0,"x"', 'AT+CIPSSLCPSK=0,"a","b"',
                 "AT+CIPSSLCCONF=0,0,0,0", "AT+CIPSSLCALPN=0,0"):
        assert d.cmd(line) == b"\r\nERROR\r\n", line


@pytest.mark.psk
@pytest.mark.timeout(30)
def test_psk_query_forms_single(ssl_dut):
    d = ssl_dut
    d.ok('AT+CIPSSLCPSK="psk","myhint"')
    assert d.cmd("AT+CIPSSLCPSK?") == b'+CIPSSLCPSK:0,"psk","myhint"\r\n\r\nOK\r\n'
    d.ok('AT+CIPSSLCPSKHEX="70736b00ff","myhint"')  # the spec's example, with a \0 in it
    assert d.cmd("AT+CIPSSLCPSKHEX?") == b'+CIPSSLCPSKHEX:0,"70736b00ff","myhint"\r\n\r\nOK\r\n'


@pytest.mark.timeout(30)
def test_query_forms_multi(mux):
    d = mux
    assert d.cmd("AT+CIPSSLCCONF?") == b"".join(b"+CIPSSLCCONF:%d,0,0,0\r\n" % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCCN?") == b"".join(b'+CIPSSLCCN:%d,""\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCSNI?") == b"".join(b'+CIPSSLCSNI:%d,""\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCALPN?") == b"".join(b"+CIPSSLCALPN:%d\r\n" % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCPSK?") == b"".join(b'+CIPSSLCPSK:%d,"",""\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCPSKHEX?") == \
        b"".join(b'+CIPSSLCPSKHEX:%d,"",""\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    # one link, then all links with id 5 ("max")
    d.ok("AT+CIPSSLCCONF=2,1,0,0")
    d.ok('AT+CIPSSLCCN=3,"three.example"')
    d.ok('AT+CIPSSLCSNI=4,"four.example"')
    assert d.cmd("AT+CIPSSLCCONF?") == (b"+CIPSSLCCONF:0,0,0,0\r\n+CIPSSLCCONF:1,0,0,0\r\n+CIPSSLCCONF:2,1,0,0\r\n"
                                        b"+CIPSSLCCONF:3,0,0,0\r\n+CIPSSLCCONF:4,0,0,0\r\n\r\nOK\r\n")
    assert d.cmd("AT+CIPSSLCCN?") == (b'+CIPSSLCCN:0,""\r\n+CIPSSLCCN:1,""\r\n+CIPSSLCCN:2,""\r\n'
                                      b'+CIPSSLCCN:3,"three.example"\r\n+CIPSSLCCN:4,""\r\n\r\nOK\r\n')
    assert d.cmd("AT+CIPSSLCSNI?") == (b'+CIPSSLCSNI:0,""\r\n+CIPSSLCSNI:1,""\r\n+CIPSSLCSNI:2,""\r\n'
                                       b'+CIPSSLCSNI:3,""\r\n+CIPSSLCSNI:4,"four.example"\r\n\r\nOK\r\n')
    d.ok("AT+CIPSSLCCONF=5,3,0,0")
    d.ok('AT+CIPSSLCCN=5,"all.example"')
    d.ok('AT+CIPSSLCSNI=5,"sni-all"')
    assert d.cmd("AT+CIPSSLCCONF?") == b"".join(b"+CIPSSLCCONF:%d,3,0,0\r\n" % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCCN?") == \
        b"".join(b'+CIPSSLCCN:%d,"all.example"\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCSNI?") == \
        b"".join(b'+CIPSSLCSNI:%d,"sni-all"\r\n' % i for i in range(5)) + b"\r\nOK\r\n"
    d.ok("AT+CIPSSLCALPN=5,0")
    # unknown link ids, and the single form in multi mode
    for line in ("AT+CIPSSLCCONF=6,0", 'AT+CIPSSLCCN=6,"x"', 'AT+CIPSSLCSNI=-1,"x"', 'AT+CIPSSLCPSK=6,"a","b"',
                 'AT+CIPSSLCPSKHEX=6,"00","b"', "AT+CIPSSLCCIPHER=6,1,0xC02B", "AT+CIPSSLCALPN=6,0",
                 'AT+CIPSSLCCN="x"', 'AT+CIPSSLCPSK="a","b"'):
        assert d.cmd(line) == b"\r\nERROR\r\n", line


@pytest.mark.psk
@pytest.mark.timeout(30)
def test_psk_query_forms_multi(mux):
    d = mux
    d.ok('AT+CIPSSLCPSK=1,"k1","id1"')
    assert d.cmd("AT+CIPSSLCPSK?") == (b'+CIPSSLCPSK:0,"",""\r\n+CIPSSLCPSK:1,"k1","id1"\r\n+CIPSSLCPSK:2,"",""\r\n'
                                       b'+CIPSSLCPSK:3,"",""\r\n+CIPSSLCPSK:4,"",""\r\n\r\nOK\r\n')
    assert d.cmd("AT+CIPSSLCPSKHEX?") == (b'+CIPSSLCPSKHEX:0,"",""\r\n+CIPSSLCPSKHEX:1,"6b31","id1"\r\n'
                                          b'+CIPSSLCPSKHEX:2,"",""\r\n+CIPSSLCPSKHEX:3,"",""\r\n'
                                          b'+CIPSSLCPSKHEX:4,"",""\r\n\r\nOK\r\n')
    d.ok('AT+CIPSSLCPSKHEX=5,"0102","idall"')
    assert d.cmd("AT+CIPSSLCPSKHEX?") == \
        b"".join(b'+CIPSSLCPSKHEX:%d,"0102","idall"\r\n' % i for i in range(5)) + b"\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_cipsslcconf_is_saved(ssl_dut):
    """The spec: the configuration is saved in NVS (used by AT+SAVETRANSLINK at power-up)."""
    d = ssl_dut
    d.ok("AT+SYSSTORE=0")  # saved even so
    d.ok("AT+CIPSSLCCONF=2,0,0")
    d.reset(restore=False)
    d.ok("ATE0")
    assert d.cmd("AT+CIPSSLCCONF?") == b"+CIPSSLCCONF:0,2,0,0\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", [
    "AT+CIPSSLCCONF=4", "AT+CIPSSLCCONF=-1", "AT+CIPSSLCCONF=0,256", "AT+CIPSSLCCONF=0,0,256",
    "AT+CIPSSLCCONF=1,0,0,0", "AT+CIPSSLCCONF", 'AT+CIPSSLCCONF="2"',
    'AT+CIPSSLCCN=5', 'AT+CIPSSLCSNI', 'AT+CIPSSLCCN="a","b"',
    'AT+CIPSSLCPSK="only-one"', 'AT+CIPSSLCPSK=1,2',
])
def test_settings_bad_input(ssl_dut, line):
    d = ssl_dut
    assert d.cmd(line) == b"\r\nERROR\r\n", line
    assert d.cmd("AT") == b"\r\nOK\r\n"


# == cipher suites ===================================================================================================
@pytest.mark.timeout(30)
def test_cipher_query_lists_hex_ids(ssl_dut, esp32):
    d = ssl_dut
    r = d.cmd("AT+CIPSSLCCIPHER?")
    assert re.fullmatch(rb"(\+CIPSSLCCIPHER:\d+,0x[0-9A-Fa-f]{4}\r\n)+\r\nOK\r\n", r), r
    rows = re.findall(rb"\+CIPSSLCCIPHER:(\d+),0x([0-9A-Fa-f]{4})", r)
    assert [int(i) for i, _ in rows] == list(range(len(rows)))  # <idx> from 0
    ids = [int(x, 16) for _, x in rows]
    assert len(set(ids)) == len(ids)
    # ECDHE-ECDSA (our certificates) everywhere, and a PSK suite where the runtime
    # can do TLS-PSK. A released ESP32 image cannot: its sdkconfig leaves ESP-IDF's
    # CONFIG_MBEDTLS_PSK_MODES off (ports/esp32/boards/sdkconfig.base, v1.24-v1.28)
    for must in (0xC02B, 0xC02C, 0xC023) + (() if esp32 else (0x00A8,)):
        assert must in ids, r
    # the same list in multi mode
    d.ok("AT+CIPMUX=1")
    assert d.cmd("AT+CIPSSLCCIPHER?") == r


@pytest.mark.timeout(60)
def test_cipher_one_suite_is_the_one_negotiated(ssl_dut, pki, host_ip, peers):
    d = ssl_dut
    for suite in (0xC02B, 0xC023):
        srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
        d.ok("AT+CIPSSLCCIPHER=1,0x%04X" % suite)
        connected(start(d, host_ip, srv.port))
        srv.wait_conn()
        assert srv.ciphers[-1][0] == SUITES_SEEN[suite], srv.ciphers
        roundtrip(d, b"suite %04x" % suite)
        assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    # two suites: the server picks among them
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    d.ok("AT+CIPSSLCCIPHER=2,0xC024,0xC023")
    connected(start(d, host_ip, srv.port))
    srv.wait_conn()
    assert srv.ciphers[-1][0] in (SUITES_SEEN[0xC024], SUITES_SEEN[0xC023]), srv.ciphers
    d.ok("AT+CIPCLOSE")
    # 0 clears the setting: the runtime's own list again (the server's favourite wins)
    d.ok("AT+CIPSSLCCIPHER=0")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, srv.port))
    srv.wait_conn()
    assert srv.ciphers[-1][0] == SUITES_SEEN[0xC02C], srv.ciphers
    d.ok("AT+CIPCLOSE")


@pytest.mark.timeout(60)
def test_cipher_per_link_in_multi_mode(mux, pki, host_ip, peers):
    d = mux
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    d.ok("AT+CIPSSLCCIPHER=1,1,0xC02B")
    d.ok("AT+CIPSSLCCIPHER=2,1,0xC023")
    connected(start(d, host_ip, srv.port, 1), 1)
    assert wait_for(lambda: len(srv.ciphers) == 1)
    connected(start(d, host_ip, srv.port, 2), 2)
    assert wait_for(lambda: len(srv.ciphers) == 2)
    assert [c[0] for c in srv.ciphers] == [SUITES_SEEN[0xC02B], SUITES_SEEN[0xC023]]
    roundtrip(d, b"one", 1)
    roundtrip(d, b"two", 2)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", [
    "AT+CIPSSLCCIPHER=1,0x1301",  # a TLS 1.3 suite this runtime does not do
    "AT+CIPSSLCCIPHER=1,0xC0AD",  # AES-256-CCM: in mbedTLS's table, not in this build
    "AT+CIPSSLCCIPHER=1,0x1234",  # no such suite
    "AT+CIPSSLCCIPHER=2,0xC02B,0x1234",
    "AT+CIPSSLCCIPHER=2,0xC02B",  # fewer suites than <counts>
    "AT+CIPSSLCCIPHER=1,0xC02B,0xC02C",  # more
    "AT+CIPSSLCCIPHER=1,0x10000",
    "AT+CIPSSLCCIPHER=-1",
    'AT+CIPSSLCCIPHER=1,"0xC02B"',
])
def test_cipher_set_unsupported(ssl_dut, pki, host_ip, peers, line):
    d = ssl_dut
    d.ok("AT+CIPSSLCCIPHER=1,0xC023")
    assert d.cmd(line) == b"\r\nERROR\r\n", line
    # the setting before the bad command still holds
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, srv.port))
    srv.wait_conn()
    assert srv.ciphers[-1][0] == SUITES_SEEN[0xC023]


@pytest.mark.timeout(30)
def test_cipher_with_nothing_in_common(ssl_dut, pki, host_ip, peers):
    """Only an RSA suite against a server with an ECDSA certificate: ERROR, no link,
    the peer sees the connection closed."""
    d = ssl_dut
    d.ok("AT+SYSLOG=1")
    d.ok("AT+CIPSSLCCIPHER=1,0x009C")  # TLS-RSA-WITH-AES-128-GCM-SHA256
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    r = start(d, host_ip, srv.port)
    assert err(0x50).fullmatch(r) or err(0x58).fullmatch(r), r
    no_links(d)
    assert srv.failed.wait(5) and srv.closed_after_failure == [True]


# == auth modes ========================================================================================================
@pytest.mark.timeout(60)
def test_mode0_checks_nothing(ssl_dut, pki, host_ip, peers):
    """Auth mode 0: untrusted, expired and wrong-name certificates are all accepted."""
    d = ssl_dut
    for cert in (pki.untrusted, pki.expired, pki.wrong_name, pki.server):
        srv = peers(TlsServer(host_ip, pki.server_ctx(cert), tls_echo))
        connected(start(d, host_ip, srv.port))
        roundtrip(d, b"no checks")
        r = d.cmd("AT+CIPSTATE?")
        assert re.fullmatch(rb'\+CIPSTATE:0,"SSL","%s",%d,\d+,0\r\n\r\nOK\r\n' % (
            re.escape(host_ip.encode()), srv.port), r), r
        assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
        assert srv.done.wait(5)  # the peer's read saw the close


@pytest.mark.timeout(60)
def test_mode2_verifies_server(ssl_dut, clock, pki, host_ip, peers):
    d = ssl_dut
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, srv.port))  # by address: the certificate has it as a SAN
    roundtrip(d, b"verified")
    d.ok("AT+CIPCLOSE")


@pytest.mark.timeout(60)
def test_mode2_verifies_server_by_name(ssl_dut, clock, pki, peers, vboard):
    d = ssl_dut
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    srv = peers(TlsServer("127.0.0.1", pki.server_ctx(), tls_echo))
    connected(start(d, "localhost", srv.port))
    roundtrip(d, b"by name")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("which,ext", [("untrusted", 0x51), ("wrong_name", 0x52), ("expired", 0x53)])
def test_mode2_rejects_bad_server(ssl_dut, clock, pki, host_ip, peers, which, ext):
    d = ssl_dut
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    cert = getattr(pki, which)
    # without AT+SYSLOG: a plain ERROR
    srv = peers(TlsServer(host_ip, pki.server_ctx(cert), tls_echo))
    assert start(d, host_ip, srv.port) == b"\r\nERROR\r\n"
    no_links(d)
    assert srv.failed.wait(5) and srv.closed_after_failure == [True], srv.errors
    assert not srv.conns
    # with AT+SYSLOG=1: the reason
    d.ok("AT+SYSLOG=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(cert), tls_echo))
    assert_err(start(d, host_ip, srv.port), ext)
    no_links(d)
    assert srv.failed.wait(5) and srv.closed_after_failure == [True], srv.errors
    # the board goes on: a good server still works on the same link id
    good = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, good.port))
    roundtrip(d, b"still fine")


@pytest.mark.timeout(60)
def test_mode2_cn_overrides_the_name(mux, clock, pki, host_ip, peers):
    d = mux
    d.ok("AT+SYSLOG=1")
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=5,2,0,0")
    wrong = peers(TlsServer(host_ip, pki.server_ctx(pki.wrong_name), tls_echo))
    good = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    assert_err(start(d, host_ip, wrong.port, 0), 0x52)
    # link 1 checks the certificate against AT+CIPSSLCCN's name instead of the host
    d.ok('AT+CIPSSLCCN=1,"not-this-host.example"')
    connected(start(d, host_ip, wrong.port, 1), 1)
    roundtrip(d, b"cn ok", 1)
    # and a CN the good certificate does not carry fails it
    d.ok('AT+CIPSSLCCN=2,"other.example"')
    assert_err(start(d, host_ip, good.port, 2), 0x52)
    connected(start(d, host_ip, good.port, 3), 3)  # link 3 has no CN: the host is checked
    r = d.cmd("AT+CIPSTATE?")
    assert [int(x) for x in re.findall(rb"\+CIPSTATE:(\d),", r)] == [1, 3], r


@pytest.mark.timeout(30)
def test_mode2_without_ca(ssl_dut, clock, pki, host_ip, peers):
    d = ssl_dut
    d.ok("AT+CIPSSLCCONF=2,0,0")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    assert start(d, host_ip, srv.port) == b"NO CA FOUND\r\n\r\nERROR\r\n"
    no_links(d)
    d.ok("AT+SYSLOG=1")
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO CA FOUND\r\n")
    no_links(d)
    assert wait_for(lambda: len(srv.closed_after_failure) == 2, 10), srv.errors
    assert srv.closed_after_failure == [True, True]
    # ca_number 1 is not there either
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,1")
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO CA FOUND\r\n")
    d.ok("AT+CIPSSLCCONF=2,0,0")
    connected(start(d, host_ip, srv.port))


@pytest.mark.timeout(60)
def test_mode1_presents_client_cert(ssl_dut, pki, host_ip, peers):
    """Mode 1: the board sends client_cert.0/client_key.0; it does not check the server
    (whose certificate here comes from a CA the board does not know)."""
    d = ssl_dut
    provision_client(d, pki, ("cert", "key"))
    d.ok("AT+CIPSSLCCONF=1,0,0")
    srv = peers(TlsServer(host_ip, pki.server_ctx(pki.untrusted, require_client=True), tls_echo))
    connected(start(d, host_ip, srv.port))
    srv.wait_conn()
    assert ("DNS", "board-client") in srv.peercerts[-1]["subjectAltName"], srv.peercerts
    roundtrip(d, b"mutual-ish")


@pytest.mark.timeout(60)
def test_mode3_mutual(ssl_dut, clock, pki, host_ip, peers):
    d = ssl_dut
    provision_client(d, pki)
    d.ok("AT+CIPSSLCCONF=3,0,0")
    d.ok("AT+SYSLOG=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(require_client=True), tls_echo))
    connected(start(d, host_ip, srv.port))
    srv.wait_conn()
    assert ("DNS", "board-client") in srv.peercerts[-1]["subjectAltName"]
    roundtrip(d, b"mutual")
    d.ok("AT+CIPCLOSE")
    bad = peers(TlsServer(host_ip, pki.server_ctx(pki.untrusted, require_client=True), tls_echo))
    assert_err(start(d, host_ip, bad.port), 0x51)
    no_links(d)


@pytest.mark.timeout(60)
def test_server_wants_a_client_cert_the_board_lacks(ssl_dut, pki, host_ip, peers):
    """Mode 0 against a server that requires a client certificate: the server
    refuses; ERROR, no half-open link."""
    d = ssl_dut
    d.ok("AT+SYSLOG=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(require_client=True), tls_echo))
    r = start(d, host_ip, srv.port)
    assert r.endswith(b"\r\nERROR\r\n") and b"CONNECT" not in r, r
    # (TLS 1.2: the client learns of the refusal at the handshake's end)
    no_links(d)
    assert srv.failed.wait(5)
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", [1, 3])
def test_client_cert_not_provisioned(ssl_dut, clock, pki, host_ip, peers, mode):
    d = ssl_dut
    d.ok("AT+CIPSSLCCONF=%d,0,0" % mode)
    if mode == 3:
        provision_client(d, pki, ("ca",))
    srv = peers(TlsServer(host_ip, pki.server_ctx(require_client=True), tls_echo))
    assert start(d, host_ip, srv.port) == b"NO CERT FOUND\r\n\r\nERROR\r\n"
    no_links(d)
    d.ok("AT+SYSLOG=1")
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO CERT FOUND\r\n")
    no_links(d)
    # the certificate without its key
    provision_client(d, pki, ("cert",))
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO PRVT_KEY FOUND\r\n")
    no_links(d)
    # pki_number 1 is not there
    provision_client(d, pki, ("key",))
    d.ok("AT+CIPSSLCCONF=%d,1,0" % mode)
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO CERT FOUND\r\n")
    assert wait_for(lambda: len(srv.closed_after_failure) == 4, 10), srv.errors
    assert srv.closed_after_failure == [True] * 4  # never a half-open connection
    d.ok("AT+CIPSSLCCONF=%d,0,0" % mode)
    connected(start(d, host_ip, srv.port))
    roundtrip(d, b"now it works")


@pytest.mark.timeout(60)
def test_mode3_without_ca(ssl_dut, pki, host_ip, peers):
    d = ssl_dut
    provision_client(d, pki, ("cert", "key"))
    d.ok("AT+CIPSSLCCONF=3,0,0")
    d.ok("AT+SYSLOG=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(require_client=True), tls_echo))
    assert_err(start(d, host_ip, srv.port), 0x54, b"NO CA FOUND\r\n")
    no_links(d)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["client_ca", "client_cert", "client_key"])
@pytest.mark.parametrize("garbage", [b"this is not a certificate\r\n",
                                     b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"])
def test_garbage_certificate(ssl_dut, pki, host_ip, peers, where, garbage):
    d = ssl_dut
    provision_client(d, pki)
    provision(d, where, where + ".0", garbage)
    d.ok("AT+CIPSSLCCONF=3,0,0")
    srv = peers(TlsServer(host_ip, pki.server_ctx(require_client=True), tls_echo))
    assert start(d, host_ip, srv.port) == b"\r\nERROR\r\n"
    d.ok("AT+SYSLOG=1")
    assert_err(start(d, host_ip, srv.port), 0x55)
    no_links(d)
    assert wait_for(lambda: len(srv.closed_after_failure) == 2, 10), srv.errors
    assert srv.closed_after_failure == [True, True]
    assert d.cmd("AT") == b"\r\nOK\r\n"


# == SNI ===========================================================================================================
@pytest.mark.timeout(60)
def test_sni(mux, pki, host_ip, peers):
    d = mux
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, srv.port, 0), 0)  # an address: no SNI
    assert wait_for(lambda: len(srv.sni) == 1)
    d.ok('AT+CIPSSLCSNI=1,"sni.example"')
    connected(start(d, host_ip, srv.port, 1), 1)
    assert wait_for(lambda: len(srv.sni) == 2)
    d.ok('AT+CIPSSLCSNI=5,"every.example"')
    connected(start(d, host_ip, srv.port, 2), 2)
    assert wait_for(lambda: len(srv.sni) == 3)
    assert srv.sni == [None, "sni.example", "every.example"]
    roundtrip(d, b"sni", 1)


@pytest.mark.timeout(60)
def test_sni_is_the_host_name_by_default(ssl_dut, pki, peers, vboard):
    d = ssl_dut
    srv = peers(TlsServer("127.0.0.1", pki.server_ctx(), tls_echo))
    connected(start(d, "localhost", srv.port))
    assert wait_for(lambda: len(srv.sni) == 1)
    assert srv.sni == ["localhost"]
    d.ok("AT+CIPCLOSE")
    d.ok('AT+CIPSSLCSNI="given.example"')  # a set SNI wins over the host name
    connected(start(d, "localhost", srv.port))
    assert wait_for(lambda: len(srv.sni) == 2)
    assert srv.sni == ["localhost", "given.example"]


@pytest.mark.timeout(60)
def test_sni_while_verifying_the_server(ssl_dut, clock, pki, host_ip, peers):
    """The spec keeps the two apart: AT+CIPSSLCSNI is what the ClientHello carries;
    the certificate is checked against the host (or AT+CIPSSLCCN). mbedTLS (through
    MicroPython's tls) takes one name for both. With AT+CIPSSLCCN empty the SNI is
    that name: the server is asked for it and its certificate must carry it, as a
    client that asked for that name expects. A CN and a different SNI cannot both
    be honoured: refused with ERR CODE 0x010a0057 instead of ignoring one."""
    d = ssl_dut
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    d.ok("AT+SYSLOG=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    # the SNI names the server: connected by address, checked against "localhost"
    d.ok('AT+CIPSSLCSNI="localhost"')
    connected(start(d, host_ip, srv.port))
    assert wait_for(lambda: len(srv.sni) == 1)
    assert srv.sni == ["localhost"]
    roundtrip(d, b"sni checked")
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    # an SNI the certificate does not carry: the name check fails (0x52)
    d.ok('AT+CIPSSLCSNI="sni.example"')
    assert d.cmd('AT+CIPSTART="SSL","%s",%d' % (host_ip, srv.port), timeout=20) == \
        b"ERR CODE:0x010a0052\r\n\r\nERROR\r\n"
    assert d.cmd("AT+CIPSTATE?") == b"\r\nOK\r\n"
    # a CN and a different SNI: refused before any connection
    d.ok('AT+CIPSSLCCN="localhost"')
    assert d.cmd('AT+CIPSTART="SSL","%s",%d' % (host_ip, srv.port), timeout=20) == \
        b"ERR CODE:0x010a0057\r\n\r\nERROR\r\n"
    d.ok('AT+CIPSSLCSNI="localhost"')  # the same name twice is fine
    connected(start(d, host_ip, srv.port))
    assert srv.sni[-1] == "localhost"


# == PSK ===========================================================================================================
@pytest.mark.psk
@pytest.mark.timeout(60)
def test_psk_string(ssl_dut, host_ip, peers, vboard):
    d = ssl_dut
    key = b"secret-key-0123"
    srv = peers(PskServer(key.hex(), "board-id"))
    d.ok('AT+CIPSSLCPSK="%s","board-id"' % key.decode())
    connected(start(d, "127.0.0.1", srv.port))
    send(d, b"hello psk\r\n")
    assert d.read_until(b"olleh\n", timeout=10) == b"\r\n+IPD,10:ksp olleh\n"
    assert srv.suites() and all("PSK" in s for s in srv.suites()), srv.output()
    assert srv.identities() == ["board-id"], srv.output()  # <"hint"> is the identity sent
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


@pytest.mark.psk
@pytest.mark.timeout(60)
def test_psk_hex_with_zero_bytes(mux, peers, vboard):
    d = mux
    key = bytes.fromhex("00ff10ab00223344")
    srv = peers(PskServer(key.hex(), "hex-id"))
    d.ok('AT+CIPSSLCPSKHEX=3,"%s","hex-id"' % key.hex())
    connected(start(d, "127.0.0.1", srv.port, 3), 3)
    send(d, b"abc\r\n", 3)
    assert d.read_until(b"cba\n", timeout=10) == b"\r\n+IPD,3,4:cba\n"
    assert srv.identities() == ["hex-id"], srv.output()


@pytest.mark.psk
@pytest.mark.timeout(60)
def test_psk_mismatch(ssl_dut, peers, vboard):
    d = ssl_dut
    srv = peers(PskServer(b"right-key".hex(), "board-id"))
    d.ok("AT+SYSLOG=1")
    d.ok('AT+CIPSSLCPSK="wrong-key","board-id"')
    assert_err(start(d, "127.0.0.1", srv.port), 0x50)
    no_links(d)
    d.ok('AT+CIPSSLCPSK="right-key","board-id"')
    connected(start(d, "127.0.0.1", srv.port))
    send(d, b"ok\r\n")
    assert d.read_until(b"ko\n", timeout=10) == b"\r\n+IPD,3:ko\n"
    d.ok("AT+CIPCLOSE")
    # <"hint"> is the identity the board sends (s_server accepts any identity)
    d.ok('AT+CIPSSLCPSK="right-key","someone-else"')
    connected(start(d, "127.0.0.1", srv.port))
    assert wait_for(lambda: srv.identities()[-1:] == ["someone-else"]), srv.output()


@pytest.mark.psk
@pytest.mark.timeout(30)
def test_psk_bad_input(mux):
    d = mux
    k32 = "k" * 32
    d.ok('AT+CIPSSLCPSK=0,"%s","%s"' % (k32, "h" * 32))  # 32 is the maximum
    assert d.cmd('AT+CIPSSLCPSK=0,"%s","h"' % (k32 + "k")) == b"\r\nERROR\r\n"  # 33
    assert d.cmd('AT+CIPSSLCPSK=0,"k","%s"' % ("h" * 33)) == b"\r\nERROR\r\n"
    d.ok('AT+CIPSSLCPSKHEX=1,"%s","h"' % ("ab" * 32))
    for line in ('AT+CIPSSLCPSKHEX=1,"%s","h"' % ("ab" * 33),  # 33 bytes
                 'AT+CIPSSLCPSKHEX=1,"zz","h"',
                 'AT+CIPSSLCPSKHEX=1,"abc","h"',  # odd length
                 'AT+CIPSSLCPSKHEX=1,"0x12","h"',
                 'AT+CIPSSLCPSKHEX=1,"12 34","h"',
                 'AT+CIPSSLCPSK=6,"k","h"',
                 'AT+CIPSSLCPSK=0,"k"'):
        assert d.cmd(line) == b"\r\nERROR\r\n", line
    # the bad commands changed nothing
    assert d.cmd("AT+CIPSSLCPSKHEX?") == (b'+CIPSSLCPSKHEX:0,"%s","%s"\r\n+CIPSSLCPSKHEX:1,"%s","h"\r\n'
                                          b'+CIPSSLCPSKHEX:2,"",""\r\n+CIPSSLCPSKHEX:3,"",""\r\n'
                                          b'+CIPSSLCPSKHEX:4,"",""\r\n\r\nOK\r\n'
                                          % (k32.encode().hex().encode(), b"h" * 32, b"ab" * 32))
    # an empty key clears the setting
    d.ok('AT+CIPSSLCPSK=0,"",""')
    d.ok('AT+CIPSSLCPSK=1,"",""')
    assert d.cmd("AT+CIPSSLCPSK?") == b"".join(b'+CIPSSLCPSK:%d,"",""\r\n' % i for i in range(5)) + b"\r\nOK\r\n"


@pytest.mark.psk
@pytest.mark.timeout(30)
def test_psk_string_query_of_a_binary_key(mux):
    """A key set with AT+CIPSSLCPSKHEX that is no text (bytes >= 0x80) must not
    break AT+CIPSSLCPSK?: every link's line, then OK."""
    d = mux
    d.ok('AT+CIPSSLCPSK=0,"text","id0"')
    d.ok('AT+CIPSSLCPSKHEX=1,"abcdef01","id1"')
    r = d.cmd("AT+CIPSSLCPSK?")
    assert re.fullmatch(rb'\+CIPSSLCPSK:0,"text","id0"\r\n\+CIPSSLCPSK:1,"[^\r\n]*","id1"\r\n'
                        rb'(\+CIPSSLCPSK:[234],"",""\r\n){3}\r\nOK\r\n', r), r
    assert d.cmd("AT+CIPSSLCPSKHEX?").startswith(b'+CIPSSLCPSKHEX:0,"74657874","id0"\r\n'
                                                 b'+CIPSSLCPSKHEX:1,"abcdef01","id1"\r\n')


# == ALPN ==========================================================================================================
@pytest.mark.timeout(30)
def test_alpn(ssl_dut):
    """This runtime cannot put ALPN in the ClientHello: setting it is refused
    (ERR CODE 0x010a0057), clearing it is fine, the query shows none."""
    d = ssl_dut
    assert d.cmd('AT+CIPSSLCALPN=1,"http/1.1"') == b"\r\nERROR\r\n"
    d.ok("AT+SYSLOG=1")
    assert_err(d.cmd('AT+CIPSSLCALPN=1,"http/1.1"'), 0x57)
    assert_err(d.cmd('AT+CIPSSLCALPN=2,"h2","http/1.1"'), 0x57)
    assert d.cmd("AT+CIPSSLCALPN=0") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCALPN?") == b"+CIPSSLCALPN:0\r\n\r\nOK\r\n"
    for line in ("AT+CIPSSLCALPN=6", 'AT+CIPSSLCALPN=2,"h2"', 'AT+CIPSSLCALPN=1', "AT+CIPSSLCALPN=-1"):
        r = d.cmd(line)
        assert r.endswith(b"\r\nERROR\r\n") and b"0x010a0057" not in r, (line, r)
    d.ok("AT+CIPMUX=1")
    assert_err(d.cmd('AT+CIPSSLCALPN=2,1,"mqtt"'), 0x57)
    assert d.cmd("AT+CIPSSLCALPN=2,0") == b"\r\nOK\r\n"
    assert d.cmd("AT+CIPSSLCALPN?") == b"".join(b"+CIPSSLCALPN:%d\r\n" % i for i in range(5)) + b"\r\nOK\r\n"


# == data ==========================================================================================================
@pytest.mark.timeout(60)
def test_active_receive_formats_and_close(ssl_dut, pki, host_ip, peers):
    d = ssl_dut
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, srv.port))
    roundtrip(d, b"hello")
    roundtrip(d, bytes(range(256)))  # every byte value, \r\n and +IPD inside data included
    d.ok("AT+CIPDINFO=1")
    send(d, b"dinfo")
    assert d.read_until(b"dinfo") == b'\r\n+IPD,5,"%s",%d:dinfo' % (host_ip.encode(), srv.port)
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    assert bytes(srv.received) == b"hello" + bytes(range(256)) + b"dinfo"
    # the peer closes (close_notify): CLOSED
    src = peers(TlsServer(host_ip, pki.server_ctx(), tls_source(b"bye")))
    connected(start(d, host_ip, src.port))
    assert d.read_until(b"CLOSED\r\n", timeout=3) == \
        b'\r\n+IPD,3,"%s",%d:byeCLOSED\r\n' % (host_ip.encode(), src.port)
    no_links(d)


@pytest.mark.timeout(60)
def test_peer_close_notify_alone(ssl_dut, pki, host_ip, peers):
    """close_notify on its own (the data went earlier): CLOSED at once."""
    d = ssl_dut

    def handler(s, srv):
        s.sendall(b"data")
        time.sleep(0.5)  # the close_notify well after the data, in a record of its own
        tls_close(s)

    srv = peers(TlsServer(host_ip, pki.server_ctx(), handler))
    connected(start(d, host_ip, srv.port))
    assert d.read_until(b"data") == b"\r\n+IPD,4:data"
    t = time.monotonic()
    assert d.read_until(b"CLOSED\r\n", timeout=3) == b"CLOSED\r\n"
    assert time.monotonic() - t < 1.5


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="needs Linux's TCP_CORK")
@pytest.mark.parametrize("passive,size", [(False, 10), (False, 4000), (True, 10)],
                         ids=["active", "active-bigger-than-a-read", "passive"])
def test_peer_close_notify_behind_the_data(ssl_dut, pki, host_ip, peers, passive, size):
    """The data and the close_notify in one TCP segment, the peer then waiting with the
    connection open (it need not wait for the board's close_notify): CLOSED at once.
    A read that takes both records in one call loses the end of stream until the peer
    closes TCP (5 s here); so does one that starts the close_notify's record while the
    data's record still holds bytes (4,000 bytes: 2,920 read, 1,080 left). The board
    lets one record start per read, and none while one may be pending
    (at.sslconf.Records)."""
    d = ssl_dut
    data = (bytes(range(256)) * 16)[:size - 10] + b"last words"

    def handler(s, srv):
        # corked: the data record and the close_notify leave together, 200 ms on
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(data)
        s.settimeout(0.5)
        try:
            s.unwrap()  # sends the close_notify; the board's need not come
        except (OSError, ssl.SSLError, ValueError):
            pass
        deadline = time.monotonic() + 5
        while not srv._stop and time.monotonic() < deadline:
            time.sleep(0.05)  # the TCP connection stays open

    if passive:
        d.ok("AT+CIPRECVMODE=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), handler))
    connected(start(d, host_ip, srv.port))
    t = time.monotonic()
    if passive:
        # CLOSED waits for the host to read what the link holds
        assert d.read_until(b"+IPD,%d\r\n" % size, timeout=3) == b"\r\n+IPD,%d\r\n" % size
        time.sleep(0.5)  # the close_notify is in (corked for 200 ms at most)
        d.write(b"AT+CIPRECVDATA=%d\r\n" % size)
        assert d.read_until(b"CLOSED\r\n", timeout=3) == \
            b"+CIPRECVDATA:%d,%s\r\n\r\nOK\r\nCLOSED\r\n" % (size, data)
    else:
        assert d.read_ipd(size, timeout=3) == data
        assert d.read_until(b"CLOSED\r\n", timeout=3) == b"CLOSED\r\n"
    assert time.monotonic() - t < 1.5
    no_links(d)


@pytest.mark.timeout(110)
def test_active_receive_10mb_sha(ssl_dut, bulk, pki, host_ip, peers):
    d = ssl_dut
    data = os.urandom(MB10)
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_source(data)))
    connected(start(d, host_ip, srv.port))
    got = d.read_ipd(len(data), timeout=100)
    assert len(got) == len(data)
    assert sha(got) == sha(data)
    assert d.read_until(b"CLOSED\r\n", timeout=10) == b"CLOSED\r\n"


@pytest.mark.timeout(30)
def test_passive_receive(mux, pki, host_ip, peers):
    d = mux
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_hold))
    d.ok("AT+CIPRECVTYPE=2,1")
    connected(start(d, host_ip, srv.port, 2), 2)
    c = srv.wait_conn()
    c.sendall(b"hello")
    assert d.read_until(b"+IPD,2,5\r\n") == b"\r\n+IPD,2,5\r\n"
    c.sendall(b"world!")
    assert d.quiet(0.5) == b""  # one notice until the host reads: nothing comes in this window
    assert d.cmd("AT+CIPRECVLEN?") == b"+CIPRECVLEN:-1,-1,11,-1,-1\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPRECVDATA=2,4") == b"+CIPRECVDATA:4,hell\r\n\r\nOK\r\n"
    assert d.read_until(b"+IPD,2,7\r\n") == b"\r\n+IPD,2,7\r\n"
    assert d.cmd("AT+CIPRECVDATA=2,100") == b"+CIPRECVDATA:7,oworld!\r\n\r\nOK\r\n"
    assert d.cmd("AT+CIPRECVDATA=2,100") == b"\r\nERROR\r\n"
    c.sendall(b"last")
    d.read_until(b"+IPD,2,4\r\n")
    tls_close(c, 1)
    assert d.quiet(0.5) == b""  # CLOSED waits until the data is read
    d.write(b"AT+CIPRECVDATA=2,10\r\n")
    assert d.read_until(b"2,CLOSED\r\n") == b"+CIPRECVDATA:4,last\r\n\r\nOK\r\n2,CLOSED\r\n"


def drain_passive(d, lid, total, chunk, timeout):
    got = bytearray()
    notice = re.compile(rb"\+IPD,%d,\d+\r\n" % lid)
    deadline = time.monotonic() + timeout
    while len(got) < total:
        assert time.monotonic() < deadline, "got %d of %d bytes" % (len(got), total)
        d.write(b"AT+CIPRECVDATA=%d,%d\r\n" % (lid, chunk))
        r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"))
        if r.endswith(b"ERROR\r\n"):
            if not notice.search(r):
                d.read_until(notice, timeout=10)
            continue
        n = int(re.search(rb"\+CIPRECVDATA:(\d+),$", r).group(1))
        got += d.read_exactly(n)
        d.read_until(b"\r\nOK\r\n")
    return bytes(got)


@pytest.mark.timeout(110)
def test_passive_receive_10mb_sha(mux, bulk, pki, host_ip, peers):
    d = mux
    data = os.urandom(MB10)
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_source(data)))
    d.ok("AT+CIPRECVTYPE=0,1")
    connected(start(d, host_ip, srv.port, 0), 0)
    got = drain_passive(d, 0, len(data), 5760, timeout=100)
    assert sha(got) == sha(data)
    d.read_until(b"0,CLOSED\r\n", timeout=10)


@pytest.mark.timeout(110)
def test_sendl_10mb_sha(ssl_dut, bulk, pki, host_ip, peers):
    d = ssl_dut
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_sink))
    connected(start(d, host_ip, srv.port))
    data = os.urandom(MB10)
    d.ok("AT+CIPSENDLCFG=1048576")
    d.write(b"AT+CIPSENDL=%d\r\n" % len(data))
    d.read_until(b">")

    def writer():
        mv = memoryview(data)
        for i in range(0, len(data), 65536):
            d.ser.write(mv[i:i + 65536])

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = d.read_until(b"SEND OK\r\n", timeout=100)
    t.join(10)
    assert len(re.findall(rb"\+CIPSENDL:", r)) == 10
    assert wait_for(lambda: len(srv.received) == len(data), 20), len(srv.received)
    assert sha(srv.received) == sha(data)


@pytest.mark.timeout(110)
def test_passthrough_10mb_both_ways(ssl_dut, bulk, pki, host_ip, peers):
    d = ssl_dut
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    d.ok("AT+CIPMODE=1")
    connected(start(d, host_ip, srv.port))
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    d.write(b"raw ssl")
    assert d.read_exactly(7) == b"raw ssl"  # no +IPD framing
    data = os.urandom(MB10)

    def writer():
        mv = memoryview(data)
        for i in range(0, len(data), 65536):
            d.ser.write(mv[i:i + 65536])

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = d.read_exactly(len(data), timeout=100)
    t.join(10)
    assert sha(got) == sha(data)
    assert len(srv.received) == len(data) + 7
    plus(d)
    assert d.quiet(0.3) == b""
    assert d.cmd("AT") == b"\r\nOK\r\n"
    d.ok("AT+CIPMODE=0")
    assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"


@pytest.mark.timeout(60)
def test_https_page(ssl_dut, clock, pki, host_ip, peers):
    """A host fetches a page over HTTPS through the board: GET with AT+CIPSEND, the
    response from +IPD, CLOSED when the server is done."""
    d = ssl_dut
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    body = b"".join(b"line %05d of the page\n" % i for i in range(2000))
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_http(body)))
    connected(start(d, host_ip, srv.port))
    req = b"GET /index.html HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host_ip.encode()
    send(d, req)
    head = bytearray()
    while b"\r\n\r\n" not in head:
        head += d.read_ipd(1, timeout=10)
    hdr, _, rest = bytes(head).partition(b"\r\n\r\n")
    lines = hdr.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    length = int(next(l.split(b":")[1] for l in lines if l.lower().startswith(b"content-length:")))
    assert length == len(body)
    page = rest + d.read_ipd(length - len(rest), timeout=30)
    assert page == body
    assert d.read_until(b"CLOSED\r\n", timeout=10) == b"CLOSED\r\n"
    assert bytes(srv.received) == req


@pytest.mark.timeout(90)
def test_boot_into_saved_ssl_link(raw_dut, joined, clock, pki, host_ip, opts, vboard, peers):
    """AT+SAVETRANSLINK with "SSL": at power-up the board makes the SSL connection
    with the saved AT+CIPSSLCCONF (here: verify the server) and enters passthrough."""
    d = raw_dut
    d.ok("ATE0")
    wipe(d)
    provision_client(d, pki, ("ca",))
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    booted = False
    try:
        d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
        d.ok("AT+CIPSSLCCONF=2,0,0")
        d.ok('AT+SAVETRANSLINK=1,"%s",%d,"SSL"' % (host_ip, srv.port))
        d.write(b"AT+RST\r\n")
        d.read_until(b"\r\nOK\r\n")
        d.read_until(b"\r\nready\r\n")
        booted = True
        d.read_until(b"WIFI GOT IP\r\n", timeout=10)
        srv.wait_conn(20)
        time.sleep(0.3)  # passthrough begins after the connect, silently: earlier bytes would be a command
        d.write(b"booted into ssl passthrough")
        assert d.read_until(b"passthrough", timeout=10) == b"booted into ssl passthrough"
        assert bytes(srv.received) == b"booted into ssl passthrough"
        assert srv.ciphers  # a real TLS session
        plus(d)
        d.ok("AT+SAVETRANSLINK=0")
        assert d.cmd("AT") == b"AT\r\n\r\nOK\r\n"  # echo is on again after the reset
    finally:
        if booted:  # leave no saved link behind, whatever happened
            plus(d)
            d.drain()
            d.cmd("AT+SAVETRANSLINK=0")


# == the board as an SSL server ===========================================================================================
@pytest.fixture
def ssl_server(mux, pki, host_ip):
    d = mux
    provision_server(d, pki, ("cert", "key"))
    port = free_port(host_ip)
    assert d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port) == b"\r\nOK\r\n"
    yield d, (host_ip, port)


@pytest.mark.timeout(60)
def test_ssl_server_serves_python_client(ssl_server, pki, host_ip):
    d, addr = ssl_server
    assert d.cmd("AT+CIPSERVER?") == b'+CIPSERVER:1,%d,"SSL",0,0\r\n\r\nOK\r\n' % addr[1]
    ctx = pki.client_ctx()
    c = ctx.wrap_socket(socket.create_connection(addr, timeout=10), server_hostname="localhost")
    assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"
    assert c.version() in ("TLSv1.2", "TLSv1.3")
    c.sendall(b"from python")
    assert d.read_until(b"from python") == b"\r\n+IPD,0,11:from python"
    send(d, b"from the board", 0)
    got = b""
    while len(got) < 14:
        got += c.recv(100)
    assert got == b"from the board"
    r = d.cmd("AT+CIPSTATE?")
    assert r == b'+CIPSTATE:0,"SSL","%s",%d,%d,1\r\n\r\nOK\r\n' % (
        host_ip.encode(), c.getsockname()[1], addr[1]), r
    # a second client at the same time
    c2 = ctx.wrap_socket(socket.create_connection(addr, timeout=10), server_hostname=host_ip)
    assert d.read_until(b"CONNECT\r\n") == b"1,CONNECT\r\n"
    c2.sendall(b"two")
    assert d.read_until(b"two") == b"\r\n+IPD,1,3:two"
    c.close()
    assert d.read_until(b"CLOSED\r\n") == b"0,CLOSED\r\n"
    assert d.cmd("AT+CIPCLOSE=1") == b"1,CLOSED\r\n\r\nOK\r\n"
    c2.settimeout(5)
    try:
        assert c2.recv(10) == b""
    except (ssl.SSLError, ConnectionResetError):
        pass  # the board may close without close_notify
    c2.close()


@pytest.mark.timeout(60)
def test_ssl_server_https_page(ssl_server, pki):
    """Python's https client fetches a page the host serves through the board."""
    import http.client
    d, addr = ssl_server
    body = b"hello over TLS\n" * 200
    res = {}

    def fetch():
        conn = http.client.HTTPSConnection(addr[0], addr[1], timeout=20, context=pki.client_ctx())
        conn.request("GET", "/hello")
        r = conn.getresponse()
        res["status"], res["body"] = r.status, r.read()
        conn.close()

    t = threading.Thread(target=fetch)
    t.start()
    d.read_until(b"0,CONNECT\r\n", timeout=10)
    hdr = d.read_until(re.compile(rb"\+IPD,0,(\d+):"), timeout=10)
    n = int(re.search(rb"\+IPD,0,(\d+):", hdr).group(1))
    req = d.read_exactly(n)
    assert req.startswith(b"GET /hello HTTP/1.1\r\n"), req
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body))
    send(d, resp, 0)
    d.read_until(b"0,CLOSED\r\n", timeout=10)
    t.join(10)
    assert res == {"status": 200, "body": body}


@pytest.mark.timeout(60)
def test_ssl_server_requires_client_cert(mux, clock, pki, host_ip):
    d = mux
    provision_server(d, pki)
    port = free_port(host_ip)
    d.ok('AT+CIPSERVER=1,%d,"SSL",1' % port)
    assert d.cmd("AT+CIPSERVER?") == b'+CIPSERVER:1,%d,"SSL",1,0\r\n\r\nOK\r\n' % port
    addr = (host_ip, port)
    # no client certificate: refused
    for cert in (None, pki.stranger):
        raw = socket.create_connection(addr, timeout=10)
        with pytest.raises((ssl.SSLError, OSError)):
            c = pki.client_ctx(cert).wrap_socket(raw, server_hostname="localhost")
            c.sendall(b"x")
            c.recv(10)  # TLS 1.3 would tell only here
        raw.close()
        assert d.quiet(0.5) == b""  # no CONNECT, nothing
        no_links(d)
    # with the certificate from the CA in server_ca.0: a link
    c = pki.client_ctx(pki.client).wrap_socket(socket.create_connection(addr, timeout=10),
                                               server_hostname="localhost")
    assert d.read_until(b"CONNECT\r\n") == b"0,CONNECT\r\n"
    c.sendall(b"trusted")
    assert d.read_until(b"trusted") == b"\r\n+IPD,0,7:trusted"
    c.close()
    d.read_until(b"0,CLOSED\r\n")


@pytest.mark.timeout(60)
def test_ssl_server_without_certificate(mux, pki, host_ip):
    d = mux
    port = free_port(host_ip)
    assert d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port) == b"NO CERT FOUND\r\n\r\nERROR\r\n"
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    d.ok("AT+SYSLOG=1")
    assert_err(d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port), 0x54, b"NO CERT FOUND\r\n")
    provision_server(d, pki, ("cert",))
    assert_err(d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port), 0x54, b"NO PRVT_KEY FOUND\r\n")
    provision_server(d, pki, ("key",))
    assert_err(d.cmd('AT+CIPSERVER=1,%d,"SSL",1' % port), 0x54, b"NO CA FOUND\r\n")
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    # nothing listens after a refused server
    s = socket.socket()
    s.settimeout(2)
    assert s.connect_ex((host_ip, port)) != 0
    s.close()
    provision(d, "server_cert", "server_cert.0", b"garbage, not a certificate")
    assert_err(d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port), 0x55)
    assert d.cmd("AT+CIPSERVER?") == b"+CIPSERVER:0\r\n\r\nOK\r\n"
    provision_server(d, pki, ("cert",))
    assert d.cmd('AT+CIPSERVER=1,%d,"SSL",0' % port) == b"\r\nOK\r\n"


@pytest.mark.timeout(60)
def test_ssl_server_stays_responsive_with_silent_client(ssl_server, pki):
    """A client that connects and never starts TLS must not stall the board: AT
    commands are answered meanwhile. TLS clients are served one handshake at a
    time (a handshake started inside another's loop turn would run with
    MicroPython's scheduler locked and could never time out: issue 12, finding
    8), so a second client waits until the silent one has gone, then is served."""
    d, addr = ssl_server
    silent = socket.create_connection(addr, timeout=10)
    time.sleep(0.3)  # the board takes the client and waits for its hello, silently, when the AT comes
    t = time.monotonic()
    assert d.cmd("AT", timeout=3) == b"\r\nOK\r\n"
    assert time.monotonic() - t < 1.0
    done = []

    def second():
        c = pki.client_ctx().wrap_socket(socket.create_connection(addr, timeout=30), server_hostname="localhost")
        done.append(c)

    th = threading.Thread(target=second, daemon=True)
    th.start()
    assert d.quiet(1.0) == b""  # its turn has not come
    silent.close()  # the silent one's handshake fails: no link, no message
    r = d.read_until(b"CONNECT\r\n", timeout=10)
    assert re.fullmatch(rb"\d,CONNECT\r\n", r), r
    lid = int(r[:1])
    th.join(10)
    c = done[0]
    c.sendall(b"meanwhile")
    assert d.read_until(b"meanwhile") == b"\r\n+IPD,%d,9:meanwhile" % lid
    r = d.cmd("AT+CIPSTATE?")
    assert re.findall(rb"\+CIPSTATE:(\d),", r) == [b"%d" % lid], r
    c.close()


# == the loop during a handshake ===============================================================================================
@pytest.mark.timeout(60)
def test_loop_runs_during_handshake(mux, pki, host_ip, peers):
    """A TLS server that waits 1.5 s before answering the ClientHello: meanwhile a TCP
    link receives data (+IPD before the SSL CONNECT) and AT gets "busy p..."."""
    d = mux
    tcp = peers(TcpServer(host_ip, hold))
    d.ok('AT+CIPSTART=1,"TCP","%s",%d' % (host_ip, tcp.port))
    c = tcp.wait_conn()
    slow = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo, delay=1.5))
    t0 = time.monotonic()
    d.write(b'AT+CIPSTART=0,"SSL","%s",%d\r\n' % (host_ip.encode(), slow.port))
    assert slow.tcp_accepted.wait(5)
    time.sleep(0.2)  # the board is inside its handshake (it prints nothing) when the data comes
    c.sendall(b"ping")
    assert d.read_until(b"ping", timeout=1.0) == b"\r\n+IPD,1,4:ping"
    d.write(b"AT\r\n")
    assert d.read_until(b"busy p...\r\n", timeout=1.0) == b"\r\nbusy p...\r\n"
    assert time.monotonic() - t0 < 1.5 and not slow.accepted.is_set()  # all that while it handshook
    assert d.read_until(b"OK\r\n", timeout=10) == b"0,CONNECT\r\n\r\nOK\r\n"
    assert time.monotonic() - t0 >= 1.5
    roundtrip(d, b"after the wait", 0)
    c.sendall(b"pong")
    assert d.read_until(b"pong") == b"\r\n+IPD,1,4:pong"


@pytest.mark.timeout(60)
def test_handshake_timeout(ssl_dut, host_ip, peers):
    """A server that accepts and never answers the ClientHello: the handshake gives
    up after CIPSTART's <timeout>; ERR CODE 0x010a0056; the socket is closed."""
    d = ssl_dut
    d.ok("AT+SYSLOG=1")
    srv = peers(TcpServer(host_ip, hold))
    t = time.monotonic()
    r = start(d, host_ip, srv.port, extra=",,,2000")
    took = time.monotonic() - t
    assert_err(r, 0x56)
    assert 1.5 < took < 5, took
    no_links(d)
    assert sees_eof(srv.wait_conn(), 5)
    assert d.cmd("AT") == b"\r\nOK\r\n"


# == resilience ==================================================================================================================
def _rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", ["at_once", "after_hello"])
def test_peer_resets_mid_handshake(ssl_dut, pki, host_ip, peers, when):
    d = ssl_dut
    d.ok("AT+SYSLOG=1")

    def handler(c, srv):
        if when == "after_hello":
            c.recv(4096)  # the ClientHello
        else:
            time.sleep(0.05)  # the RST a moment after the accept, the hello left unread
        _rst(c)

    srv = peers(TcpServer(host_ip, handler))
    r = start(d, host_ip, srv.port)
    assert_err(r, 0x50)
    no_links(d)
    assert d.cmd("AT") == b"\r\nOK\r\n"
    good = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, good.port))
    roundtrip(d, b"recovered")


@pytest.mark.timeout(60)
def test_peer_resets_mid_transfer(mux, pki, host_ip, peers):
    """Link 0's TLS peer resets after sending some data: 0,CLOSED; the plain TCP
    link 1 and the SSL link 2 carry on."""
    d = mux
    victim = peers(TlsServer(host_ip, pki.server_ctx(), tls_hold))
    tcp = peers(TcpServer(host_ip, echo))
    other = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    connected(start(d, host_ip, victim.port, 0), 0)
    d.ok('AT+CIPSTART=1,"TCP","%s",%d' % (host_ip, tcp.port))
    connected(start(d, host_ip, other.port, 2), 2)
    v = victim.wait_conn()
    v.sendall(b"partial")
    assert d.read_until(b"partial") == b"\r\n+IPD,0,7:partial"
    _rst(v)
    assert d.read_until(b"0,CLOSED\r\n", timeout=5) == b"0,CLOSED\r\n"
    r = d.cmd("AT+CIPSTATE?")
    assert re.findall(rb"\+CIPSTATE:(\d),", r) == [b"1", b"2"], r
    roundtrip(d, b"tcp fine", 1)
    roundtrip(d, b"ssl fine", 2)
    assert d.cmd("AT+CIPSEND=0,3") == b"\r\nERROR\r\n"


@pytest.mark.timeout(60)
def test_send_to_a_peer_that_reset(ssl_dut, pki, host_ip, peers):
    """The peer resets while the host sends: SEND FAIL or ERROR, then CLOSED, never a hang."""
    d = ssl_dut
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_hold))
    connected(start(d, host_ip, srv.port))
    _rst(srv.wait_conn())
    time.sleep(0.3)  # the RST reaches the board's socket first (both outcomes of the send are allowed)
    d.write(b"AT+CIPSEND=5\r\n")
    r = d.read_until(re.compile(rb"\r\n(ERROR|>)"), timeout=5)
    if r.endswith(b">"):
        d.write(b"12345")
        r += d.read_until(re.compile(rb"SEND (OK|FAIL)\r\n"), timeout=5)
    r += d.quiet(0.5)
    assert b"CLOSED\r\n" in r, r
    no_links(d)
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("line", [
    'AT+CIPSTART=5,"SSL","127.0.0.1",443',
    'AT+CIPSTART=-1,"SSL","127.0.0.1",443',
    'AT+CIPSTART=0,"SSLv7","127.0.0.1",443',
    'AT+CIPSTART=0,"SSL","127.0.0.1",65536',
    'AT+CIPSTART=0,"SSL","",443',
    'AT+CIPSTART=0,"SSL","127.0.0.1",443,,,60001',
    "AT+CIPSEND=3,5",
    "AT+CIPCLOSE=3",
    "AT+CIPSSLCCONF=7,0",
])
def test_bad_input_multi(mux, line):
    d = mux
    assert d.cmd(line) == b"\r\nERROR\r\n", line
    assert d.cmd("AT") == b"\r\nOK\r\n"
    no_links(d)


@pytest.mark.ipv6
@pytest.mark.timeout(30)
def test_sslv6(ssl_dut, pki, peers, vboard):
    d = ssl_dut
    srv = peers(TlsServer("::1", pki.server_ctx(), tls_echo))
    assert d.cmd('AT+CIPSTART="SSLv6","::1",%d' % srv.port) == b"\r\nERROR\r\n"  # needs AT+CIPV6=1
    d.ok("AT+CIPV6=1")
    provision_client(d, pki, ("ca",))
    d.ok("AT+CIPSSLCCONF=2,0,0")
    connected(d.cmd('AT+CIPSTART="SSLv6","::1",%d' % srv.port, timeout=20))
    roundtrip(d, b"over v6")
    r = d.cmd("AT+CIPSTATE?")
    assert re.fullmatch(rb'\+CIPSTATE:0,"SSLv6","::1",%d,\d+,0\r\n\r\nOK\r\n' % srv.port, r), r


# == heap ===========================================================================================================================
def _sysram(d):
    r = d.cmd("AT+SYSRAM?")
    m = re.fullmatch(rb"\+SYSRAM:(\d+),(\d+)\r\n\r\nOK\r\n", r)
    assert m, r
    return int(m.group(1)), int(m.group(2))


@pytest.mark.timeout(60)
def test_heap_one_ssl_link_and_four_tcp_links(mux, pki, host_ip, peers, capsys):
    d = mux
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    tcp = peers(TcpServer(host_ip, echo))
    # The SSL code loads on first use and stays: load it before measuring the link
    d.cmd("AT+CIPSSLCCONF?")
    free0, low0 = _sysram(d)
    connected(start(d, host_ip, srv.port, 0), 0)
    roundtrip(d, b"x" * 2000, 0)  # the record buffers are in use
    free1, low1 = _sysram(d)
    for lid in range(1, 5):
        d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, tcp.port))
    free2, low2 = _sysram(d)
    for lid in range(5):
        roundtrip(d, b"link %d works" % lid, lid)
    r = d.cmd("AT+CIPSTATE?")
    assert re.findall(rb'\+CIPSTATE:(\d),"(\w+)"', r) == [
        (b"0", b"SSL"), (b"1", b"TCP"), (b"2", b"TCP"), (b"3", b"TCP"), (b"4", b"TCP")], r
    d.ok("AT+CIPCLOSE=0")
    free3, low3 = _sysram(d)
    with capsys.disabled():
        print("\nheap: free %d before the SSL link, %d with it (cost %d bytes);"
              " %d with four TCP links too (%d bytes each); %d after closing the SSL link (%d back)"
              % (free0, free1, free0 - free1, free2, (free1 - free2) // 4, free3, free3 - free2))
    assert free0 - free1 > 0
    assert free3 - free2 >= (free0 - free1) * 0.8  # closing gives the memory back


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["active", "passive"])
def test_server_greeting_right_after_handshake(ssl_dut, pki, host_ip, peers, mode):
    """A server that speaks first (SMTP, FTP, a banner) sends its greeting right
    behind its last handshake message: the host must see it without sending
    anything."""
    d = ssl_dut
    if mode == "passive":
        d.ok("AT+CIPRECVTYPE=1")
    srv = peers(TlsServer(host_ip, pki.server_ctx(), lambda s, srv: (s.sendall(b"220 welcome\r\n"), tls_hold(s, srv))))
    connected(start(d, host_ip, srv.port))
    if mode == "active":
        assert d.read_until(b"welcome\r\n", timeout=3) == b"\r\n+IPD,13:220 welcome\r\n"
    else:
        assert d.read_until(b"+IPD,13\r\n", timeout=3) == b"\r\n+IPD,13\r\n"
        assert d.cmd("AT+CIPRECVDATA=100") == b"+CIPRECVDATA:13,220 welcome\r\n\r\n\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_passthrough_data_held_outside_data_mode(ssl_dut, pki, host_ip, peers):
    """After +++ the link stays open; what the peer sends meanwhile waits (in the
    socket or in mbedTLS) and comes out raw on the next AT+CIPSEND."""
    d = ssl_dut
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_hold))
    d.ok("AT+CIPMODE=1")
    connected(start(d, host_ip, srv.port))
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    c = srv.wait_conn()
    c.sendall(b"in data mode")
    assert d.read_exactly(12) == b"in data mode"
    plus(d)
    c.sendall(b"while you were out")
    c.sendall(b", twice")
    assert d.quiet(0.4) == b""
    assert d.cmd("AT") == b"\r\nOK\r\n"
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b"twice", timeout=3) == b"\r\nOK\r\n\r\n>while you were out, twice"
    plus(d)


@pytest.mark.timeout(60)
def test_passthrough_reconnects_with_a_new_handshake(ssl_dut, pki, host_ip, peers):
    """In SSL passthrough the peer drops the connection: the board connects again
    (a new TLS handshake) and the UART data flows over the new session."""
    d = ssl_dut
    d.ok("AT+CIPRECONNINTV=5")  # 500 ms
    drop = threading.Event()

    def first_drops(c, srv):
        # The first connection is closed by its own thread when the test says so
        # (an SSL socket must not be used from two threads); later ones echo.
        if len(srv.conns) == 1:
            drop.wait(10)
            tls_close(c, 1)
        else:
            tls_echo(c, srv)

    srv = peers(TlsServer(host_ip, pki.server_ctx(), first_drops))
    d.ok("AT+CIPMODE=1")
    connected(start(d, host_ip, srv.port))
    d.write(b"AT+CIPSEND\r\n")
    assert d.read_until(b">") == b"\r\nOK\r\n\r\n>"
    srv.wait_conn()
    srv.accepted.clear()
    drop.set()
    assert srv.accepted.wait(10), srv.errors  # a second handshake
    d.write(b"after the reconnect")  # bytes the board takes before it resumes wait in its buffer
    assert d.read_until(b"reconnect", timeout=5) == b"after the reconnect"
    assert len(srv.conns) == 2
    plus(d)
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_link_conn_reports_ssl(ssl_server, pki, host_ip, peers):
    """AT+SYSMSG=2: +LINK_CONN carries "SSL" for server clients and client links."""
    d, addr = ssl_server
    d.ok("AT+SYSMSG=2")
    c = pki.client_ctx().wrap_socket(socket.create_connection(addr, timeout=10), server_hostname="localhost")
    r = d.read_until(b"\r\n")
    assert r == b'+LINK_CONN:0,0,"SSL",1,"%s",%d,%d\r\n' % (host_ip.encode(), c.getsockname()[1], addr[1]), r
    srv = peers(TlsServer(host_ip, pki.server_ctx(), tls_echo))
    r = start(d, host_ip, srv.port, 1)
    assert re.fullmatch(rb'\+LINK_CONN:0,1,"SSL",0,"%s",%d,\d+\r\n\r\nOK\r\n' % (
        re.escape(host_ip.encode()), srv.port), r), r
    c.close()
