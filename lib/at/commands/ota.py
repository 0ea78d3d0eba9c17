# Over-the-air updates (TCP-IP_AT_Commands.rst: AT+CIPFWVER, AT+CIUPDATE) from
# an update server the user runs (tools/update_server.py), and AT+CIUPDATESRV,
# our own command that says where that server is. Loaded on the first of these
# commands; the download and the install are in at/ota.py, imported only when
# an update (or AT+CIPFWVER?) runs.
#
# The firmware's state files: at/fwstate.py.
from at import parse, mfg
from at.fwfiles import IDLE, FAILED, VERSION_MAX, valid_version
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, E_OTA_NO_SERVER
from at.commands import row

# The spec: "The timeout of OTA process is 3 minutes", from the command to
# +CIPUPDATE:4 (or its failure). Tests shorten it from a user_commands.py:
#     from at.commands import ota; ota.TIMEOUT_MS = 4000
TIMEOUT_MS = 3 * 60 * 1000
NAME_MAX = 64


# -- the group's state (loaded on first use; at/fwstate.py marks a new version good at boot) ------
def init(eng):
    eng.ota_state = IDLE
    eng.ota_task = None  # the non-blocking update's Task
    eng.ota_busy = False  # an update runs (either mode)



# -- AT+CIUPDATESRV=<"host">,<port>[,<"path">][,<ssl port>] --------------------------------------------
def q_ciupdatesrv(eng):
    host, port, path, sport = eng.cfg.get("ota_server")
    eng.reply('+CIUPDATESRV:"%s",%d,"%s",%d' % (host, port, path, sport))


def s_ciupdatesrv(eng, a):
    parse.count(a, 2, 4)
    host = parse.text(a, 0, 64, minlen=1)
    port = parse.num(a, 1, 1, 65535)
    path = parse.text(a, 2, 64, "").rstrip("/")
    sport = parse.num(a, 3, 0, 65535, 0)
    if " " in host or "/" in host:
        raise ATError(code(PARA_INVALID, 0))
    if path and (path[0] != "/" or " " in path or "?" in path or "#" in path):
        raise ATError(code(PARA_INVALID, 2))
    eng.cfg.set("ota_server", [host, port, path, sport], True)  # always saved


# -- AT+CIPFWVER? ----------------------------------------------------------------------------------------
def q_cipfwver(eng):
    ota = _load(eng.cfg.get("ota_server")[3])
    try:
        vs = yield from ota.versions(eng, TIMEOUT_MS)
    finally:
        _unload()
    for v in vs:
        eng.reply('+CIPFWVER:"%s"' % v)


def _load(tls):
    """Import at/ota.py. What stays loaded afterwards is imported first, so that
    it does not end up between the big module's blocks and fragment the heap
    once that is dropped again."""
    import gc
    from at import version, task, dns  # noqa: F401 (kept loaded)
    if tls:
        from at import nested, sslconf  # noqa: F401
    gc.collect()
    from at import ota
    return ota


def _unload():
    """at/ota.py takes some 12-20 KB of heap: drop it once an update or a listing is over."""
    from at import commands

    commands.drop("at.ota", "at.otahttp", "at.otaimage")


# -- AT+CIUPDATE -----------------------------------------------------------------------------------------
def q_ciupdate(eng):
    eng.reply("+CIPUPDATE:%d" % eng.ota_state)


def exe_ciupdate(eng):
    # The spec: "the latest version ... via TCP ... in blocking mode".
    return _start(eng, 0, None, "ota", 0)


def s_ciupdate(eng, a):
    parse.count(a, 1, 4)
    mode = parse.num(a, 0, 0, 1)
    version = parse.text(a, 1, VERSION_MAX, None) or None
    name = parse.text(a, 2, NAME_MAX, None) or "ota"
    nb = parse.num(a, 3, 0, 1, 0)
    if version is not None and not valid_version(version):
        raise ATError(code(PARA_INVALID, 1))
    if name != "ota" and name not in mfg.NAMESPACES:
        raise ATError(code(PARA_INVALID, 2))
    return _start(eng, mode, version, name, nb)


def _start(eng, mode, version, name, nb):
    if eng.ota_task is not None:
        eng.log.write("ota: ALREADY IN OTA\n")
        raise fail(EXEC_FAIL)
    srv = eng.cfg.get("ota_server")
    if not srv[0] or (mode == 1 and not srv[3]):
        eng.log.write("ota: no update server%s: set it with AT+CIUPDATESRV\n" % (" for HTTPS" if srv[0] else ""))
        raise fail(EXEC_FAIL, E_OTA_NO_SERVER)
    if nb:
        # OK first, then +CIPUPDATE:1..4 (or -1) as the update goes.
        eng.then(lambda: _background(eng, mode, version, name))
        return None
    return _blocking(eng, mode, version, name)


def _blocking(eng, mode, version, name):
    ota = _load(mode)
    eng.ota_busy = True
    try:
        yield from ota.update(eng, mode, version, name, TIMEOUT_MS)
    except BaseException:
        eng.ota_state = FAILED
        raise
    finally:
        eng.ota_busy = False
        _unload()
    if name == "ota":
        # As ESP-AT: OK, then the board restarts into the new version.
        eng.then(lambda: _reset(eng))


def _background(eng, mode, version, name):
    ota = _load(mode)
    from at.task import Task

    def done(result, err):
        eng.ota_task = None
        eng.ota_busy = False
        _unload()
        if err is not None:
            eng.ota_state = FAILED
            if not isinstance(err, ATError):
                eng.log.write("ota: update failed: %r\n" % (err,))
            eng.reply("+CIPUPDATE:-1")

    eng.ota_task = eng.ota_busy = True  # taken before the task's first step can finish
    t = Task(eng.loop, ota.update(eng, mode, version, name, TIMEOUT_MS), done)
    if eng.ota_task is not None:
        eng.ota_task = t


def _reset(eng):
    eng.out.flush()
    eng.board.reset()


COMMANDS = [
    row("+CIUPDATESRV", query=q_ciupdatesrv, set=s_ciupdatesrv),
    row("+CIPFWVER", query=q_cipfwver),
    row("+CIUPDATE", query=q_ciupdate, set=s_ciupdate, execute=exe_ciupdate),
]
