# The ESP32 port's time module. The epoch is 2000 (py/mpconfig.h defaults
# MICROPY_EPOCH_IS_2000; ports/esp32 keeps it), time(), gmtime() and localtime()
# read the system clock (ports/esp32/modtime.c v1.27.0:35-46, gettimeofday), and
# gmtime() gives 8 items (extmod/modtime.c). Nothing sets that clock at power-on,
# so it starts at 2000-01-01 00:00:00; it keeps counting across machine.reset()
# and deep sleep (ESP-IDF keeps the system time in the RTC domain): the twin keeps
# it in the file $TWIN_RTC, which the launcher deletes at a power cycle.
# machine.RTC().datetime(...) sets it (ports/esp32/machine_rtc.c v1.27.0:136-149).
import os
from _builtin import builtin

_t = builtin("time")
EPOCH_1970 = 946684800  # 1970 -> 2000, TIMEUTILS_SECONDS_1970_TO_2000

ticks_ms = _t.ticks_ms
ticks_us = _t.ticks_us
ticks_cpu = _t.ticks_cpu
ticks_add = _t.ticks_add
ticks_diff = _t.ticks_diff
sleep = _t.sleep
sleep_ms = _t.sleep_ms
sleep_us = _t.sleep_us

_FILE = os.getenv("TWIN_RTC")
_offset = None  # RTC seconds (2000 epoch) = host seconds (1970 epoch) + _offset


def _load():
    global _offset
    if _FILE:
        try:
            with open(_FILE) as f:
                _offset = float(f.read())
                return
        except (OSError, ValueError):
            pass
    _offset = -_t.time()  # power-on: 2000-01-01 00:00:00 now
    _save()


def _save():
    if _FILE:
        with open(_FILE + ".tmp", "w") as f:
            f.write(repr(_offset))
        os.rename(_FILE + ".tmp", _FILE)


def _now():
    if _offset is None:
        _load()
    return _t.time_ns() / 1e9 + _offset


def set_rtc(secs):
    """machine.RTC().datetime(...): the clock now reads secs (2000 epoch)."""
    global _offset
    _offset = secs - _t.time_ns() / 1e9
    _save()


def time():
    return int(_now())


def time_ns():
    return int(_now() * 1e9)


def gmtime(secs=None):
    if secs is None:
        secs = time()
    return tuple(_t.gmtime(int(secs) + EPOCH_1970)[:8])  # the unix port's gmtime counts from 1970


localtime = gmtime  # no time zones on the ESP32 port


def mktime(t):
    y, mo, d, h, mi, s = t[:6]
    # days from 2000-01-01, the proleptic Gregorian calendar (shared/timeutils)
    if mo <= 2:
        y -= 1
        mo += 12
    days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (mo - 3) + 2) // 5 + d - 730426
    return ((days * 24 + h) * 60 + mi) * 60 + s
