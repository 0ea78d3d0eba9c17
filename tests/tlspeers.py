"""TLS peers for the tests: a test CA made with trustme, certificates for the
peers and the board, Python ssl servers and clients, an `openssl s_server`
for TLS-PSK, and provisioning over AT+SYSMFG."""
import datetime
import re
import socket
import ssl
import subprocess
import threading
import time

import trustme

from board import stop_process
from peers import free_port, wait_for  # noqa: F401 (the tests take free_port from here too)

# The namespaces the SSL client and server read (Basic_AT_Commands.rst, AT+SYSMFG).
SSL_NAMESPACES = ("client_cert", "client_key", "client_ca", "server_cert", "server_key", "server_ca")


class Pki:
    def __init__(self, host_ip="127.0.0.1"):
        names = ["localhost", "127.0.0.1", "::1"]
        if host_ip not in names:
            names.append(host_ip)  # a real board reaches the host by its LAN address
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()  # a CA the board does not trust
        self.server = self.ca.issue_cert(*names)
        self.wrong_name = self.ca.issue_cert("not-this-host.example")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.expired = self.ca.issue_cert(*names, not_before=now - datetime.timedelta(days=30),
                                          not_after=now - datetime.timedelta(days=1))
        self.untrusted = self.other_ca.issue_cert(*names)
        self.client = self.ca.issue_cert("board-client")  # the board's client certificate
        self.stranger = self.other_ca.issue_cert("stranger")  # a client certificate from the other CA

    # -- what the board stores ------------------------------------------------------------
    def client_files(self):
        """{(namespace, key): PEM bytes} for the board as an SSL client."""
        return {("client_cert", "client_cert.0"): self.client.cert_chain_pems[0].bytes(),
                ("client_key", "client_key.0"): self.client.private_key_pem.bytes(),
                ("client_ca", "client_ca.0"): self.ca.cert_pem.bytes()}

    def server_files(self):
        """{(namespace, key): PEM bytes} for the board as an SSL server."""
        return {("server_cert", "server_cert.0"): self.server.cert_chain_pems[0].bytes(),
                ("server_key", "server_key.0"): self.server.private_key_pem.bytes(),
                ("server_ca", "server_ca.0"): self.ca.cert_pem.bytes()}

    # -- Python peers -------------------------------------------------------------------------
    def server_ctx(self, cert=None, require_client=False):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server).configure_cert(ctx)
        if require_client:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_ctx(self, cert=None):
        """A Python client that checks the board against the test CA, with an
        optional client certificate of its own."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        if cert is not None:
            cert.configure_cert(ctx)
        return ctx


def provision(d, ns, key, data):
    """AT+SYSMFG write of a binary value, as a host would."""
    d.write(b'AT+SYSMFG=2,"%s","%s",8,%d\r\n' % (ns.encode(), key.encode(), len(data)))
    d.read_until(b">")
    d.write(data)
    r = d.read_until(b"\r\nOK\r\n", timeout=10)
    assert r.endswith(b"\r\nOK\r\n"), r


def provision_all(d, files):
    for (ns, key), data in files.items():
        provision(d, ns, key, data)


def erase(d, ns, key=None):
    """Erase a key (or a whole namespace); a key that is not there is fine."""
    if key is None:
        d.ok('AT+SYSMFG=0,"%s"' % ns)
    else:
        d.cmd('AT+SYSMFG=0,"%s","%s"' % (ns, key))


class TlsServer:
    """Accepts TLS connections with ctx and runs handler(sslsock, server).

    delay: seconds to sit on an accepted connection before answering its
    ClientHello. What each connection showed is kept: the SNI it sent (`sni`),
    the suite agreed (`ciphers`), the client certificate (`peercerts`), handshake
    errors (`errors`), and whether the board closed the TCP connection after a
    failed handshake (`closed_after_failure`, True/False per failure)."""

    def __init__(self, host, ctx, handler, delay=0.0, port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.handler = handler
        self.delay = delay
        self.errors = []
        self.sni = []
        self.ciphers = []
        self.peercerts = []
        self.closed_after_failure = []
        self.received = bytearray()
        self.conns = []
        self.raw = []
        self.accepted = threading.Event()  # a handshake completed
        self.tcp_accepted = threading.Event()  # a TCP connection arrived
        self.failed = threading.Event()  # a handshake failed (and the probe is done)
        self.done = threading.Event()  # a handler returned
        ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.tcp_accepted.set()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        raw = c.dup()  # outlives a failed wrap_socket: tells whether the board hung up
        self.raw.append(raw)
        try:
            if self.delay:
                time.sleep(self.delay)  # a slow server: the test's delay before the handshake
            c.settimeout(30)
            try:
                s = self.ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.errors.append(e)
                self.closed_after_failure.append(sees_eof(raw, 5))
                self.failed.set()
                return
            raw.close()
            s.settimeout(None)
            self.ciphers.append(s.cipher())
            self.peercerts.append(s.getpeercert())
            self.conns.append(s)
            self.accepted.set()
            try:
                self.handler(s, self)
            except (OSError, ssl.SSLError) as e:
                self.errors.append(e)
            finally:
                try:
                    s.close()  # in this thread, the one that reads it
                except (OSError, ssl.SSLError):
                    pass
        finally:
            self.done.set()

    def wait_conn(self, timeout=10):
        assert self.accepted.wait(timeout), "no TLS connection reached the peer (errors: %r)" % self.errors
        return self.conns[-1]

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns + self.raw:
            # Only shut the TCP connection down here: closing an SSLSocket while its
            # handler thread is inside SSL_read() can abort the whole process
            # (OpenSSL objects are not shared between threads). The handler sees
            # EOF or an error and its thread ends.
            try:
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass


def sees_eof(sock, timeout):
    """Read until the other side closes (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, OSError):
        return False


