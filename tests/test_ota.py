"""Over-the-air updates (TCP-IP_AT_Commands.rst: AT+CIPFWVER, AT+CIUPDATE; our
AT+CIUPDATESRV) against tools/update_server.py over HTTP and HTTPS, on the
virtual board: +CIPUPDATE:1..4 byte for byte in blocking and non-blocking mode,
a good update (the board restarts into it and AT+GMR says so), a tampered
file, a server that dies mid-download, the 3-minute timeout (shortened through
the documented constant), a board killed at many points of an install (it
boots the old or the new version, never a mix), a new version that crashes at
boot (it rolls back by itself), downgrades, certificate namespaces; and the
ESP32 path (esp32.Partition) on tools/twin/esp32.py under the unix port.

Every test leaves the shared virtual board on its factory firmware: fw/ erased
and a restart."""
import hashlib
import json
import os
import pathlib
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import serial
import trustme

from board import Dut, VirtualBoard, FINAL
from tlspeers import provision

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import update_server as us  # noqa: E402

LIB = ROOT / "lib"
TWIN = ROOT / "tools" / "twin"
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
if not MICROPYTHON.exists():
    MICROPYTHON = shutil.which("micropython")

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
READY = b"\r\nready\r\n"
FACTORY = re.search(r'VERSION = "([^"]+)"', (LIB / "at" / "version.py").read_text()).group(1)
GOOD, BROKEN, OLD, NEWER = "0.2.0", "0.3.0", "0.0.9", "0.10.0"


def states(*ns):
    return b"".join(b"+CIPUPDATE:%d\r\n" % n for n in ns)


def err(ext):
    return b"ERR CODE:0x010a00%02x\r\n" % ext + ERROR


# -- the versions, built once ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki():
    ca = trustme.CA()
    return {"ca": ca, "server": ca.issue_cert("localhost", "127.0.0.1"), "other": trustme.CA()}


@pytest.fixture(scope="module")
def built(tmp_path_factory, pki):
    """Every version the tests serve, built by the host tool into one store."""
    store = tmp_path_factory.mktemp("updates")
    mfg = tmp_path_factory.mktemp("mfg")
    (mfg / "client_ca").mkdir()
    (mfg / "client_ca" / "client_ca.0").write_bytes(pki["ca"].cert_pem.bytes())
    broken = tmp_path_factory.mktemp("broken") / "lib"
    shutil.copytree(LIB, broken)
    app = broken / "at" / "app.py"
    app.write_text(app.read_text() + "\nraise RuntimeError('a deliberately broken update')\n")
    manifests = {
        GOOD: us.build(GOOD, store, LIB, mfg=mfg, log=lambda *_: None),
        BROKEN: us.build(BROKEN, store, broken, log=lambda *_: None),
        OLD: us.build(OLD, store, LIB, log=lambda *_: None),
        NEWER: us.build(NEWER, store, LIB, log=lambda *_: None),
    }
    return store, manifests


class Servers:
    """Update servers made by a test (each on a root holding the versions it
    names), closed when the test ends."""

    def __init__(self, store, tmp_path):
        self.store = store
        self.tmp = tmp_path
        self.made = []

    def __call__(self, versions, ctx=None, cls=us.UpdateServer):
        root = self.tmp / ("root%d" % len(self.made))
        root.mkdir()
        for v in versions:
            shutil.copytree(self.store / v, root / v)
        srv = cls(root, "127.0.0.1", 0, ctx).start()
        self.made.append(srv)
        return srv

    def close(self):
        for s in self.made:
            s.close()


def flash_dir(vboard):
    return pathlib.Path(vboard.log).parent / "flash"


