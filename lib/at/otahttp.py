# The OTA's HTTP/1.1 client: GET over one kept-alive connection, plain or TLS,
# Content-Length bodies, written as generators that yield what they wait for so
# the loop never blocks. Used by the installer (at/ota.py) while an update runs.
import time
import socket
import hashlib
from at import dns, sock
from at.nested import wait_turn as nested_turn
from at.errors import (E_OTA_CONNECT, E_OTA_FLASH, E_OTA_HASH, E_OTA_HTTP, E_OTA_TIMEOUT, E_OTA_TLS,
                       E_OTA_VERSION)
from at.fwfiles import Fail, hexdigest

BUF = 1024  # one read; the only buffer a download needs besides the image's block
HEAD_MAX = 2048  # a response header longer than this is refused
YIELD_BYTES = 8192  # give the loop a turn at least this often while data pours in


class Http:
    """GET over one kept-alive connection (HTTP/1.1, Content-Length bodies),
    plain or TLS, written as generators that yield what they wait for."""

    def __init__(self, eng, host, port, path, tls, timeout_ms):
        self.eng = eng
        self.host = host
        self.port = port
        self.base = path
        self.tls = tls
        self.timeout_ms = timeout_ms
        self.deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        self.addr = None
        self.fam = socket.AF_INET
        self.s = None  # the socket the loop polls
        self.ss = None  # what is read and written: s, or its TLS wrapper
        self.buf = bytearray(BUF)
        self.extra = b""  # body bytes that came with the header
        self.keep = True

    def left(self):
        ms = time.ticks_diff(self.deadline, time.ticks_ms())
        if ms <= 0:
            raise Fail(E_OTA_TIMEOUT, "no end within the OTA timeout (%d s)" % (self.timeout_ms // 1000))
        return ms

    def resolve(self):
        ips = yield from dns.lookup(self.eng, self.host, 1, self.left())
        self.fam = socket.AF_INET6 if ":" in ips[0] else socket.AF_INET
        self.addr = socket.getaddrinfo(ips[0], self.port, self.fam)[0][-1]

    def connect(self):
        s = socket.socket(self.fam, socket.SOCK_STREAM)
        self.s = s
        s.setblocking(False)
        sock.start_connect(s, self.addr)
        try:
            yield from sock.connected(self.eng, s, self.left())
        except OSError as e:
            if sock.errno_of(e) == sock.ETIMEDOUT:
                self.left()
            raise
        if self.tls:
            yield from nested_turn(self.eng)
        self.ss = self._handshake(s) if self.tls else s
        self.keep = True

    def _handshake(self, s):
        """TLS with the server's certificate checked against client_ca.0 (the
        mfg store, AT+SYSMFG) and the host name; the loop keeps turning (at/nested.py)."""
        import tls
        from at import nested, sslconf, mfg
        ca = mfg.read("client_ca", "client_ca.0")
        if ca is None:
            raise Fail(E_OTA_TLS, "HTTPS needs the server's CA in client_ca.0 (AT+SYSMFG)")
        if not self.eng.board.clock_set():
            raise Fail(E_OTA_TLS, "the clock is not set, the server's certificate dates cannot be checked: "
                              "set it first (AT+CIPSNTPCFG)")
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        try:
            for c in sslconf.der(ca):
                ctx.load_verify_locations(c)
        except (ValueError, OSError, IndexError) as e:
            raise Fail(E_OTA_TLS, "client_ca.0 does not parse: %r" % (e,))
        ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]  # stubs lack it; modtls_mbedtls.c has it
        aborted = []

        def abort():
            aborted.append(1)
            s.close()

        try:
            return nested.run(self.eng.loop, lambda: ctx.wrap_socket(s, server_hostname=self.host),
                              self.left(), abort, self.eng.log)
        except Exception as e:
            if aborted:
                self.left()
                raise Fail(E_OTA_TIMEOUT, "TLS handshake timed out")
            raise Fail(E_OTA_TLS, "TLS handshake with %s failed: %r" % (self.host, e))

    def close(self):
        for x in (self.ss, self.s):
            if x is not None:
                try:
                    x.close()
                except OSError:
                    pass
        self.s = self.ss = None
        self.extra = b""

    def _send(self, data):
        mv = memoryview(data)
        while mv:
            n = sock.write(self.ss, mv)
            if n:
                mv = mv[n:]
            else:
                ev = yield self.eng.writable(self.s, self.left())
                if ev == 0:
                    self.left()

    def _read(self):
        """Generator: read into self.buf; the byte count, 0 at the end of the stream."""
        while True:
            self.left()
            n = sock.read_into(self.ss, self.buf)
            if n is not None:
                return n
            # Nothing yet (mbedTLS had nothing decrypted either): wait for the socket.
            yield self.eng.readable(self.s, self.left())

    def request(self, path):
        """Generator: GET path; (status, Content-Length). A kept-alive connection
        the server has closed meanwhile is opened again, once."""
        while True:
            fresh = self.ss is None
            if fresh:
                yield from self.connect()
            req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: MicroPython-AT\r\nAccept: */*\r\n\r\n" % (
                path, self.host, self.port)
            try:
                yield from self._send(req.encode())
                r = yield from self._head()
            except OSError:
                if fresh:
                    raise
                r = None
            if r is not None:
                return r
            self.close()
            if fresh:
                raise Fail(E_OTA_HTTP, "the server closed the connection without an answer")

    def _head(self):
        h = bytearray()
        while True:
            i = h.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(h) > HEAD_MAX:
                raise Fail(E_OTA_HTTP, "response header too long")
            n = yield from self._read()
            if n == 0:
                if not h:
                    return None
                raise Fail(E_OTA_HTTP, "the connection ended in the response header")
            h.extend(memoryview(self.buf)[:n])
        self.extra = bytes(h[i + 4:])
        lines = bytes(h[:i]).decode().split("\r\n")
        first = lines[0].split(" ")
        if len(first) < 2 or first[0][:7] != "HTTP/1." or not first[1].isdigit():
            raise Fail(E_OTA_HTTP, "not an HTTP response: %r" % lines[0][:40])
        status = int(first[1])
        self.keep = first[0] == "HTTP/1.1"
        length = -1
        for line in lines[1:]:
            kv = line.split(":", 1)
            if len(kv) != 2:
                continue
            k = kv[0].strip().lower()
            v = kv[1].strip()
            if k == "content-length" and v.isdigit():
                length = int(v)
            elif k == "connection":
                self.keep = v.lower() == "keep-alive" or (self.keep and v.lower() != "close")
            elif k == "transfer-encoding" and v.lower() != "identity":
                raise Fail(E_OTA_HTTP, "%s bodies are not supported: the server must send Content-Length" % v)
        if length < 0 and status == 200:
            raise Fail(E_OTA_HTTP, "the answer has no Content-Length")
        return status, length

    def body(self, length, sink):
        """Generator: hand the body's `length` bytes to sink(memoryview), as they come."""
        got = 0
        ex = self.extra
        self.extra = b""
        if ex:
            got = min(len(ex), length)
            sink(memoryview(ex)[:got])
        since = 0
        while got < length:
            n = yield from self._read()
            if n == 0:
                raise Fail(E_OTA_CONNECT, "the server closed the connection after %d of %d bytes" % (got, length))
            take = min(n, length - got)
            sink(memoryview(self.buf)[:take])
            got += take
            since += n
            if since >= YIELD_BYTES:
                since = 0
                yield 0  # eng.sleep(0): the UART and the links get the loop
        if not self.keep:
            self.close()

    def _get(self, path, want=None):
        status, length = yield from self.request(path)
        if status != 200:
            self.close()
            raise Fail(E_OTA_VERSION if status == 404 else E_OTA_HTTP, "GET %s: HTTP %d" % (path, status))
        if want is not None and length != want:
            self.close()
            raise Fail(E_OTA_HASH, "GET %s: %d bytes, the manifest says %d" % (path, length, want))
        return length

    def fetch(self, path, maxlen):
        """Generator: a small body (a list, a manifest) as bytes."""
        length = yield from self._get(path)
        if length > maxlen:
            self.close()
            raise Fail(E_OTA_HTTP, "GET %s: %d bytes is too long" % (path, length))
        out = bytearray()
        yield from self.body(length, out.extend)
        return bytes(out)

    def fetch_file(self, path, dest, size, sha, maxlen=0):
        """Generator: stream a file to dest while hashing it; Fail if it is not
        the one the manifest describes (size None: any size up to maxlen, sha
        None: no check). Only BUF bytes are ever in RAM."""
        n = yield from self._get(path, size)
        if size is None:
            if n > maxlen:
                self.close()
                raise Fail(E_OTA_HTTP, "GET %s: %d bytes is too long" % (path, n))
            size = n
        h = hashlib.sha256()
        f = open(dest, "wb")

        def sink(mv):
            h.update(mv)
            try:
                f.write(mv)
            except OSError as e:
                raise Fail(E_OTA_FLASH, "writing %s: %r" % (dest, e))

        try:
            yield from self.body(size, sink)
        finally:
            f.close()
        if sha is not None and hexdigest(h) != sha:
            raise Fail(E_OTA_HASH, "%s: SHA-256 mismatch" % path)

    def fetch_image(self, path, img):
        yield from self._get(path, img.size)
        yield from self.body(img.size, img.write)
