# One place for the version strings AT+GMR prints (and OTA compares, later).
VERSION = "0.1.0"
AT_VERSION = "4.1.0.0"  # the ESP-AT command set this firmware follows
BUILD = "2026-11-25"