class Log:
    """The firmware's log port (the launcher's log file), from a point on."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.pos = self.path.stat().st_size if self.path.exists() else 0

    def text(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            return f.read().decode(errors="replace")

    def wait(self, pattern, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m:
                return m
            assert time.monotonic() < deadline, "log never said %r; it has:\n%s" % (pattern, self.text())
            time.sleep(0.05)  # a poll step of a wait with a deadline


def gmr_version(d):
    r = d.cmd("AT+GMR")
    m = re.search(rb"\r\nBin version:([^(\r\n]+)\(", b"\r\n" + r)
    assert m and r.endswith(OK), r
    return m.group(1).decode()


WIFI_BACK = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n"


def rebooted(d, timeout=20):
    """After a restart: ready, the saved AP joined again (AT+CWJAP saved it), echo off again."""
    d.read_until(READY, timeout)
    assert d.read_until(WIFI_BACK, 10).endswith(WIFI_BACK)
    assert d.quiet(0.1) == b""
    assert d.cmd("ATE0") == b"ATE0\r\n" + OK


def server_cmd(srv, https=False, path=""):
    if https:
        return 'AT+CIUPDATESRV="localhost",1,"%s",%d' % (path, srv.port)
    return 'AT+CIUPDATESRV="127.0.0.1",%d,"%s"' % (srv.port, path)


def read_state(flash):
    try:
        return json.loads((flash / "fw" / "state.json").read_text())
    except FileNotFoundError:
        return None


def check_installed(flash, manifests):
    """What the pointer names is one whole version: its manifest is the server's
    and every file matches it. Returns the version the board must run."""
    st = read_state(flash)
    cur = st and st.get("current")
    if not cur:
        return FACTORY
    d = flash / "fw" / cur
    m = json.loads((d / "manifest.json").read_text())
    assert m == manifests[m["version"]], "fw/%s has a manifest the server never served" % cur
    for e in m["files"]:
        assert hashlib.sha256((d / e["path"]).read_bytes()).hexdigest() == e["sha256"], e["path"]
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*.mpy")) == sorted(e["path"] for e in m["files"])
    return m["version"]


def factory(d, flash):
    """Back to the factory firmware: no pointer, a restart, fw/ erased."""
    for p in (flash / "fw" / "state.json", flash / "user_commands.py"):
        if p.exists():
            p.unlink()
    for _ in range(3):
        d.drain()
        d.write(b"AT+RESTORE\r\n")
        try:
            d.read_until(READY, timeout=15)
            break
        except AssertionError:
            time.sleep(1)  # a pause before the next try
    shutil.rmtree(flash / "fw", ignore_errors=True)
    d.drain()


@pytest.fixture
def ota(joined, clock, vboard, built, tmp_path):
    """(dut, flash dir, servers, manifests, log) with the board on its factory
    firmware, its clock set (HTTPS checks the server's certificate dates)."""
    store, manifests = built
    flash = flash_dir(vboard)
    servers = Servers(store, tmp_path)
    d = joined
    assert gmr_version(d) == FACTORY
    assert read_state(flash) is None
    try:
        yield d, flash, servers, manifests, Log(vboard.log)
    finally:
        servers.close()
        d.cmd('AT+SYSMFG=0,"client_ca","client_ca.0"')
        factory(d, flash)


def https_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


class Gate(us.UpdateServer):
    """Holds the body of one file until the test opens the gate, and says when
    each file has been sent."""
    gate_on = None

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.reached = threading.Event()
        self.open = threading.Event()
        self.sent_files = []
        self.all_sent = threading.Event()
        self.last = None

    def hook(self, rel, phase, handler):
        if phase == "request" and rel == self.gate_on:
            self.reached.set()
            self.open.wait(60)
        elif phase == "sent":
            self.sent_files.append(rel)
            if rel == self.last:
                self.all_sent.set()


# -- AT+CIUPDATESRV ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_ciupdatesrv_set_query_saved(ota):
    d, flash, *_ = ota
    assert d.cmd("AT+CIUPDATESRV?") == b'+CIUPDATESRV:"",80,"",0\r\n' + OK
    d.ok("AT+SYSSTORE=0")  # saved whatever AT+SYSSTORE says
    assert d.cmd('AT+CIUPDATESRV="updates.example",8070') == OK
    assert d.cmd("AT+CIUPDATESRV?") == b'+CIUPDATESRV:"updates.example",8070,"",0\r\n' + OK
    assert d.cmd('AT+CIUPDATESRV="10.0.0.2",80,"/fw/",8443') == OK
    assert d.cmd("AT+CIUPDATESRV?") == b'+CIUPDATESRV:"10.0.0.2",80,"/fw",8443\r\n' + OK
    for bad in ('AT+CIUPDATESRV="",80', 'AT+CIUPDATESRV="h",0', 'AT+CIUPDATESRV="h",65536',
                'AT+CIUPDATESRV="h",80,"fw"', 'AT+CIUPDATESRV="h",80,"/a b"', 'AT+CIUPDATESRV="h"',
                'AT+CIUPDATESRV="h",80,"/",443,1', 'AT+CIUPDATESRV="h/x",80', 'AT+CIUPDATESRV=1,80',
                'AT+CIUPDATESRV="h",80,"/",70000'):
        assert d.cmd(bad) == ERROR, bad
    d.write(b"AT+RST\r\n")
    rebooted(d)
    assert d.cmd("AT+CIUPDATESRV?") == b'+CIUPDATESRV:"10.0.0.2",80,"/fw",8443\r\n' + OK


@pytest.mark.timeout(60)
def test_ciupdate_parameters(ota):
    d, flash, servers, *_ = ota
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:0\r\n" + OK
    # No server configured: ERROR at once, in both modes
    d.ok("AT+SYSLOG=1")
    assert d.cmd("AT+CIUPDATE") == err(0x80)
    assert d.cmd('AT+CIUPDATE=0,"0.2.0","ota",1') == err(0x80)
    srv = servers([GOOD])
    d.ok(server_cmd(srv))
    assert d.cmd("AT+CIUPDATE=1") == err(0x80)  # HTTPS needs <ssl port>
    d.ok("AT+SYSLOG=0")
    for bad in ("AT+CIUPDATE=2", "AT+CIUPDATE=-1", 'AT+CIUPDATE=0,"../x"', 'AT+CIUPDATE=0,"a/b"',
                'AT+CIUPDATE=0,".hidden"', 'AT+CIUPDATE=0,"%s"' % ("1" * 65), 'AT+CIUPDATE=0,,"bogus"',
                'AT+CIUPDATE=0,,"ota",2', 'AT+CIUPDATE=0,,"ota",0,1', 'AT+CIUPDATE="0"', "AT+CIUPDATE=?"):
        assert d.cmd(bad) == ERROR, bad
    assert srv.requests == []  # nothing of that reached the server
    assert read_state(flash) is None


# -- AT+CIPFWVER? ----------------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_cipfwver_lists_the_servers_versions(ota, pki):
    d, flash, servers, *_ = ota
    assert d.cmd("AT+CIPFWVER?") == ERROR  # no server yet
    srv = servers([NEWER, OLD, GOOD])
    d.ok(server_cmd(srv))
    # oldest first, numbers compared as numbers
    assert d.cmd("AT+CIPFWVER?", timeout=20) == b'+CIPFWVER:"0.0.9"\r\n+CIPFWVER:"0.2.0"\r\n+CIPFWVER:"0.10.0"\r\n' + OK
    assert srv.requests == ["versions"]
    # with a path prefix on a server that serves under one
    pre = us.UpdateServer(srv.root, "127.0.0.1", 0, None, prefix="/fw").start()
    servers.made.append(pre)
    d.ok(server_cmd(pre, path="/fw"))
    assert d.cmd("AT+CIPFWVER?", timeout=20).endswith(b'+CIPFWVER:"0.10.0"\r\n' + OK)
    d.ok(server_cmd(pre, path="/elsewhere"))
    assert d.cmd("AT+CIPFWVER?", timeout=20) == ERROR  # 404
    # over HTTPS when AT+CIUPDATESRV has an <ssl port>
    provision(d, "client_ca", "client_ca.0", pki["ca"].cert_pem.bytes())
    tls_srv = servers([GOOD], https_ctx(pki["server"]))
    d.ok(server_cmd(tls_srv, https=True))
    assert d.cmd("AT+CIPFWVER?", timeout=20) == b'+CIPFWVER:"0.2.0"\r\n' + OK
    # a server that is not there
    port = srv.port
    srv.close()
    d.ok('AT+CIUPDATESRV="127.0.0.1",%d' % port)
    assert d.cmd("AT+CIPFWVER?", timeout=20) == ERROR
    assert d.cmd("AT") == OK


# -- good updates ----------------------------------------------------------------------------------------------------
@pytest.mark.timeout(90)
def test_update_http_blocking_latest(ota):
    """AT+CIUPDATE (execute): the newest version over HTTP, in blocking mode;
    the board restarts into it and AT+GMR says so."""
    d, flash, servers, manifests, log = ota
    srv = servers([OLD, GOOD])
    d.ok(server_cmd(srv))
    d.write(b"AT+CIUPDATE\r\n")
    r = d.read_until(FINAL, timeout=60)
    assert r == states(1, 2, 3, 4) + OK, r
    rebooted(d)
    assert gmr_version(d) == GOOD
    assert check_installed(flash, manifests) == GOOD
    st = read_state(flash)
    assert st["current"] == GOOD and st["previous"] is None and st["trial"] is True
    log.wait(r"boot: fw/0\.2\.0 on trial")
    log.wait(r"ota: version 0\.2\.0 \(fw/0\.2\.0\) started fine; marked good")
    assert read_state(flash)["trial"] is False
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:0\r\n" + OK  # a new boot
    assert not (flash / "fw" / ".staging").exists()
    assert srv.requests[:2] == ["versions", GOOD + "/manifest.json"]
    assert sorted(srv.requests[2:]) == sorted(GOOD + "/" + e["path"] for e in manifests[GOOD]["files"])
    # settings survive an update
    assert d.cmd("AT+CIUPDATESRV?").startswith(b'+CIUPDATESRV:"127.0.0.1",%d' % srv.port)


@pytest.mark.timeout(90)
def test_update_https_nonblocking(ota, pki):
    """Mode 1 (HTTPS, the server checked against client_ca.0), non-blocking:
    OK first, +CIPUPDATE:1..4 as it goes, AT commands answered meanwhile; the
    host restarts the board."""
    d, flash, servers, manifests, log = ota
    provision(d, "client_ca", "client_ca.0", pki["ca"].cert_pem.bytes())
    srv = servers([GOOD], https_ctx(pki["server"]), cls=Gate)
    files = manifests[GOOD]["files"]
    srv.gate_on = GOOD + "/" + files[len(files) // 2]["path"]
    d.ok(server_cmd(srv, https=True))
    d.write(b'AT+CIUPDATE=1,"0.2.0","ota",1\r\n')
    assert d.read_until(OK, timeout=10) == OK
    assert srv.reached.wait(30)
    assert d.read_until(states(3), timeout=5) == states(1, 2, 3)
    # the update waits on the server: the board answers commands meanwhile
    assert d.cmd("AT") == OK
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:3\r\n" + OK
    assert d.cmd('AT+CIUPDATE=0,"0.2.0"') == ERROR  # one update at a time
    srv.open.set()
    assert d.read_until(states(4), timeout=30) == states(4)
    assert d.quiet(0.3) == b""  # no restart in non-blocking mode
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:4\r\n" + OK
    assert gmr_version(d) == FACTORY  # still running the old one
    assert check_installed(flash, manifests) == GOOD
    d.write(b"AT+RST\r\n")
    assert d.read_until(FINAL) == OK
    rebooted(d)
    assert gmr_version(d) == GOOD
    log.wait(r"marked good")
    # one connection, one handshake, for the whole update (kept alive)
    assert srv.accepted == 1


@pytest.mark.timeout(60)
def test_https_refuses_an_untrusted_server(ota, pki):
    d, flash, servers, manifests, log = ota
    srv = servers([GOOD], https_ctx(pki["server"]))
    d.ok(server_cmd(srv, https=True))
    d.ok("AT+SYSLOG=1")
    # no CA provisioned: refused, nothing downloaded
    assert d.cmd('AT+CIUPDATE=1,"0.2.0"', timeout=20) == states(1) + err(0x88)
    log.wait(r"client_ca\.0")
    # a CA that did not sign the server's certificate
    provision(d, "client_ca", "client_ca.0", pki["other"].cert_pem.bytes())
    assert d.cmd('AT+CIUPDATE=1,"0.2.0"', timeout=20) == states(1) + err(0x88)
    d.write(b'AT+CIUPDATE=1,"0.2.0",,1\r\n')
    assert d.read_until(b"+CIPUPDATE:-1\r\n", timeout=20) == OK + states(1, -1)
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:-1\r\n" + OK
    assert srv.requests == []
    assert read_state(flash) is None
    assert gmr_version(d) == FACTORY


# -- failures leave the old version running ---------------------------------------------------------------
def nothing_switched(d, flash):
    assert read_state(flash) is None
    assert not (flash / "fw" / ".staging").exists()
    assert [p.name for p in (flash / "fw").iterdir()] == [] if (flash / "fw").exists() else True
    assert gmr_version(d) == FACTORY


@pytest.mark.timeout(90)
def test_corrupt_file_is_refused(ota):
    d, flash, servers, manifests, log = ota
    srv = servers([GOOD])
    victim = GOOD + "/at/parse.mpy"
    srv.corrupt.add(victim)
    d.ok(server_cmd(srv))
    d.ok("AT+SYSLOG=1")
    assert d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60) == states(1, 2, 3) + err(0x85)
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:-1\r\n" + OK
    log.wait(r"at/parse\.mpy: SHA-256 mismatch")
    assert d.quiet(1.0) == b""  # no restart
    nothing_switched(d, flash)
    # non-blocking: OK, the states reached, then -1
    d.write(b'AT+CIUPDATE=0,"0.2.0",,1\r\n')
    assert d.read_until(b"+CIPUPDATE:-1\r\n", timeout=60) == OK + states(1, 2, 3, -1)
    nothing_switched(d, flash)
    # once the server serves the right file, the same update goes through
    srv.corrupt.clear()
    assert d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60) == states(1, 2, 3, 4) + OK
    rebooted(d)
    assert gmr_version(d) == GOOD
    assert check_installed(flash, manifests) == GOOD


