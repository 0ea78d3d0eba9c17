# Settings that survive a reset. RAM holds the live values; the file holds what
# AT+SYSSTORE allowed to be saved (or what is always saved, like AT+UART_DEF).
# Every write is atomic: a temporary file, then a rename, so a power cut leaves
# either the old file or the new one. A corrupt file means factory defaults and
# a line on the log port, never a crash loop.
import json
import os

FILE = "at_config.json"

DEFAULTS = {
    "sysstore": 1,
    "sysmsg": 0,
    "cwmode": 1,
    "cwautoconn": 1,
    "uart_def": [115200, 8, 1, 0, 0],
    "ap": None,  # last joined AP: [ssid, password, bssid]
    "cipv6": 0,
    "cipreconnintv": 1,
    "transintvl": 20,
    "cipdns_on": 0,
    "cipdns": None,
    "cwreconncfg": [0, 0],  # AT+CWRECONNCFG <interval_second>,<repeat_count> (CWJAP's reconn_interval too)
    "cwdhcp": 3,  # AT+CWDHCP <state>: bit 0 station DHCP, bit 1 soft-AP DHCP server
    "cwsap": None,  # AT+CWSAP [ssid, pwd, channel, ecn, max conn, hidden]; None: the chip's default
    "cipstamac": None,  # AT+CIPSTAMAC "xx:xx:xx:xx:xx:xx"; None: the factory MAC
    "ota_server": ["", 80, "", 0],  # AT+CIUPDATESRV: host, port, path, ssl port (0: none)
}


def _ap_ok(v):
    # [ssid, password, bssid or None, then optional ints (AT+CWJAP's options)]
    return v is None or (isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)
                         and isinstance(v[1], str) and (v[2] is None or isinstance(v[2], str))
                         and all(isinstance(x, int) for x in v[3:]))


SHAPES = {"ap": _ap_ok}


def _fits(v, default):
    """Is v the same kind of value as the default (an int, a list of ints)?"""
    if default is None:
        return True  # no default to compare with
    if isinstance(default, list):
        return isinstance(v, list) and len(v) == len(default) and all(
            _fits(x, y) for x, y in zip(v, default))
    return type(v) is type(default)  # bool is not int here


class Store:
    def __init__(self, log=None, path=FILE):
        self.path = path
        self.log = log
        self.saved = self._load()
        self.ram = dict(DEFAULTS)
        self.ram.update(self.saved)

    def _load(self):
        try:
            with open(self.path) as f:
                d = json.load(f)
            if not isinstance(d, dict):
                raise ValueError("not an object")
        except OSError:
            return {}
        except Exception as e:  # ValueError, syntax errors of a half-written file
            if self.log:
                self.log.write("at: %s is corrupt (%r); using factory defaults\n" % (self.path, e))
            return {}
        # A value of the wrong shape (a hand-edited or foreign file) would crash the
        # commands that read it at every boot: drop it, keep the rest.
        for k in list(d):
            check = SHAPES.get(k)
            if not (check(d[k]) if check else _fits(d[k], DEFAULTS.get(k))):
                if self.log:
                    self.log.write("at: %s: bad value for %s (%r); using its default\n" % (self.path, k, d[k]))
                del d[k]
        return d

    def get(self, key):
        return self.ram.get(key, DEFAULTS.get(key))

    def set(self, key, value, always=False):
        """Set a value; save it when AT+SYSSTORE=1 (or always, for e.g. AT+UART_DEF)."""
        self.ram[key] = value
        if (always or self.ram["sysstore"]) and self.saved.get(key, DEFAULTS.get(key)) != value:
            self.saved[key] = value
            self._write()

    def _write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.saved, f)
        os.rename(tmp, self.path)

    def erase(self):
        """AT+RESTORE: forget everything saved."""
        self.saved = {}
        try:
            os.remove(self.path)
        except OSError:
            pass
