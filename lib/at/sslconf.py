# TLS contexts for SSL links, built from the AT+CIPSSLC* settings and the
# certificates in the mfg store (at/mfg.py), and the ERR CODEs that say why a
# handshake failed. Nothing here pretends: a check the settings ask for is made
# by mbedTLS, or the connection is refused.
import tls
import io
import errno
import binascii
from at import mfg
from at import nested
from at import sock
from at.sock import errno_of
from at.errors import fail, EXEC_FAIL, E_NOT_HERE, E_CLOCK, E_SSL_TIMEOUT
from at.errors import (E_SSL_HANDSHAKE, E_SSL_UNTRUSTED, E_SSL_NAME, E_SSL_EXPIRED, E_SSL_NO_CERT, E_SSL_BAD_CERT,
                       E_SSL_CIPHER)

MAX_LINKS = 5

# ERR CODE extensions (0x010a00xx) for SSL failures

# IANA numbers of the suites mbedTLS may offer (AT+CIPSSLCCIPHER speaks numbers;
# MicroPython's SSLContext speaks names). Only those the runtime lists are used.
SUITES = {
    0xC02C: "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", 0xC030: "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
    0xC024: "TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA384", 0xC028: "TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA384",
    0xC00A: "TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA", 0xC014: "TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA",
    0xC02B: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", 0xC02F: "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
    0xC023: "TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256", 0xC027: "TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256",
    0xC009: "TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA", 0xC013: "TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA",
    0x009D: "TLS-RSA-WITH-AES-256-GCM-SHA384", 0x003D: "TLS-RSA-WITH-AES-256-CBC-SHA256",
    0x0035: "TLS-RSA-WITH-AES-256-CBC-SHA", 0x009C: "TLS-RSA-WITH-AES-128-GCM-SHA256",
    0x003C: "TLS-RSA-WITH-AES-128-CBC-SHA256", 0x002F: "TLS-RSA-WITH-AES-128-CBC-SHA",
    0x00A9: "TLS-PSK-WITH-AES-256-GCM-SHA384", 0x00AF: "TLS-PSK-WITH-AES-256-CBC-SHA384",
    0x008D: "TLS-PSK-WITH-AES-256-CBC-SHA", 0x00A8: "TLS-PSK-WITH-AES-128-GCM-SHA256",
    0x00AE: "TLS-PSK-WITH-AES-128-CBC-SHA256", 0x008C: "TLS-PSK-WITH-AES-128-CBC-SHA",
    0xC0AC: "TLS-ECDHE-ECDSA-WITH-AES-128-CCM", 0xC0AD: "TLS-ECDHE-ECDSA-WITH-AES-256-CCM",
    0xC0AE: "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8", 0xC0AF: "TLS-ECDHE-ECDSA-WITH-AES-256-CCM-8",
    0xCCA8: "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
    0xCCA9: "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    0x1301: "TLS1-3-AES-128-GCM-SHA256", 0x1302: "TLS1-3-AES-256-GCM-SHA384",
    0x1303: "TLS1-3-CHACHA20-POLY1305-SHA256",
}


def supported():
    """[(number, name)] of the suites this runtime offers, in its order."""
    names = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).get_ciphers()
    by_name = {v: k for k, v in SUITES.items()}
    return [(by_name[n], n) for n in names if n in by_name]


class Settings:
    """Per-link SSL client settings (AT+CIPSSLCCN/SNI/ALPN/PSK/CIPHER)."""

    def __init__(self):
        self.cn = [""] * MAX_LINKS
        self.sni = [""] * MAX_LINKS
        self.psk = [None] * MAX_LINKS  # (key bytes, identity) or None
        self.ciphers = [None] * MAX_LINKS  # [suite number] or None: the runtime's list


def settings(eng):
    """The per-link settings (at.ssl), made on first use: by the first AT+CIPSSLC*
    command or the first SSL link, whichever comes first."""
    st = eng.ssl
    if st is None:
        st = eng.ssl = Settings()
    return st


def der(data):
    """The DER blocks of a PEM file (or [data] if it is DER already): the
    runtime's mbedTLS may be built without PEM parsing."""
    if data[:11] != b"-----BEGIN ":
        return [data]
    out = []
    for part in data.split(b"-----BEGIN ")[1:]:
        body = part.split(b"-----", 2)
        if len(body) < 2:
            raise ValueError("bad PEM")
        b64 = body[1].split(b"-----END")[0]
        out.append(binascii.a2b_base64(b64.replace(b"\r", b"").replace(b"\n", b"")))
    if not out:
        raise ValueError("bad PEM")
    return out