@pytest.mark.timeout(90)
def test_server_dies_mid_download(ota):
    d, flash, servers, manifests, log = ota
    srv = servers([GOOD])
    srv.die_after = 20000  # body bytes, manifest included: a third of the way in
    d.ok(server_cmd(srv))
    d.ok("AT+SYSLOG=1")
    r = d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60)
    assert r == states(1, 2, 3) + err(0x81), r
    assert srv.dead.is_set() and srv.closed.wait(5)
    log.wait(r"the server closed the connection after \d+ of \d+ bytes")
    assert d.cmd("AT+CIUPDATE?") == b"+CIPUPDATE:-1\r\n" + OK
    nothing_switched(d, flash)
    # and again with the server gone altogether: -1 after +CIPUPDATE:1
    d.write(b'AT+CIUPDATE=0,"0.2.0",,1\r\n')
    assert d.read_until(b"+CIPUPDATE:-1\r\n", timeout=30) == OK + states(1, -1)
    nothing_switched(d, flash)


@pytest.mark.timeout(10)
def test_timeout_default_is_three_minutes():
    src = (LIB / "at" / "commands" / "ota.py").read_text()
    assert re.search(r"(?m)^TIMEOUT_MS = 3 \* 60 \* 1000$", src)


@pytest.mark.timeout(120)
def test_timeout_ends_a_stalled_update(ota):
    """A server that stops sending: the update ends at the timeout (shortened to
    4 s through the documented constant, from a user_commands.py)."""
    d, flash, servers, manifests, log = ota
    (flash / "user_commands.py").write_text(
        "from at.commands import ota\nota.TIMEOUT_MS = 4000\nCOMMANDS = []\n")
    d.write(b"AT+RST\r\n")
    rebooted(d)
    srv = servers([GOOD])
    srv.stall.add(GOOD + "/" + manifests[GOOD]["files"][5]["path"])
    d.ok(server_cmd(srv))
    d.ok("AT+SYSLOG=1")
    t = time.monotonic()
    d.write(b'AT+CIUPDATE=0,"0.2.0"\r\n')
    assert d.read_until(states(3), timeout=10) == states(1, 2, 3)
    assert srv.stalled.wait(10)
    d.write(b"AT\r\n")  # blocking mode: busy while it waits
    assert d.read_until(b"busy p...\r\n") == b"ERR CODE:0x010b0000\r\n\r\nbusy p...\r\n"
    r = d.read_until(FINAL, timeout=20)
    took = time.monotonic() - t
    assert r == err(0x86), r
    assert 3.5 <= took <= 8, took
    log.wait(r"OTA timeout \(4 s\)")
    nothing_switched(d, flash)
    # non-blocking: the same, as +CIPUPDATE:-1; the board answers meanwhile
    srv.stalled.clear()
    t = time.monotonic()
    d.write(b'AT+CIUPDATE=0,"0.2.0",,1\r\n')
    assert d.read_until(states(3), timeout=10) == OK + states(1, 2, 3)
    assert srv.stalled.wait(10)
    assert d.cmd("AT") == OK
    assert d.read_until(b"+CIPUPDATE:-1\r\n", timeout=20) == states(-1)
    assert 3.5 <= time.monotonic() - t <= 8
    nothing_switched(d, flash)


