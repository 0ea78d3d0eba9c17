"""Real network peers for the tests: TCP echo/sink/source and UDP echo servers
on a host address, each in its own thread, stopped by the test."""
import contextlib
import hashlib
import select
import socket
import threading
import time


class TcpServer:
    """Accepts connections and runs handler(conn, server) for each in a thread."""

    def __init__(self, host, handler, port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.conns = []
        self.accepted = threading.Event()
        self.received = bytearray()
        self.done = threading.Event()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c, self)
        except OSError:
            pass
        finally:
            self.done.set()

    def wait_conn(self, timeout=5):
        assert self.accepted.wait(timeout), "no connection reached the peer"
        return self.conns[-1]

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def echo(c, srv):
    while True:
        d = c.recv(65536)
        if not d:
            return
        srv.received += d
        c.sendall(d)


def sink(c, srv):
    while True:
        d = c.recv(65536)
        if not d:
            return
        srv.received += d


def hold(c, srv):
    """Accept and read nothing: lets a test control the connection itself."""
    while not srv._stop:
        time.sleep(0.05)  # a poll step: the connection stays open until the server closes


class UdpEcho:
    def __init__(self, host, port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.got = []
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while True:
            try:
                d, a = self.sock.recvfrom(65536)
            except OSError:
                return
            self.got.append((d, a))
            self.sock.sendto(d, a)

    def close(self):
        self.sock.close()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def wait_for(pred, timeout=5.0, step=0.02):
    """pred() true within timeout seconds (polled every `step`): its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)  # a poll step of a wait with a deadline
    return pred()


@contextlib.contextmanager
def full_backlog(host="127.0.0.1"):
    """A listening address whose accept queue is full (listen(0) and a connection
    nobody accepts): Linux drops further SYNs, so a connect to it neither
    succeeds nor is refused. Yields (host, port)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam)
    ls.bind((host, 0))
    ls.listen(0)
    fill = []
    try:
        for _ in range(4):
            c = socket.socket(fam)
            c.setblocking(False)
            c.connect_ex(ls.getsockname())
            fill.append(c)
        # The queue is full once a filler's handshake has completed (it turns writable).
        assert wait_for(lambda: select.select([], fill, [], 0)[1]), "the accept queue never filled"
        yield ls.getsockname()[:2]
    finally:
        for c in fill:
            c.close()
        ls.close()


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now (for the board's server to take)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p

