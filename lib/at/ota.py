# Over-the-air updates: a small HTTP/1.1 client that never blocks the loop, and
# the installer. Imported only while an update (or AT+CIPFWVER?) runs; the
# commands are in at/commands/ota.py, the loader that boots what is installed
# here is main.py.
#
# Nothing is ever half-installed: every file goes to fw/.staging/ while it is
# hashed; it is checked against the manifest, read back from flash and checked
# again; the folder becomes fw/<version> in one rename; and the switch is one
# rename of the small pointer fw/state.json. The version that runs now stays as
# the previous one, and a new version that restarts before it marks itself good
# (at/fwstate.py, GOOD_MS) is rolled back by main.py.
import os
import sys
import json
import time
import socket
import hashlib
import binascii
from at import dns, sock
from at.nested import wait_turn as nested_turn
from at.errors import ATError, fail, EXEC_FAIL
from at.errors import (E_OTA_NO_SERVER, E_OTA_CONNECT, E_OTA_HTTP, E_OTA_VERSION, E_OTA_MANIFEST, E_OTA_HASH,
                       E_OTA_TIMEOUT, E_OTA_FLASH, E_OTA_TLS, E_OTA_DOWNGRADE, E_OTA_IMAGE)
from at.fwfiles import FOUND, CONNECTED, GOT_VERSION, DONE, valid_version, rmtree
from at.fwstate import FW, read_state, write_state, running

STAGING = FW + "/.staging"
BUF = 1024  # one read; the only buffer a download needs besides the image's block
HEAD_MAX = 2048  # a response header longer than this is refused
LIST_MAX = 4096  # GET /versions
MANIFEST_MAX = 16384
MFG_MAX = 8192  # a certificate: what AT+SYSMFG takes in one write
YIELD_BYTES = 8192  # give the loop a turn at least this often while data pours in
BLOCK = 4096  # esp32.Partition's block


# ERR CODE extensions (0x010a00xx, with AT+SYSLOG=1)


class Fail(Exception):
    def __init__(self, ext, msg):
        self.ext = ext
        self.msg = msg


def vkey(v):
    """Sort key of a version: numbers compare as numbers ("0.10.0" after "0.9.1"),
    a leading "v" is ignored ("v1.2.0.0")."""
    if v[:1] in ("v", "V"):
        v = v[1:]
    out = []
    for p in v.replace("-", ".").replace("+", ".").replace("_", ".").split("."):
        out.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return out


def _hex(h):
    return binascii.hexlify(h.digest()).decode()


# -- the filesystem ---------------------------------------------------------------------------------------
def _mkdir(p):
    try:
        os.mkdir(p)
    except OSError:
        pass  # exists


def _safe_path(p, first=None):
    """A relative path of plain names (no "..", no absolute path), optionally under `first`."""
    parts = p.split("/")
    if first is not None and parts[0] != first:
        return False
    for n in parts:
        if not n or n[0] == "." or len(n) > 64:
            return False
        for c in n:
            if not (c.isalpha() or c.isdigit() or c in "_-."):
                return False
    return True


def hash_file(path):
    h = hashlib.sha256()
    buf = bytearray(BUF)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return _hex(h)


# -- the HTTP client ----------------------------------------------------------------------------------------
class Http:
    """GET over one kept-alive connection (HTTP/1.1, Content-Length bodies),
    plain or TLS, written as generators that yield what they wait for."""

    def __init__(self, at, host, port, path, tls, timeout_ms):
        self.at = at
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
        ips = yield from dns.lookup(self.at, self.host, 1, self.left())
        self.fam = socket.AF_INET6 if ":" in ips[0] else socket.AF_INET
        self.addr = socket.getaddrinfo(ips[0], self.port, self.fam)[0][-1]

    def connect(self):
        s = socket.socket(self.fam, socket.SOCK_STREAM)
        self.s = s
        s.setblocking(False)
        sock.start_connect(s, self.addr)
        try:
            yield from sock.connected(self.at, s, self.left())
        except OSError as e:
            if sock.errno_of(e) == sock.ETIMEDOUT:
                self.left()
            raise
        if self.tls:
            yield from nested_turn(self.at)
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
        if not self.at.board.clock_set():
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
            return nested.run(self.at.loop, lambda: ctx.wrap_socket(s, server_hostname=self.host),
                              self.left(), abort, self.at.log)
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
                ev = yield self.at.writable(self.s, self.left())
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
            yield self.at.readable(self.s, self.left())

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
                yield 0  # at.sleep(0): the UART and the links get the loop
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
        if sha is not None and _hex(h) != sha:
            raise Fail(E_OTA_HASH, "%s: SHA-256 mismatch" % path)

    def fetch_image(self, path, img):
        yield from self._get(path, img.size)
        yield from self.body(img.size, img.write)