# -- rollback, downgrade, certificates -------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_broken_version_rolls_back_by_itself(ota):
    """0.2.0 installed and good; then 0.3.0, whose at/app.py raises at import:
    the board restarts into it, it fails, and the next boot is 0.2.0 again."""
    d, flash, servers, manifests, log = ota
    srv = servers([GOOD, BROKEN])
    d.ok(server_cmd(srv))
    assert d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60) == states(1, 2, 3, 4) + OK
    rebooted(d)
    log.wait(r"marked good")
    assert gmr_version(d) == GOOD
    assert d.cmd('AT+CIUPDATE=0,"0.3.0"', timeout=60) == states(1, 2, 3, 4) + OK
    rebooted(d, timeout=30)  # the broken boot never says ready; the rolled-back one does
    assert gmr_version(d) == GOOD
    log.wait(r"boot: fw/0\.3\.0 on trial")
    log.wait(r"fw/0\.3\.0 failed to start:[\s\S]*a deliberately broken update")
    log.wait(r"boot: fw/0\.3\.0 did not start; rolling back to fw/0\.2\.0")
    st = read_state(flash)
    assert st["current"] == GOOD and st["trial"] is False
    assert check_installed(flash, manifests) == GOOD
    # it stays rolled back across restarts
    d.write(b"AT+RST\r\n")
    rebooted(d)
    assert gmr_version(d) == GOOD


