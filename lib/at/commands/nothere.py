# ESP-AT commands this firmware cannot serve, because MicroPython has no API for
# them on any port (no SmartConfig, WPS or WPA2-Enterprise in network.WLAN): they
# answer ERROR with ERR CODE 0x010a0057 ("not supported here", at AT+SYSLOG=1)
# instead of looking like commands that do not exist. README "Compatibility".
from at.errors import not_here
from at.commands import row


def _no(eng, a=None):
    raise not_here()


COMMANDS = [
    row("+CWSTARTSMART", set=_no, execute=_no),  # SmartConfig (ESP-TOUCH, AirKiss)
    row("+CWSTOPSMART", execute=_no),
    row("+WPS", set=_no),
    row("+CWJEAP", query=_no, set=_no),  # WPA2-Enterprise
]