# -- a MicroPython image (ESP32) ------------------------------------------------------------------------
def running_image(board):
    """The label of the running app partition, or None where the port has none
    (the port owns esp32.Partition: lib/at/ports/esp32.py)."""
    f = getattr(board, "image_running", None)
    return f() if f else None


class Image:
    """The firmware image into the next OTA app partition (the port's
    board.image_next(): esp32.Partition, docs/library/esp32.rst) in 4 KB blocks;
    writeblocks(n, buf) erases and writes. Its SHA-256 is checked on what the
    flash holds before set_boot()."""

    def __init__(self, e, board):
        self.running = board.image_running()
        try:
            self.part = board.image_next()
        except OSError:
            raise Fail(E_OTA_IMAGE, "this board has no OTA app partition (flash an OTA build first)")
        info = self.part.info()
        self.label = info[4]
        self.size = e["size"]
        self.sha = e["sha256"]
        if self.size > info[3]:
            raise Fail(E_OTA_IMAGE, "image of %d bytes does not fit %s (%d)" % (self.size, self.label, info[3]))
        self.buf = bytearray(BLOCK)
        self.n = 0
        self.blk = 0

    def write(self, mv):
        while mv:
            k = min(BLOCK - self.n, len(mv))
            self.buf[self.n:self.n + k] = mv[:k]
            self.n += k
            mv = mv[k:]
            if self.n == BLOCK:
                self._flush()

    def _flush(self):
        if self.n < BLOCK:
            self.buf[self.n:] = b"\xff" * (BLOCK - self.n)  # erased flash
        try:
            self.part.writeblocks(self.blk, self.buf)
        except OSError as e:
            raise Fail(E_OTA_IMAGE, "writing %s block %d: %r" % (self.label, self.blk, e))
        self.blk += 1
        self.n = 0

    def finish(self):
        """Generator: write the last block, then hash what the partition holds."""
        if self.n:
            self._flush()
        h = hashlib.sha256()
        left = self.size
        for b in range(self.blk):
            self.part.readblocks(b, self.buf)
            k = min(BLOCK, left)
            h.update(memoryview(self.buf)[:k])
            left -= k
            if b & 15 == 15:
                yield 0
        if _hex(h) != self.sha:
            raise Fail(E_OTA_HASH, "the image in %s does not match its SHA-256" % self.label)

    def boot(self):
        try:
            self.part.set_boot()  # ESP-IDF checks the image too
        except OSError as e:
            raise Fail(E_OTA_IMAGE, "%s refused as boot partition: %r" % (self.label, e))


# -- the update ------------------------------------------------------------------------------------------
def _client(at, mode, timeout_ms):
    host, port, path, sport = at.cfg.get("ota_server")
    if not host:
        raise Fail(E_OTA_NO_SERVER, "no update server: set one with AT+CIUPDATESRV")
    if mode == 1:
        if not sport:
            raise Fail(E_OTA_NO_SERVER, "no HTTPS port: AT+CIUPDATESRV=<host>,<port>,<path>,<ssl port>")
        port = sport
    return Http(at, host, port, path, mode == 1, timeout_ms)


def _report(at, state):
    at.ota_state = state
    at.reply("+CIPUPDATE:%d" % state)


