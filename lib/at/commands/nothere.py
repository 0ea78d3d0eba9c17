# ESP-AT commands this firmware cannot serve, because MicroPython has no API for
# them on any port (no SmartConfig, WPS or WPA2-Enterprise in network.WLAN): they
# answer ERROR with ERR CODE 0x010a0057 ("not supported here", at AT+SYSLOG=1)
# instead of looking like commands that do not exist. README "Compatibility".
from at.errors import not_here


def _no(at, a=None):
    raise not_here()


COMMANDS = [
    # name, test, query, set, execute
    ("+CWSTARTSMART", None, None, _no, _no),  # SmartConfig (ESP-TOUCH, AirKiss)
    ("+CWSTOPSMART", None, None, None, _no),
    ("+WPS", None, None, _no, None),
    ("+CWJEAP", None, _no, _no, None),  # WPA2-Enterprise
]
