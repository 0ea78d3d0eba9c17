# Freeze the AT firmware into a MicroPython image for the ESP32 (firmware/README.md):
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/firmware/manifest.py
# Relative paths below are relative to this file (tools/manifestfile.py runs a
# manifest from its own directory).

# Everything the stock image freezes: _boot.py, inisetup.py, asyncio, the
# networking bundle. Leaving it out would leave the board without a filesystem.
include("$(PORT_DIR)/boards/manifest.py")

# The firmware: the `at` package (lib/at/**/*.py, compiled by mpy-cross at build
# time) and the two scripts. Frozen boot.py/main.py run in place of any on the
# filesystem (shared/runtime/pyexec.c looks for frozen ones first); frozen
# modules come before /lib on sys.path, so a stale /lib/at cannot shadow them.
package("at", base_path="../lib")
module("boot.py", base_path="..")
module("main.py", base_path="..")