def _guard(at, c, gen):
    """Run gen; every failure becomes ERROR (an ATError), with the reason on the log."""
    try:
        return (yield from gen)
    except ATError:
        raise
    except Fail as e:
        at.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)
    except OSError as e:
        at.log.write("ota: network error %r talking to %s:%d\n" % (e, c.host, c.port) if c else
                     "ota: %r\n" % (e,))
        raise fail(EXEC_FAIL, E_OTA_CONNECT, errno=sock.errno_of(e))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        at.log.write("ota: bad answer from the server: %r\n" % (e,))
        raise fail(EXEC_FAIL, E_OTA_MANIFEST)
    finally:
        if c is not None:
            c.close()


def _list(c):
    raw = yield from c.fetch(c.base + "/versions", LIST_MAX)
    vs = []
    for v in raw.decode().split("\n"):
        v = v.strip()
        if valid_version(v) and v not in vs:
            vs.append(v)
    vs.sort(key=vkey)
    return vs


def versions(at, timeout_ms):
    """Generator: the versions on the server, oldest first (AT+CIPFWVER?). Over
    HTTPS when AT+CIUPDATESRV has an <ssl port>, else over HTTP; all of it within
    timeout_ms."""
    c = None
    try:
        c = _client(at, 1 if at.cfg.get("ota_server")[3] else 0, timeout_ms)
    except Fail as e:
        at.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)

    def go():
        yield from c.resolve()
        yield from c.connect()
        return (yield from _list(c))

    return (yield from _guard(at, c, go()))


def update(at, mode, version, name, timeout_ms):
    """Generator: AT+CIUPDATE, all of it within timeout_ms. Writes +CIPUPDATE:1..4
    as it goes; raises ATError on failure (the reason on the log port), leaving
    the firmware as it was."""
    import gc
    gc.collect()
    c = None
    try:
        c = _client(at, mode, timeout_ms)
    except Fail as e:
        at.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)
    ok = False
    try:
        yield from _guard(at, c, _update(at, c, version, name))
        ok = True
    finally:
        if not ok:
            try:
                rmtree(STAGING)
            except OSError:
                pass


def _update(at, c, version, name):
    from at.version import VERSION as mine
    yield from c.resolve()
    _report(at, FOUND)
    yield from c.connect()
    _report(at, CONNECTED)
    if version is None:
        vs = yield from _list(c)
        if not vs:
            raise Fail(E_OTA_VERSION, "the server has no version")
        version = vs[-1]
        if vkey(version) < vkey(mine):
            raise Fail(E_OTA_DOWNGRADE, "the newest version on the server (%s) is older than this one (%s); "
                                    "name it to downgrade" % (version, mine))
    _stage()
    m = yield from _manifest(c, version)
    _report(at, GOT_VERSION)
    if name == "ota":
        if vkey(version) < vkey(mine):
            at.log.write("ota: downgrading from %s to %s, which the spec does not recommend\n" % (mine, version))
        at.log.write("ota: installing version %s (%d files) from %s:%d\n" % (version, len(m["files"]), c.host,
                                                                          c.port))
        yield from _install(at, c, version, m)
    else:
        yield from _install_mfg(at, c, version, m, name)
    _report(at, DONE)


def _stage():
    """An empty fw/.staging/ (what an interrupted update left goes)."""
    rmtree(STAGING)
    _mkdir(FW)
    _mkdir(STAGING)


def _manifest(c, version):
    """Generator: the version's manifest, kept as fw/.staging/manifest.json
    (parsed from the file: no buffer of its size in RAM)."""
    path = STAGING + "/manifest.json"
    yield from c.fetch_file("%s/%s/manifest.json" % (c.base, version), path, None, None, MANIFEST_MAX)
    with open(path) as f:
        m = json.load(f)
    if m.get("version") != version:
        raise Fail(E_OTA_MANIFEST, "the manifest of %s says version %r" % (version, m.get("version")))
    paths = []
    for e in m["files"]:
        if not _safe_path(e["path"], "at") or not isinstance(e["size"], int) or len(e["sha256"]) != 64:
            raise Fail(E_OTA_MANIFEST, "bad manifest entry %r" % (e,))
        paths.append(e["path"])
    for need in ("at/app.mpy", "at/version.mpy"):
        if need not in paths:
            raise Fail(E_OTA_MANIFEST, "version %s has no %s" % (version, need))
    return m


