# MicroPython-AT on an ESP32-WROOM: the stock ESP32 settings, two OTA app slots
# (so AT+CIUPDATE can replace the whole image through esp32.Partition), and the
# AT firmware frozen in by ../../manifest.py. Paths in SDKCONFIG_DEFAULTS are
# relative to micropython/ports/esp32.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/ESP32_GENERIC/sdkconfig.ota
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/../../manifest.py)