@pytest.mark.timeout(90)
def test_downgrade_only_when_asked(ota):
    """The spec does not recommend downgrades: AT+CIUPDATE never picks an older
    version by itself (ERROR); named explicitly, it installs it and says so on the log."""
    d, flash, servers, manifests, log = ota
    srv = servers([OLD])
    d.ok(server_cmd(srv))
    d.ok("AT+SYSLOG=1")
    assert d.cmd("AT+CIUPDATE", timeout=30) == states(1, 2) + err(0x89)
    assert d.cmd("AT+CIUPDATE=0", timeout=30) == states(1, 2) + err(0x89)
    log.wait(r"older than this one")
    assert d.cmd('AT+CIUPDATE=0,"9.9.9"', timeout=30) == states(1, 2) + err(0x83)  # not on the server
    nothing_switched(d, flash)
    assert d.cmd('AT+CIUPDATE=0,"0.0.9"', timeout=60) == states(1, 2, 3, 4) + OK
    rebooted(d)
    assert gmr_version(d) == OLD
    log.wait(r"downgrading from %s to 0\.0\.9" % re.escape(FACTORY))


@pytest.mark.timeout(60)
def test_certificate_namespace_update(ota, pki):
    """Firmware name "client_ca": the version's client_ca keys go to the mfg
    store (AT+SYSMFG reads them back); no restart."""
    d, flash, servers, manifests, log = ota
    srv = servers([GOOD])
    d.ok(server_cmd(srv))
    assert d.cmd('AT+CIUPDATE=0,"0.2.0","client_ca"', timeout=30) == states(1, 2, 3, 4) + OK
    assert d.quiet(0.5) == b""
    want = pki["ca"].cert_pem.bytes()
    d.write(b'AT+SYSMFG=1,"client_ca","client_ca.0"\r\n')
    hdr = b'+SYSMFG:"client_ca","client_ca.0",8,%d,' % len(want)
    assert d.read_until(hdr) == hdr
    assert d.read_exactly(len(want)) == want
    assert d.read_until(OK) == b"\r\n" + OK
    assert read_state(flash) is None and gmr_version(d) == FACTORY
    # a namespace the version has nothing for
    assert d.cmd('AT+CIUPDATE=0,"0.2.0","server_ca"', timeout=30) == states(1, 2, 3) + ERROR
    assert d.cmd('AT+CIUPDATE=0,"0.0.9","client_ca"', timeout=30) == states(1, 2) + ERROR  # not on this server


@pytest.mark.timeout(60)
def test_leftovers_and_a_corrupt_pointer(ota):
    """The loader boots the factory firmware when fw/state.json is corrupt or
    names a missing or incomplete folder, and says so; an interrupted download
    (fw/.staging) is never booted and is cleared by the next update."""
    d, flash, servers, manifests, log = ota
    fw = flash / "fw"
    fw.mkdir(exist_ok=True)
    shutil.copytree(built_dir(servers, GOOD), fw / ".staging")
    (fw / "state.json").write_text('{"current": "0.2.0", "prev')  # a torn write (cannot happen: rename)
    d.write(b"AT+RST\r\n")
    rebooted(d)
    assert gmr_version(d) == FACTORY
    log.wait(r"fw/state\.json is corrupt")
    (fw / "state.json").write_text(json.dumps({"current": "0.2.0", "previous": None, "trial": False, "tries": 0}))
    d.write(b"AT+RST\r\n")
    rebooted(d)
    assert gmr_version(d) == FACTORY
    log.wait(r"fw/0\.2\.0 is missing or incomplete")
    shutil.copytree(built_dir(servers, GOOD), fw / "0.2.0")
    victim = fw / "0.2.0" / manifests[GOOD]["files"][3]["path"]
    victim.write_bytes(victim.read_bytes()[:-1])
    d.write(b"AT+RST\r\n")
    rebooted(d)
    assert gmr_version(d) == FACTORY
    (fw / "state.json").unlink()
    shutil.rmtree(fw / "0.2.0")
    srv = servers([GOOD])
    d.ok(server_cmd(srv))
    assert d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60) == states(1, 2, 3, 4) + OK
    rebooted(d)
    assert gmr_version(d) == GOOD
    assert not (fw / ".staging").exists()


