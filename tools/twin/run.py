# The twin's entry point: `micropython tools/twin/run.py <main.py>` with this
# folder first on MICROPYPATH. It puts the ESP32 port's modules where the
# firmware imports them, then runs main.py, which picks lib/at/ports/esp32.py.
# machine, network, esp32, socket, select, errno and time are found on the path
# (files of those names here shadow the unix port's); tls and sys cannot be
# shadowed by a file (they are not extensible built-ins), so they go into
# sys.modules, which import consults first.
import sys
import os
import _builtin  # noqa: F401  (binds the real sys before the stand-in below)
import twin_tls

_real = sys
_REL = tuple(int(x) for x in (os.getenv("TWIN_MPY") or "1.27").split(".")[:2])
_VERSION = {(1, 24): (1, 24, 1, ""), (1, 25): (1, 25, 0, ""), (1, 26): (1, 26, 1, ""),
            (1, 27): (1, 27, 0, ""), (1, 28): (1, 28, 0, "")}.get(_REL, _REL + (0, ""))


class _Impl:
    name = "micropython"
    version = _VERSION
    _machine = "Generic ESP32 module with ESP32"
    _mpy = getattr(_real.implementation, "_mpy", 0)


class _Sys:
    """sys as the ESP32 port shows it: platform "esp32", the release's version."""

    platform = "esp32"
    implementation = _Impl()
    version = "3.4.0; MicroPython v%d.%d.%d on ESP32 (twin)" % _VERSION[:3]

    def __getattr__(self, name):
        return getattr(_real, name)


sys.modules["tls"] = twin_tls
sys.modules["sys"] = _Sys()

_main = _real.argv[1] if len(_real.argv) > 1 else "main.py"
with open(_main) as f:
    _src = f.read()
exec(_src, {"__name__": "__main__", "__file__": _main})