def _cert(ns, idx, missing):
    data = mfg.read(ns, "%s.%d" % (ns, idx))
    if data is None:
        raise fail(EXEC_FAIL, E_SSL_NO_CERT, lines=[missing])
    try:
        return der(data)
    except (ValueError, IndexError):
        raise fail(EXEC_FAIL, E_SSL_BAD_CERT)


def _load_chain(ctx, cert, key):
    try:
        ctx.load_cert_chain(cert[0], key[0])
    except (ValueError, OSError):
        raise fail(EXEC_FAIL, E_SSL_BAD_CERT)


def _load_ca(ctx, ca):
    try:
        for c in ca:
            ctx.load_verify_locations(c)
    except (ValueError, OSError):
        raise fail(EXEC_FAIL, E_SSL_BAD_CERT)


def is_ip(host):
    return ":" in host or host.replace(".", "").isdigit()


def check_clock(eng, what):
    """Certificate dates need the clock: mbedTLS checks them (an ESP32 image sets
    CONFIG_MBEDTLS_HAVE_TIME_DATE), and an ESP32's clock reads 2000-01-01 until
    SNTP (or the host) sets it, so every certificate would look "not yet valid".
    Say so instead of a misleading "expired"."""
    if not eng.board.clock_set():
        eng.log.write("at: %s: the clock is not set, certificate dates cannot be checked: "
                     "set it first (AT+CIPSNTPCFG)\n" % what)
        raise fail(EXEC_FAIL, E_CLOCK)


def client_context(eng, lid, host):
    """(SSLContext, server_hostname) for an SSL client link in slot lid."""
    auth, pki, ca = eng.cfg.get("sslcconf")[lid] if eng.cfg.get("sslcconf") else (0, 0, 0)
    st = settings(eng)
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    psk = st.psk[lid]
    if psk:
        ctx.verify_mode = tls.CERT_NONE  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
        ctx.psk_identity = psk[1]  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
        ctx.psk_key = psk[0]  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
    else:
        if auth in (1, 3):
            _load_chain(ctx, _cert("client_cert", pki, "NO CERT FOUND"),
                        _cert("client_key", pki, "NO PRVT_KEY FOUND"))
        if auth in (2, 3):
            _load_ca(ctx, _cert("client_ca", ca, "NO CA FOUND"))
            check_clock(eng, "link %d" % lid)  # after what is missing or broken: that comes first
            ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
        else:
            ctx.verify_mode = tls.CERT_NONE  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
    if st.ciphers[lid]:
        try:
            ctx.set_ciphers([SUITES[n] for n in st.ciphers[lid]])
        except (ValueError, OSError, KeyError):
            raise fail(EXEC_FAIL, E_SSL_CIPHER)
    # mbedTLS takes one name for both SNI and the certificate check. When the
    # certificate is checked, that name is AT+CIPSSLCCN, else AT+CIPSSLCSNI (the
    # name the client asked the server for is the one it expects on the
    # certificate), else the host. A CN and a different SNI cannot both be used:
    # refuse rather than ignore one.
    sni = st.sni[lid]
    if auth in (2, 3) and not psk:
        name = st.cn[lid] or sni or host
        if sni and sni != name:
            raise fail(EXEC_FAIL, E_NOT_HERE)
    else:
        name = sni or (None if is_ip(host) else host)
    return ctx, name


def server_context(eng, ca_enable):
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    _load_chain(ctx, _cert("server_cert", 0, "NO CERT FOUND"), _cert("server_key", 0, "NO PRVT_KEY FOUND"))
    if ca_enable:
        _load_ca(ctx, _cert("server_ca", 0, "NO CA FOUND"))
        check_clock(eng, "the SSL server")
        ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
    else:
        ctx.verify_mode = tls.CERT_NONE  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
    return ctx


def why(e):
    """The ERR CODE extension for a failed handshake."""
    msg = str(e)
    if isinstance(e, ValueError):  # MicroPython reports verification failures so
        if "expired" in msg or "future" in msg:
            return E_SSL_EXPIRED
        if "CN" in msg or "Common Name" in msg:
            return E_SSL_NAME
        return E_SSL_UNTRUSTED
    return E_SSL_HANDSHAKE


