# The unix port's socket module plus the two names the ESP32 build also
# exports (ports/esp32/modsocket.c) and the unix build lacks: IPPROTO_TCP and
# TCP_NODELAY, with lwIP's values. Everything else is the real unix module.
import sys

_path = sys.path
sys.path = []  # with no path, the import below finds the built-in module
try:
    from socket import *  # noqa: F401,F403
finally:
    sys.path = _path
    del _path

IPPROTO_TCP = 6
TCP_NODELAY = 1