def built_dir(servers, v):
    return servers.store / v


# -- power cuts: a board killed at any point of an install -------------------------------------------------------
class PrivateBoard:
    """A virtual board of our own (killing the MicroPython process of the shared
    one would end its launcher), on a flash folder that outlives it."""

    def __init__(self, base):
        self.flash = base / "flash"
        self.logpath = base / "log.txt"
        self.vb = None
        self.ser = None
        self.d = None
        self.cuts = []  # what the flash held at each cut: (fw/ listing, pointer)
        self.boot()

    def boot(self):
        self.vb = VirtualBoard(self.flash, self.logpath)
        self.ser = serial.serial_for_url(self.vb.path, 115200, timeout=0.1)
        self.d = Dut(self.ser)
        self.d.read_until(READY, timeout=20)
        self.d.quiet(0.3)  # WIFI CONNECTED / GOT IP of a saved AP
        self.d.ok("ATE0")
        self.d.ok('AT+CWJAP="vboard","vboardpass"', timeout=30)

    def child(self):
        """The MicroPython process: `pgrep -f main.py` among the launcher's children
        (between a reset's exit and the restart there may be none for a moment)."""
        deadline = time.monotonic() + 3
        while True:
            r = subprocess.run(["pgrep", "-P", str(self.vb.proc.pid), "-f", "main.py"], capture_output=True,
                               text=True)
            pids = [int(x) for x in r.stdout.split()]
            if len(pids) == 1:
                return pids[0]
            assert time.monotonic() < deadline, "no firmware process under the launcher: %r" % r
            time.sleep(0.01)  # a poll step of a wait with a deadline

    def power_cut(self):
        """SIGKILL the firmware, then power it up again on the same flash."""
        while True:
            try:
                os.kill(self.child(), signal.SIGKILL)
                break
            except ProcessLookupError:
                pass  # it was just ending (a reset): the next one gets it
        fw = self.flash / "fw"
        st = read_state(self.flash)
        self.cuts.append((sorted(p.name for p in fw.iterdir()) if fw.exists() else [],
                          st and (st["current"], st["trial"], st["tries"])))
        try:
            self.vb.proc.wait(3)  # the launcher ends when its child dies of a signal
        except subprocess.TimeoutExpired:
            # a launcher that restarts a killed child itself: use that boot
            rebooted(self.d)
            return
        self.ser.close()
        self.boot()

    def close(self):
        if self.ser:
            self.ser.close()
        if self.vb:
            self.vb.close()


def boots_whole_version(pb, manifests, pos):
    """After a power cut: the board runs exactly what the pointer names, and that is one whole version."""
    want = check_installed(pb.flash, manifests)
    assert gmr_version(pb.d) == want
    log = pb.logpath.read_text()[pos:]
    boots = re.findall(r"boot: (fw/\S+ \(version [^)]+\)|.*factory firmware.*)", log)
    # the last boot's decision (an earlier boot may have been cut short in turn)
    if want == FACTORY:
        assert not boots or "(version" not in boots[-1], boots
    else:
        assert boots and boots[-1].endswith("(version %s)" % want), boots
    return want