class Records(io.IOBase):
    """An SSL link's socket as mbedTLS reads it (its BIO): bytes pass through as
    they are, but a TLS record may start only when the link lets it. Reading a
    link's SSLSocket with readinto() loops until the buffer is full
    (py/stream.c, mp_stream_rw): a close_notify right behind the data is read in
    the same call, and its end of stream (0, extmod/modtls_mbedtls.c socket_read)
    is lost inside the loop; recv() stops at a record's end but allocates its
    result each read. So take() reads with readinto() into the link's buffer and
    lets at most one record start in each read, and none while the one before may
    still hold data: a close_notify is always the first thing a read meets, and
    its 0 is the read's. mbedTLS asks for a record's 5-byte header, then for its
    body (mbedtls_ssl_fetch_input), so the boundaries are counted here.
    MicroPython calls readinto/write/ioctl with a bytearray over mbedTLS's own
    buffer (py/modio.c, iobase_read_write): nothing is allocated."""

    def __init__(self, s):
        self.s = s
        self.ss = None  # the SSLSocket over this
        self.hdr = bytearray(5)
        self.have = 0  # header bytes of the next record read so far
        self.left = 0  # body bytes of the current record still to come
        self.free = True  # the handshake: records flow as mbedTLS asks
        self.gate = True  # may a record start in this read?
        self.clear = True  # did the last read end with nothing of a record left?

    def take(self, mv):
        """Read the link into mv: the count, 0 at the end of the stream, None when
        nothing is there yet (or a record waits for the next read)."""
        self.gate = self.clear
        n = sock.read_into(self.ss, mv)
        # a short read ended where mbedTLS needed a new record: none is pending now
        self.clear = n is None or n < len(mv)
        return n

    def readinto(self, buf):
        if self.have == 0 and self.left == 0 and not self.free:
            if not self.gate:
                return None  # "would block": the record waits in the socket for the next read
            self.gate = False
        try:
            n = self.s.readinto(buf)
        except OSError as e:
            return -errno_of(e)
        if not n:
            return n
        if self.have < 5:  # a header: mbedTLS asks for no more than its 5 bytes
            h = self.hdr
            for i in range(n):
                h[self.have + i] = buf[i]
            self.have += n
            if self.have == 5:
                self.left = h[3] << 8 | h[4]
                if not self.left:
                    self.have = 0
        else:
            self.left -= n
            if not self.left:
                self.have = 0
        return n

    def write(self, buf):
        try:
            return self.s.write(buf)
        except OSError as e:
            return -errno_of(e)

    def ioctl(self, req, arg):
        # MP_STREAM_CLOSE (py/stream.h): the link closes its socket itself. Nothing
        # polls the SSLSocket (the loop polls the socket), so nothing else comes.
        return 0 if req == 4 else -errno.EINVAL


def handshake(net, s, lid, host, timeout_ms, server_ctx=None):
    """TLS over the connected socket s of link lid (at/net.py's Net, net);
    returns its Records (the SSLSocket in .ss) or raises ATError (and then s is
    closed). The loop keeps running meanwhile (at/nested.py). Here, not in
    at/net.py: loaded with SSL."""
    from at.net import Link
    try:
        if server_ctx is not None:
            ctx, name = server_ctx, None
        else:
            ctx, name = client_context(net.eng, lid, host)
    except BaseException:
        net.links[lid] = None
        s.close()
        raise
    aborted = []

    def abort():
        aborted.append(1)
        s.close()

    net.links[lid] = net.links[lid] or Link(lid, "SSL", s, host, 0, 0)  # hold the slot
    # mbedTLS writes its last flight in pieces: without TCP_NODELAY, Nagle and
    # delayed ACKs add ~40 ms per handshake. AT+CIPTCPOPT applies afterwards.
    net.eng.board.tcpopt(s, -1, 1, 0)
    rec = Records(s)
    try:
        if server_ctx is not None:
            wrap = lambda: ctx.wrap_socket(rec, server_side=True)
        else:
            wrap = lambda: ctx.wrap_socket(rec, server_hostname=name)
        rec.ss = nested.run(net.loop, wrap, timeout_ms, abort, net.eng.log)
        rec.free = False
        return rec
    except Exception as e:
        net.links[lid] = None
        s.close()
        net.eng.log.write("at: SSL handshake on link %d failed: %r\n" % (lid, e))
        ext = E_SSL_TIMEOUT if aborted else why(e)
        raise fail(EXEC_FAIL, ext, errno=errno_of(e) if isinstance(e, OSError) else 0)