def tls_echo(s, srv):
    while True:
        d = s.recv(65536)
        if not d:
            return
        srv.received += d
        s.sendall(d)


def tls_sink(s, srv):
    while True:
        d = s.recv(65536)
        if not d:
            return
        srv.received += d


def tls_hold(s, srv):
    """Handshake, then read nothing: the test drives the connection itself."""
    while not srv._stop:
        time.sleep(0.05)  # a poll step: the connection stays open until the server closes


def tls_close(s, timeout=5):
    """close_notify, a short wait for the board's own, then close."""
    s.settimeout(timeout)
    try:
        s.unwrap()
    except (OSError, ssl.SSLError, ValueError):
        pass
    s.close()


def tls_source(data):
    """A handler that sends `data` and then closes (with close_notify)."""
    def handler(s, srv):
        s.sendall(data)
        tls_close(s)
    return handler


def tls_http(body, content_type=b"text/html"):
    """A tiny HTTP/1.1 server: one GET, one response with Content-Length, then close."""
    def handler(s, srv):
        req = b""
        while b"\r\n\r\n" not in req:
            d = s.recv(4096)
            if not d:
                return
            req += d
        srv.received += req
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (content_type, len(body)) + body)
        tls_close(s)
    return handler


class PskServer:
    """`openssl s_server` with TLS-PSK and no certificate on 127.0.0.1, as a
    subprocess. `-rev` answers every line with the line reversed ("hello\\r\\n"
    -> "olleh\\n"). ESP-AT's <"psk"> is the key (given here in hex), <"hint"> the
    identity the client sends (checked by -psk_identity)."""

    def __init__(self, key_hex, identity, host="127.0.0.1", extra=()):
        self.port = free_port(host)
        self.lines = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "%s:%d" % (host, self.port), "-nocert", "-psk", key_hex,
             "-psk_identity", identity, "-rev", "-msg"] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(10):
            self.close()
            raise RuntimeError("openssl s_server did not start: %r" % self.lines)
        # s_server prints ACCEPT once bound; make sure the port really answers.
        assert wait_for(lambda: self._listening(host), 5), "openssl s_server does not listen on %d" % self.port

    def _listening(self, host):
        # A connect would start a handshake; ask the kernel instead.
        try:
            with open("/proc/net/tcp6" if ":" in host else "/proc/net/tcp") as f:
                rows = f.read().split("\n")[1:]
        except OSError:
            return True
        port = "%04X" % self.port
        return any(r.split()[1].endswith(":" + port) and r.split()[3] == "0A" for r in rows if r.strip())

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line == "ACCEPT":
                self._ready.set()

    def output(self):
        return "\n".join(self.lines)

    def suites(self):
        return re.findall(r"^Ciphersuite: (\S+)", self.output(), re.M)

    def identities(self):
        """The PSK identity of every ClientKeyExchange seen (s_server -msg dumps it:
        type, 3-byte length, 2-byte identity length, identity). s_server itself
        accepts any identity."""
        out = []
        lines = self.lines[:]
        for i, line in enumerate(lines):
            if line.startswith("<<<") and line.endswith("ClientKeyExchange"):
                hexes = []
                for follow in lines[i + 1:]:
                    if not follow.startswith("    "):
                        break
                    hexes += follow.split()
                b = bytes(int(x, 16) for x in hexes)
                n = int.from_bytes(b[4:6], "big")
                out.append(b[6:6 + n].decode(errors="replace"))
        return out

    def close(self):
        stop_process(self.proc)
