#!/usr/bin/env bash
# Build the MicroPython image with the AT firmware frozen in, where ESP-IDF is
# installed (see firmware/README.md):
#     source esp-idf/export.sh
#     firmware/build.sh /path/to/micropython            # build
#     firmware/build.sh /path/to/micropython /dev/ttyUSB0   # build and flash
set -euo pipefail
MP=$(cd "${1:?usage: firmware/build.sh <micropython checkout> [serial port]}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
: "${IDF_PATH:?ESP-IDF is not in this shell: source esp-idf/export.sh first}"
BOARD_DIR="$HERE/boards/ESP32_AT"
make -C "$MP/mpy-cross"
make -C "$MP/ports/esp32" BOARD_DIR="$BOARD_DIR" submodules
make -C "$MP/ports/esp32" BOARD_DIR="$BOARD_DIR"
echo "image: $MP/ports/esp32/build-ESP32_AT/firmware.bin"
if [ -n "${2:-}" ]; then
    make -C "$MP/ports/esp32" BOARD_DIR="$BOARD_DIR" PORT="$2" deploy
fi
