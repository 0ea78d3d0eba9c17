# Over-the-air updates, the installer: asks the server (at/otahttp.py), stages
# and checks every file, writes an image (at/otaimage.py), switches versions.
# Imported only while an update (or AT+CIPFWVER?) runs, with its two helpers, and
# dropped after; the commands are in at/commands/ota.py, the loader that boots
# what is installed here is main.py.
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
import hashlib
from at import sock
from at.errors import ATError, fail, EXEC_FAIL
from at.errors import (E_OTA_CONNECT, E_OTA_DOWNGRADE, E_OTA_FLASH, E_OTA_MANIFEST, E_OTA_NO_SERVER,
                       E_OTA_VERSION)
from at.fwfiles import FOUND, CONNECTED, GOT_VERSION, DONE, Fail, hexdigest, valid_version, rmtree
from at.otahttp import Http, BUF
from at.otaimage import Image, running_image  # noqa: F401 (Image: the tests take it from here)
from at.fwstate import FW, read_state, write_state, running

STAGING = FW + "/.staging"
LIST_MAX = 4096  # GET /versions
MANIFEST_MAX = 16384
MFG_MAX = 8192  # a certificate: what AT+SYSMFG takes in one write


def vkey(v):
    """Sort key of a version: numbers compare as numbers ("0.10.0" after "0.9.1"),
    a leading "v" is ignored ("v1.2.0.0")."""
    if v[:1] in ("v", "V"):
        v = v[1:]
    out = []
    for p in v.replace("-", ".").replace("+", ".").replace("_", ".").split("."):
        out.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return out


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
    return hexdigest(h)


# -- the update ------------------------------------------------------------------------------------------
def _client(eng, mode, timeout_ms):
    host, port, path, sport = eng.cfg.get("ota_server")
    if not host:
        raise Fail(E_OTA_NO_SERVER, "no update server: set one with AT+CIUPDATESRV")
    if mode == 1:
        if not sport:
            raise Fail(E_OTA_NO_SERVER, "no HTTPS port: AT+CIUPDATESRV=<host>,<port>,<path>,<ssl port>")
        port = sport
    return Http(eng, host, port, path, mode == 1, timeout_ms)


def _report(eng, state):
    eng.ota_state = state
    eng.reply("+CIPUPDATE:%d" % state)


def _guard(eng, c, gen):
    """Run gen; every failure becomes ERROR (an ATError), with the reason on the log."""
    try:
        return (yield from gen)
    except ATError:
        raise
    except Fail as e:
        eng.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)
    except OSError as e:
        eng.log.write("ota: network error %r talking to %s:%d\n" % (e, c.host, c.port) if c else
                     "ota: %r\n" % (e,))
        raise fail(EXEC_FAIL, E_OTA_CONNECT, errno=sock.errno_of(e))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        eng.log.write("ota: bad answer from the server: %r\n" % (e,))
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


def versions(eng, timeout_ms):
    """Generator: the versions on the server, oldest first (AT+CIPFWVER?). Over
    HTTPS when AT+CIUPDATESRV has an <ssl port>, else over HTTP; all of it within
    timeout_ms."""
    c = None
    try:
        c = _client(eng, 1 if eng.cfg.get("ota_server")[3] else 0, timeout_ms)
    except Fail as e:
        eng.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)

    def go():
        yield from c.resolve()
        yield from c.connect()
        return (yield from _list(c))

    return (yield from _guard(eng, c, go()))


def update(eng, mode, version, name, timeout_ms):
    """Generator: AT+CIUPDATE, all of it within timeout_ms. Writes +CIPUPDATE:1..4
    as it goes; raises ATError on failure (the reason on the log port), leaving
    the firmware as it was."""
    import gc
    gc.collect()
    c = None
    try:
        c = _client(eng, mode, timeout_ms)
    except Fail as e:
        eng.log.write("ota: %s\n" % e.msg)
        raise fail(EXEC_FAIL, e.ext)
    ok = False
    try:
        yield from _guard(eng, c, _update(eng, c, version, name))
        ok = True
    finally:
        if not ok:
            try:
                rmtree(STAGING)
            except OSError:
                pass


def _update(eng, c, version, name):
    from at.version import VERSION as mine
    yield from c.resolve()
    _report(eng, FOUND)
    yield from c.connect()
    _report(eng, CONNECTED)
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
    _report(eng, GOT_VERSION)
    if name == "ota":
        if vkey(version) < vkey(mine):
            eng.log.write("ota: downgrading from %s to %s, which the spec does not recommend\n" % (mine, version))
        eng.log.write("ota: installing version %s (%d files) from %s:%d\n" % (version, len(m["files"]), c.host,
                                                                          c.port))
        yield from _install(eng, c, version, m)
    else:
        yield from _install_mfg(eng, c, version, m, name)
    _report(eng, DONE)


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


def _install(eng, c, version, m):
    base = "%s/%s/" % (c.base, version)
    img = None
    if m.get("image"):
        e = m["image"]
        if running_image(eng.board) is None:
            eng.log.write("ota: this port cannot flash a MicroPython image; installing the modules only\n")
        elif not _safe_path(e["path"]):
            raise Fail(E_OTA_MANIFEST, "bad image entry %r" % (e,))
        else:
            img = Image(e, eng.board)
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
        eng.log.write("ota: writing %d-byte image to %s\n" % (img.size, img.label))
        yield from c.fetch_image(base + m["image"]["path"], img)
        yield from img.finish()
    c.close()
    # What the flash holds is what will run: read every file back and check it again.
    for e in m["files"]:
        if hash_file(STAGING + "/" + e["path"]) != e["sha256"]:
            raise Fail(E_OTA_FLASH, "%s reads back wrong from flash" % e["path"])
    yield 0
    _switch(eng, version, img)


def _switch(eng, version, img):
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
    here = running_image(eng.board)
    new = {"current": d, "previous": me, "trial": True, "tries": 0,
           "image": img.label if img else here, "prev_image": here}
    write_state(new)  # THE switch: one rename
    eng.log.write("ota: version %s installed in fw/%s; it runs after the next restart (previous: %s)\n"
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


def _install_mfg(eng, c, version, m, ns):
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
        if hexdigest(hashlib.sha256(data)) != e["sha256"]:
            raise Fail(E_OTA_FLASH, "%s reads back wrong from flash" % e["key"])
        mfg.write(ns, e["key"], mfg.BINARY, data)
        eng.log.write("ota: %s/%s updated from version %s\n" % (ns, e["key"], version))
    rmtree(STAGING)
