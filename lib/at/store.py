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
}


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
            return d
        except OSError:
            return {}
        except Exception as e:  # ValueError, syntax errors of a half-written file
            if self.log:
                self.log.write("at: %s is corrupt (%r); using factory defaults\n" % (self.path, e))
            return {}

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
