"""TLS peers for the tests: a test CA made with trustme, certificates for the
peers and the board, Python ssl servers, and provisioning over AT+SYSMFG."""
import datetime
import socket
import ssl
import threading

import trustme


class Pki:
    def __init__(self):
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()  # a CA the board does not trust
        self.server = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.wrong_name = self.ca.issue_cert("not-this-host.example")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.expired = self.ca.issue_cert("localhost", "127.0.0.1", not_before=now - datetime.timedelta(days=30),
                                          not_after=now - datetime.timedelta(days=1))
        self.untrusted = self.other_ca.issue_cert("localhost", "127.0.0.1")
        self.client = self.ca.issue_cert("board-client")

    def server_ctx(self, cert=None, require_client=False):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server).configure_cert(ctx)
        if require_client:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def provision(d, ns, key, data):
    """AT+SYSMFG write of a binary value, as a host would."""
    d.write(b'AT+SYSMFG=2,"%s","%s",8,%d\r\n' % (ns.encode(), key.encode(), len(data)))
    d.read_until(b">")
    d.write(data)
    r = d.read_until(b"\r\nOK\r\n", timeout=10)
    assert r.endswith(b"\r\nOK\r\n"), r


class TlsServer:
    """Accepts TLS connections with ctx and runs handler(sslsock, server)."""

    def __init__(self, host, ctx, handler, delay=0.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.handler = handler
        self.delay = delay
        self.errors = []
        self.sni = []
        self.received = bytearray()
        self.conns = []
        self.accepted = threading.Event()
        ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        import time
        try:
            if self.delay:
                time.sleep(self.delay)
            s = self.ctx.wrap_socket(c, server_side=True)
            self.conns.append(s)
            self.accepted.set()
            self.handler(s, self)
        except (OSError, ssl.SSLError) as e:
            self.errors.append(e)

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def tls_echo(s, srv):
    while True:
        d = s.recv(65536)
        if not d:
            return
        srv.received += d
        s.sendall(d)