@pytest.mark.timeout(300)
def test_power_cut_at_any_point_of_an_install(vboard, built, tmp_path):
    """Updates cut short by SIGKILL of the MicroPython process at many points
    (holding the download at a file, then at delays after its last byte, after
    +CIPUPDATE:4, on the first boot of the new version); each time the board
    comes up on one whole version: the old one or the new one. `vboard` only
    makes this skip on a real board; it runs boards of its own."""
    store, manifests = built
    servers = Servers(store, tmp_path)
    pb = PrivateBoard(tmp_path / "board")
    files = manifests[GOOD]["files"]
    seen = []
    try:
        def attempt(srv_setup, when):
            """One update cut short; returns what the board runs afterwards."""
            srv = servers([GOOD], cls=Gate)
            srv.last = GOOD + "/" + files[-1]["path"]
            srv_setup(srv)
            pb.d.ok(server_cmd(srv))
            pos = pb.logpath.stat().st_size
            pb.d.write(b'AT+CIUPDATE=0,"0.2.0"\r\n')
            when(srv)
            pb.power_cut()
            srv.open.set()
            v = boots_whole_version(pb, manifests, pos)
            seen.append(v)
            srv.close()
            return v

        def restore():
            st = pb.flash / "fw" / "state.json"
            if st.exists():
                st.unlink()
            pb.d.write(b"AT+RST\r\n")
            rebooted(pb.d)
            shutil.rmtree(pb.flash / "fw", ignore_errors=True)

        # 1. while downloading: held before the first, a middle and the last file
        for k in (0, len(files) // 2, len(files) - 1):
            def gate(srv, k=k):
                srv.gate_on = GOOD + "/" + files[k]["path"]

            def wait(srv):
                assert srv.reached.wait(30)
                time.sleep(0.05)  # the cut comes while the board waits on the held file
            assert attempt(gate, wait) == FACTORY
            assert (pb.flash / "fw" / ".staging").exists()  # it left its download behind ...
            restore()
        # 2. between the last byte and the restart (check, rename, pointer): many instants
        rnd = random.Random(7)
        for delay in [0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12] + [rnd.uniform(0, 0.15) for _ in range(3)]:
            def sent(srv, delay=delay):
                assert srv.all_sent.wait(30)
                time.sleep(delay)  # the instant of the cut is what varies
            attempt(lambda srv: None, sent)
            restore()
        # 3. after +CIPUPDATE:4 and OK, before the restart completes
        srv = servers([GOOD])
        pb.d.ok(server_cmd(srv))
        pb.d.write(b'AT+CIUPDATE=0,"0.2.0",,1\r\n')
        pb.d.read_until(states(4), timeout=60)
        pos = pb.logpath.stat().st_size
        pb.power_cut()
        seen.append(boots_whole_version(pb, manifests, pos))
        assert seen[-1] == GOOD
        # 4. on trial, before it marked itself good: the next boot rolls back
        assert read_state(pb.flash)["trial"] is True
        pos = pb.logpath.stat().st_size
        pb.power_cut()
        seen.append(boots_whole_version(pb, manifests, pos))
        assert seen[-1] == FACTORY
        assert "fw/0.2.0 did not start; rolling back to the factory firmware" in pb.logpath.read_text()[pos:]
        # the next update clears what the cuts left
        assert pb.d.cmd('AT+CIUPDATE=0,"0.2.0"', timeout=60) == states(1, 2, 3, 4) + OK
        rebooted(pb.d)
        assert gmr_version(pb.d) == GOOD
        assert sorted(p.name for p in (pb.flash / "fw").iterdir()) == ["0.2.0", "state.json"]
    finally:
        servers.close()
        pb.close()
        print("power cuts: flash at the cut, then what booted:")
        for c, v in zip(pb.cuts, seen + ["?"] * len(pb.cuts)):
            print("  %-45r -> %s" % (c, v))
    assert FACTORY in seen  # the cuts landed on both sides of the switch
    assert GOOD in seen, seen


# -- the ESP32 path: esp32.Partition (tools/twin/esp32.py) under the unix port ------------------------------------
PRELUDE = """\
import sys, os, json, hashlib, binascii
sys.path[:0] = [%r, %r]
import esp32

def sha(b):
    return binascii.hexlify(hashlib.sha256(b).digest()).decode()

def loader():
    g = {"__name__": "loader"}
    exec(open(%r).read(), g)
    return g

class Log:
    def write(self, s):
        sys.stdout.write(s)

# The ESP32 port's image methods (lib/at/ports/esp32.py) on the twin's esp32 module,
# imported when first used (a test may put an installed version first on sys.path).
class _B:
    def _port(self):
        from at.ports.esp32 import Board
        return Board
    def image_running(self):
        return self._port().image_running(self)
    def image_next(self):
        return self._port().image_next(self)
    def image_mark_valid(self):
        return self._port().image_mark_valid(self)
BOARD = _B()
""" % (str(TWIN), str(LIB), str(ROOT / "main.py"))


def run_mp(cwd, body, expect_exit=0):
    script = cwd / ("case%d.py" % len(list(cwd.glob("case*.py"))))
    script.write_text(PRELUDE + textwrap.dedent(body) + '\nprint("PASS")\n')
    r = subprocess.run([str(MICROPYTHON), str(script)], cwd=str(cwd), capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if expect_exit:
        assert r.returncode == expect_exit, out
    else:
        assert r.returncode == 0 and r.stdout.decode().rstrip().endswith("PASS"), out
    return out


IMAGE_EXPR = 'bytes([0xE9]) + bytes(range(256)) * 150 + b"tail"'
IMAGE = eval(IMAGE_EXPR)


@pytest.mark.timeout(60)
def test_esp32_image_to_next_partition(tmp_path):
    run_mp(tmp_path, """
        from at import ota, errors
        img_data = %s
        e = {"path": "micropython.bin", "size": len(img_data), "sha256": sha(img_data)}
        img = ota.Image(e, BOARD)
        assert (img.running, img.label) == ("factory", "ota_0"), (img.running, img.label)
        i = 0
        while i < len(img_data):  # uneven chunks, as a socket gives them
            n = 1 + (i * 7919) %% 3000
            img.write(memoryview(img_data)[i:i + n])
            i += n
        for _ in img.finish():
            pass
        got = esp32.flash("ota_0")
        assert got[:len(img_data)] == img_data
        assert got[len(img_data):] == b"\\xff" * (len(got) - len(img_data))
        assert esp32.otadata()["boot"] is None
        img.boot()
        d = esp32.otadata()
        assert d["boot"] == "ota_0" and d["states"]["ota_0"] == "new", d

        # a tampered image never becomes bootable
        bad = bytearray(img_data); bad[5000] ^= 1
        img = ota.Image(e, BOARD)
        img.write(memoryview(bad))
        try:
            for _ in img.finish():
                pass
            raise AssertionError("accepted")
        except ota.Fail as f:
            assert f.ext == errors.E_OTA_HASH, f.msg
        # an image bigger than the slot
        try:
            ota.Image({"path": "x", "size": 65 * 1024, "sha256": "0" * 64}, BOARD)
            raise AssertionError("accepted")
        except ota.Fail as f:
            assert f.ext == errors.E_OTA_IMAGE
        # set_boot refuses what is not an app image
        img = ota.Image({"path": "x", "size": 4, "sha256": sha(b"nope")}, BOARD)
        img.write(b"nope")
        for _ in img.finish():
            pass
        try:
            img.boot()
            raise AssertionError("accepted")
        except ota.Fail as f:
            assert f.ext == errors.E_OTA_IMAGE
    """ % IMAGE_EXPR)
    # no OTA slots (a factory-only partition table)
    other = tmp_path / "noota"
    other.mkdir()
    (other / "esp32_table.json").write_text(json.dumps([["factory", 0, 0, 0x10000, 65536]]))
    run_mp(other, """
        from at import ota, errors
        try:
            ota.Image({"path": "x", "size": 10, "sha256": "0" * 64}, BOARD)
            raise AssertionError("accepted")
        except ota.Fail as f:
            assert f.ext == errors.E_OTA_IMAGE and "OTA" in f.msg
    """)


def fake_install(flash, image=IMAGE):
    """fw/0.2.0 with the `at` package as source (what the loader and
    at.fwstate's running() look at), and the image in ota_0, as an update
    leaves them right after the pointer switch and before set_boot()."""
    fw = flash / "fw"
    (fw / "0.2.0").mkdir(parents=True)
    shutil.copytree(LIB / "at", fw / "0.2.0" / "at")
    files = [{"path": p.relative_to(fw / "0.2.0").as_posix(), "size": p.stat().st_size, "sha256": "0" * 64}
             for p in sorted((fw / "0.2.0" / "at").rglob("*.py"))]
    (fw / "0.2.0" / "manifest.json").write_text(json.dumps({"version": "0.2.0", "files": files}))
    (fw / "state.json").write_text(json.dumps({"current": "0.2.0", "previous": None, "trial": True, "tries": 0,
                                               "image": "ota_0", "prev_image": "factory"}))


MARK = """
        st = L["read_state"]()
        d = L["choose"]()
        sys.path.insert(0, os.getcwd() + "/fw/" + d)
        from at import fwstate as c
        assert c.running() == "0.2.0", c.__file__
        class At:
            log = Log()
            ota_busy = False
            board = BOARD
        c.mark_good(At())
"""


@pytest.mark.timeout(60)
def test_esp32_loader_switches_image_and_marks_it_valid(tmp_path):
    # the image is written (as Image does), the pointer names it, set_boot() never ran
    run_mp(tmp_path, """
        p = esp32.Partition("ota_0")
        img = bytearray(%s); img += b"\\xff" * (-len(img) %% 4096)
        for b in range(len(img) // 4096):
            p.writeblocks(b, memoryview(img)[b * 4096:(b + 1) * 4096])
    """ % IMAGE_EXPR)
    fake_install(tmp_path)
    # boot 1: the loader finishes the switch and restarts; this boot does not count
    out = run_mp(tmp_path, """
        L = loader()
        L["choose"]()
    """, expect_exit=3)
    assert "switching the boot partition to ota_0" in out, out
    st = json.loads((tmp_path / "fw" / "state.json").read_text())
    assert st["tries"] == 0 and st["trial"] is True
    # boot 2: the bootloader starts ota_0 (pending verify); a trial boot; marked good after GOOD_MS
    out = run_mp(tmp_path, """
        assert esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_0"
        assert esp32.otadata()["states"]["ota_0"] == "pending"
        L = loader()
    """ + MARK + """
        assert esp32.otadata()["states"]["ota_0"] == "valid"
        assert L["read_state"]()["trial"] is False
    """)
    assert "fw/0.2.0 on trial (boot 1 of 1)" in out and "marked good" in out, out
    # boot 3: valid: no rollback by anyone
    out = run_mp(tmp_path, """
        assert esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_0"
        L = loader()
        assert L["choose"]() == "0.2.0"
    """)


@pytest.mark.timeout(60)
def test_esp32_new_image_that_never_confirms_rolls_back(tmp_path):
    run_mp(tmp_path, """
        from at import ota, errors
        data = %s
        img = ota.Image({"path": "m.bin", "size": len(data), "sha256": sha(data)}, BOARD)
        img.write(data)
        for _ in img.finish():
            pass
        img.boot()
    """ % IMAGE_EXPR)
    fake_install(tmp_path)
    # boot 1: ota_0 pending verify, trial boot 1 ... and the board dies before GOOD_MS
    out = run_mp(tmp_path, """
        assert esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_0"
        L = loader()
        assert L["choose"]() == "0.2.0"
    """)
    # boot 2: the bootloader aborts ota_0 and starts factory; the loader rolls the modules back too
    out = run_mp(tmp_path, """
        d = esp32.otadata()
        assert d["running"] == "factory" and d["states"]["ota_0"] == "aborted", d
        L = loader()
        assert L["choose"]() is None
        st = L["read_state"]()
        assert st["current"] is None and st["image"] == "factory" and st["trial"] is False, st
    """)
    assert "fw/0.2.0 did not start; rolling back to the factory firmware" in out, out