def _check_mpy(m, has_image):
    want = m.get("mpy")
    mine = getattr(sys.implementation, "_mpy", None)
    if want is not None and mine is not None and not has_image and want != mine & 0xFF:
        raise Fail(E_OTA_MANIFEST, ".mpy version %d, this MicroPython loads version %d" % (want, mine & 0xFF))


def _install(at, c, version, m):
    base = "%s/%s/" % (c.base, version)
    img = None
    if m.get("image"):
        e = m["image"]
        if running_image(at.board) is None:
            at.log.write("ota: this port cannot flash a MicroPython image; installing the modules only\n")
        elif not _safe_path(e["path"]):
            raise Fail(E_OTA_MANIFEST, "bad image entry %r" % (e,))
        else:
            img = Image(e, at.board)
    _check_mpy(m, img is not None)
    made = {STAGING}
    for e in m["files"]:
        p = STAGING
        for n in e["path"].split("/")[:-1]:
            p += "/" + n
            if p not in made:
                _mkdir(p)
                made.add(p)
        yield from c.fetch_file(base + e["path"], STAGING + "/" + e["path"], e["size"], e["sha256"])
    if img is not None:
        at.log.write("ota: writing %d-byte image to %s\n" % (img.size, img.label))
        yield from c.fetch_image(base + m["image"]["path"], img)
        yield from img.finish()
    c.close()
    # What the flash holds is what will run: read every file back and check it again.
    for e in m["files"]:
        if hash_file(STAGING + "/" + e["path"]) != e["sha256"]:
            raise Fail(E_OTA_FLASH, "%s reads back wrong from flash" % e["path"])
    yield 0
    _switch(at, version, img)


def _switch(at, version, img):
    st = read_state() or {}
    me = running()
    keep = (me, st.get("current"), st.get("previous"))
    d = version
    k = 0
    while d in keep:  # never touch what runs or what a pointer names
        k += 1
        d = "%s~%d" % (version, k)
    rmtree(FW + "/" + d)
    os.rename(STAGING, FW + "/" + d)
    here = running_image(at.board)
    new = {"current": d, "previous": me, "trial": True, "tries": 0,
           "image": img.label if img else here, "prev_image": here}
    write_state(new)  # THE switch: one rename
    at.log.write("ota: version %s installed in fw/%s; it runs after the next restart (previous: %s)\n"
                 % (version, d, "fw/" + me if me else "factory"))
    if img is not None:
        try:
            img.boot()
        except Fail:
            write_state(st if st else {"current": None})  # back to what ran
            rmtree(FW + "/" + d)
            raise
    for n in os.listdir(FW):  # an older previous: no pointer names it any more
        if n not in (d, me, "state.json"):
            rmtree(FW + "/" + n)


def _install_mfg(at, c, version, m, ns):
    """A certificate namespace (firmware name "client_ca", ...): every key the
    version has for it is downloaded and checked, then written to the mfg store
    (at/mfg.py), each key in one rename. Other keys of the namespace stay."""
    from at import mfg
    keys = [e for e in m.get("mfg", ()) if e.get("ns") == ns]
    if not keys:
        raise Fail(E_OTA_VERSION, "version %s has nothing for %s" % (version, ns))
    for e in keys:
        if not _safe_path(e["key"]) or not 0 < e["size"] <= MFG_MAX or len(e["sha256"]) != 64:
            raise Fail(E_OTA_MANIFEST, "bad mfg entry %r" % (e,))
    for e in keys:
        yield from c.fetch_file("%s/%s/mfg/%s/%s" % (c.base, version, ns, e["key"]),
                                STAGING + "/" + e["key"], e["size"], e["sha256"])
    c.close()
    for e in keys:
        with open(STAGING + "/" + e["key"], "rb") as f:
            data = f.read()
        if _hex(hashlib.sha256(data)) != e["sha256"]:
            raise Fail(E_OTA_FLASH, "%s reads back wrong from flash" % e["key"])
        mfg.write(ns, e["key"], mfg.BINARY, data)
        at.log.write("ota: %s/%s updated from version %s\n" % (ns, e["key"], version))
    rmtree(STAGING)
