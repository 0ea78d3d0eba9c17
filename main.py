# Entry point on every board, and the loader: it picks the firmware to run, an
# installed update (fw/<dir>/, see lib/at/ota.py) or the factory one (lib/, or
# frozen), then runs it. No update ever replaces this file, so keep it small
# and keep the format of fw/state.json stable:
#   {"current": <dir>|null, "previous": <dir>|null, "trial": bool, "tries": int,
#    "image": <app partition>|null, "prev_image": <app partition>|null}
# A new version boots "on trial": each trial boot is counted here, and the
# firmware marks itself good once its loop has run a few seconds
# (at/fwstate.py). A board that restarts while still on trial comes back
# on the previous version: a new version that fails to start rolls back by itself.
import sys
import os

FW = "fw"
STATE = FW + "/state.json"
TRIES = 1  # trial boots a new version gets before it is rolled back
LINUX = sys.platform == "linux"


def log(msg):
    (sys.stderr if LINUX else sys.stdout).write("boot: %s\n" % msg)


def reset(code=3):
    if LINUX:
        sys.exit(code)  # the virtual board's launcher restarts us (3: a reset, else: a crash)
    import machine
    machine.reset()


def read_state():
    import json
    try:
        with open(STATE) as f:
            st = json.load(f)
    except OSError:
        return None  # nothing installed
    except Exception as e:
        log("%s is corrupt (%r): the factory firmware" % (STATE, e))
        return None
    return st if isinstance(st, dict) else None


def write_state(st):
    import json
    with open(STATE + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(STATE + ".tmp", STATE)  # the old pointer or the new one, never half


def version_of(d):
    """The version in fw/<d> if every file its manifest lists is there at its size."""
    import json
    if not isinstance(d, str) or not d or "/" in d or d[0] == ".":
        return None
    base = FW + "/" + d + "/"
    try:
        with open(base + "manifest.json") as f:
            m = json.load(f)
        for e in m["files"]:
            if os.stat(base + e["path"])[6] != e["size"]:
                return None
        return m["version"]
    except Exception:
        return None


def running_image():
    try:
        from esp32 import Partition
    except ImportError:
        return None, None
    return Partition, Partition(Partition.RUNNING).info()[4]  # type: ignore[arg-type]  # stubs: labels only


def boot_image(Partition, label):
    """ESP32: make `label` the boot partition and restart into it."""
    log("switching the boot partition to %s" % label)
    Partition(label).set_boot()
    reset()


def rollback(st, why):
    cur, prev = st.get("current"), st.get("previous")
    log("fw/%s %s; rolling back to %s" % (cur, why, "fw/" + prev if prev else "the factory firmware"))
    st = {"current": prev, "previous": None, "trial": False, "tries": 0,
          "image": st.get("prev_image"), "prev_image": None}
    write_state(st)
    return st


def choose():
    """The fw/ folder to run, or None for the factory firmware."""
    st = read_state()
    if not st or not st.get("current"):
        return None
    Partition, here = running_image()
    want = st.get("image")
    if st.get("trial"):
        if st.get("tries", 0) >= TRIES:
            st = rollback(st, "did not start")
            want = st.get("image")
            if Partition and want and want != here:
                boot_image(Partition, want)
        else:
            if Partition and want and want != here:
                # Installed but not switched yet (the install was cut short after
                # the pointer): switch now; this boot does not count.
                try:
                    boot_image(Partition, want)
                except OSError as e:
                    st = rollback(st, "has an image the boot loader refuses (%r)" % (e,))
                    want = None
            if st.get("trial"):
                st["tries"] = st.get("tries", 0) + 1
                write_state(st)
                log("fw/%s on trial (boot %d of %d)" % (st["current"], st["tries"], TRIES))
    elif Partition and want and want != here:
        log("running %s, but fw/%s was installed for %s: the factory firmware" % (here, st["current"], want))
        return None
    cur = st.get("current")
    if not cur:
        return None
    v = version_of(cur)
    if v is None:
        log("fw/%s is missing or incomplete: the factory firmware" % cur)
        return None
    log("fw/%s (version %s)" % (cur, v))
    return cur


def failed(d, e):
    """The installed version in fw/<d> could not start: restart, and have the
    next boot roll it back (trial or not: a version that cannot start is no use)."""
    log("fw/%s failed to start:" % d)
    if hasattr(sys, "print_exception"):
        sys.print_exception(e, sys.stderr if LINUX else sys.stdout)  # type: ignore[arg-type]
    try:
        st = read_state()
        if st and st.get("current") == d:
            st["trial"] = True
            st["tries"] = TRIES
            write_state(st)
    finally:
        reset(1)


def collecting_imports():
    """From now on an import that loads modules collects the garbage it made before
    anything else allocates. .mpy files are read into the heap (`make deploy`), and
    the loader's garbage left between their objects cuts it into holes: a WROOM's
    heap at `ready` had 18 KB free and no block over 1,116 bytes; 3,902 with this
    (BENCHMARKS.md, "Heap"). An import that loads nothing does not collect."""
    import builtins
    import gc
    imp = builtins.__import__

    def tidy(name, *rest):
        n = len(sys.modules)
        m = imp(name, *rest)
        if len(sys.modules) != n:
            gc.collect()
        return m

    try:
        builtins.__import__ = tidy  # ports/esp32: MICROPY_CAN_OVERRIDE_BUILTINS (ROM level EXTRA_FEATURES)
    except AttributeError:
        pass  # a build that cannot override builtins: imports as they are


def main():
    collecting_imports()
    d = None
    try:
        d = choose()
    except Exception as e:  # the loader must never be what stops a board
        log("loader error %r: the factory firmware" % (e,))
        d = None
    if d:
        sys.path.insert(0, os.getcwd().rstrip("/") + "/" + FW + "/" + d)
    try:
        if sys.platform == "linux":
            from at.ports.unix import Board
        else:
            from at.ports.esp32 import Board
        from at import app
        board = Board()
        app.run(board)
    except Exception as e:
        if d is None:
            raise
        failed(d, e)


if __name__ == "__main__":
    main()
