// MicroPython-AT: an ESP32-WROOM running the AT firmware (firmware/README.md).
#define MICROPY_HW_BOARD_NAME "ESP32 module (MicroPython-AT)"
#define MICROPY_HW_MCU_NAME "ESP32"
