#!/usr/bin/env python3
"""Type-check the firmware (lib/, main.py, boot.py) against MicroPython's ESP32
API: micropython-esp32-stubs for the modules, micropython-stdlib-stubs as the
standard library (mypy's --custom-typeshed-dir). The stubs are top-level .pyi
files that mypy does not find in site-packages by itself, so they are copied to
build/stubs first. Exit status: mypy's (0 = no errors). Settings: mypy.ini."""
import pathlib
import shutil
import subprocess
import sys
import sysconfig

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    out = ROOT / "build" / "stubs"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in site.glob("*.pyi"):
        shutil.copy(f, out)
    shutil.copytree(site / "_mpy_shed", out / "_mpy_shed")
    cmd = [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(site), "--config-file", str(ROOT / "mypy.ini")]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
