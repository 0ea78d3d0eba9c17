# The installed firmware's state: which fw/<dir> runs and whether it is on
# trial. Shared by main.py (the loader reads fw/state.json), the OTA installer
# (at/ota.py, which writes it) and the boot, which marks a new version good once
# its loop has run for GOOD_MS. Small on purpose: it is imported at every boot.
#
# The files on the board's filesystem:
#   fw/state.json    {"current": <dir>|null, "previous": <dir>|null,
#                     "trial": bool, "tries": int, "image": <label>|null, "prev_image": ...}
#   fw/<dir>/        one installed version: at/**.mpy and its manifest.json
#   fw/.staging/     a download in progress (never booted)
import os
import json

FW = "fw"
STATE = FW + "/state.json"
GOOD_MS = 5000  # a new version that has run its loop this long is marked good


def read_state():
    try:
        with open(STATE) as f:
            st = json.load(f)
        return st if isinstance(st, dict) else None
    except Exception:  # OSError (none yet), ValueError (corrupt: the loader said so)
        return None


def write_state(st):
    """Replace fw/state.json in one rename: the old pointer or the new one, never half."""
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, STATE)


def running():
    """The fw/ folder this firmware was loaded from, or None for the factory one
    (lib/ or frozen). main.py puts fw/<dir> first on sys.path, so this module's
    own file tells: fw/<dir>/at/fwstate.mpy."""
    p = __file__.replace("\\", "/").split("/")
    if len(p) >= 4 and p[-4] == FW and p[-2] == "at":
        return p[-3]
    return None


def boot(eng):
    """At power-up: a version on trial is marked good once it has run a while.
    True if that is to be done."""
    if read_state():
        eng.loop.later(GOOD_MS, lambda: mark_good(eng))
        return True
    return False


def mark_good(eng):
    st = read_state()
    me = running()
    if st and st.get("trial") and me and st.get("current") == me:
        st["trial"] = False
        st["tries"] = 0
        try:
            write_state(st)
        except OSError as e:
            eng.log.write("ota: cannot mark fw/%s good: %r\n" % (me, e))
            return
        from at.version import VERSION
        eng.log.write("ota: version %s (fw/%s) started fine; marked good\n" % (VERSION, me))
    if st and st.get("image"):
        mark = getattr(eng.board, "image_mark_valid", None)  # the image too (ESP-IDF app rollback)
        if mark:
            try:
                mark()
            except OSError:
                pass
