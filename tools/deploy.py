#!/usr/bin/env python3
"""Put the firmware on a real ESP32 running stock MicroPython, reset it, wait for "ready".

    python tools/deploy.py --port /dev/ttyUSB0 [--at-port /dev/ttyUSB1] [--clean] [--dry-run]

--port is the board's USB port: UART0, MicroPython's REPL, which mpremote
drives. lib/**/*.py (but the virtual board's at/ports/unix.py and air.py) is
compiled with mpy-cross into build/esp32/lib (the package layout kept) and
copied to the board's /lib, which is on the ESP32's sys.path; boot.py and
main.py go to /. The AT commands are on UART1 (GPIO17 TX, GPIO16 RX, GPIO14 RTS,
GPIO15 CTS), usually a second USB-UART adapter: give it as --at-port (or
AT_PORT=... to make) to wait for the firmware's "ready" there.

mpy-cross 1.29 writes .mpy version 6.3, which MicroPython 1.23 and later load.
mpremote interrupts the running firmware with Ctrl-C on UART0 (the firmware
only catches Exception, never KeyboardInterrupt), so redeploying needs no reset.
"""
import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "esp32"
READY = b"\r\nready\r\n"
# mpy-cross's options wherever lib/ is compiled for a board (here, the virtual board,
# OTA packages, the heap measurements). -O3 leaves out the line-number tables: read
# into the heap with the bytecode, they cost a WROOM 3 KB at `ready` (BENCHMARKS.md,
# "Heap"); tracebacks then name the function but say line 1.
MPY_CROSS_FLAGS = ["-O3"]


# Modules of lib/ that only the virtual board runs: the unix port's adapter and the
# simulated air it shares with the ESP32 twin. A real board never gets them.
HOST_ONLY = ("at/ports/unix.py", "at/ports/air.py")


def board_modules(src=ROOT / "lib", skip=HOST_ONLY):
    """The lib/ sources a board gets, sorted."""
    return [py for py in sorted(src.rglob("*.py")) if py.relative_to(src).as_posix() not in skip]


def compile_lib(src=ROOT / "lib", out=OUT / "lib", check=True, skip=HOST_ONLY):
    """Compile src/**.py but `skip` to out/**.mpy, the package layout kept. Returns
    the .mpy paths."""
    done = []
    for py in board_modules(src, skip):
        rel = py.relative_to(src)
        mpy = out / rel.with_suffix(".mpy")
        mpy.parent.mkdir(parents=True, exist_ok=True)
        # -s: tracebacks on the board name at/app.py, not this machine's path.
        subprocess.run([sys.executable, "-m", "mpy_cross"] + MPY_CROSS_FLAGS
                       + ["-s", rel.as_posix(), "-o", str(mpy), str(py)], check=check)
        done.append(mpy)
    # Drop compiled modules whose source is gone or skipped (cp -r would still copy them).
    keep = set(done)
    for mpy in out.rglob("*.mpy"):
        if mpy not in keep:
            mpy.unlink()
    return done


def mpremote_steps(port, clean=False):
    """The mpremote command lines, each as (argv, tolerated error text or None)."""
    mp = ["mpremote", "connect", port]
    steps = [(mp + ["fs", "mkdir", ":lib"], "File exists")]  # fails when /lib is there: fine
    if clean:
        steps.append((mp + ["fs", "rm", "-r", ":lib/at"], "No such file"))
    # :lib exists now, so cp -r copies the at/ package into it: /lib/at/**.mpy.
    steps.append((mp + ["fs", "cp", "-r", str(OUT / "lib" / "at"), ":lib"], None))
    steps.append((mp + ["fs", "cp", str(ROOT / "boot.py"), str(ROOT / "main.py"), ":"], None))
    # A deployed lib/ replaces any OTA-installed version: drop the loader's pointer
    # (main.py would otherwise keep running fw/<version>); the folders stay.
    steps.append((mp + ["fs", "rm", ":fw/state.json"], "No such file"))
    steps.append((mp + ["reset"], None))  # machine.reset(): boot.py, then main.py
    return steps


def run_step(argv, tolerated):
    cmd = [sys.executable, "-m", "mpremote"] + argv[1:]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        if tolerated and tolerated in (r.stdout + r.stderr):
            print("  (%s: fine)" % tolerated)
            return
        sys.stderr.write(r.stderr)
        raise SystemExit("deploy: failed: %s" % shlex.join(argv))


def wait_ready(at_port, baud, timeout):
    """Watch the AT UART until the firmware's "ready"; True when it came."""
    import serial  # pyserial, from requirements.txt

    print("deploy: waiting for \"ready\" on %s at %d baud ..." % (at_port, baud), flush=True)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    with serial.serial_for_url(at_port, baud, timeout=0.1) as ser:
        while time.monotonic() < deadline:
            seen += ser.read(256)
            if READY in seen:
                return True
    if seen:
        print("deploy: the AT UART said %r" % bytes(seen[-200:]))
    return False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", default=os.environ.get("PORT") or None,
                   help="the board's REPL port (UART0), e.g. /dev/ttyUSB0")
    p.add_argument("--at-port", default=os.environ.get("AT_PORT") or None,
                   help="the AT UART (UART1) adapter, e.g. /dev/ttyUSB1; wait for ready there")
    p.add_argument("--at-baud", type=int, default=115200,
                   help="the AT UART's rate (AT+UART_DEF's, if one was saved); default 115200")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for ready")
    p.add_argument("--clean", action="store_true", help="remove the board's /lib/at first")
    p.add_argument("--dry-run", action="store_true", help="print the mpremote commands, change nothing")
    args = p.parse_args(argv)

    if not args.port:
        if not args.dry_run:
            p.error("give the board's port: --port /dev/ttyUSB0 (make deploy PORT=/dev/ttyUSB0)")
        args.port = "PORT"

    steps = mpremote_steps(args.port, args.clean)
    if args.dry_run:
        n = len(board_modules())
        print("# compile %d modules: lib/**/*.py -> %s/**/*.mpy (python -m mpy_cross)"
              % (n, (OUT / "lib").relative_to(ROOT)))
        for argv_, _ in steps:
            print(shlex.join(argv_))
        if args.at_port:
            print("# then wait for \"ready\" on %s at %d baud" % (args.at_port, args.at_baud))
        return 0

    mpys = compile_lib()
    print("deploy: compiled %d modules into %s" % (len(mpys), OUT / "lib"))
    for argv_, tolerated in steps:
        print("$ " + shlex.join(argv_), flush=True)
        run_step(argv_, tolerated)
    print("deploy: the board on %s was reset and is starting the firmware" % args.port)
    if not args.at_port:
        print("deploy: no --at-port given; the AT commands are on UART1 (GPIO17 TX, GPIO16 RX)")
        return 0
    if wait_ready(args.at_port, args.at_baud, args.timeout):
        print("deploy: ready on %s" % args.at_port)
        return 0
    print("deploy: no \"ready\" on %s within %gs (wiring? rate? see the log: mpremote connect %s repl)"
          % (args.at_port, args.timeout, args.port))
    return 1


if __name__ == "__main__":
    sys.exit(main())
