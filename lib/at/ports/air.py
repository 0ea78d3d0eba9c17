# The simulated air of the virtual board: the access points in range, a JSON list
# (README.md, "The virtual board", documents the fields). $VBOARD_APS names the
# list (tools/aps.json); while the "live" file $VBOARD_APS_LIVE (aps_live.json in
# the current folder, the board's flash) exists, it replaces the list, so a test
# can take an AP away and bring it back while the board runs. Shared by the unix
# port's Radio (lib/at/ports/unix.py) and the ESP32 twin's network module
# (tools/twin/network.py); never deployed to a real board (tools/deploy.py).
import json
import os


class Air:
    def __init__(self, path=None, live=None, convert=None):
        """convert: entry -> what read() lists instead of the JSON object (the
        parsed objects are then dropped: a dozen fields per AP cost heap)."""
        self.path = path or os.getenv("VBOARD_APS") or "aps.json"
        self.live = live or os.getenv("VBOARD_APS_LIVE") or "aps_live.json"
        self.convert = convert
        self._sig = None
        self.aps = []
        self.read()

    def read(self):
        """The APs in the air now: one stat() per file, read again only when the
        file in use changed (path, inode, size or mtime); a new list object then.
        A file that does not parse (half written) keeps the last list until the
        next look."""
        for path in (self.live, self.path):
            try:
                st = os.stat(path)
            except OSError:
                continue
            sig = (path, st[1], st[6], st[8])
            if sig != self._sig:
                try:
                    with open(path) as f:
                        aps = json.load(f)
                except (OSError, ValueError):
                    return self.aps
                self._sig = sig
                aps = [a for a in aps if isinstance(a, dict) and "ssid" in a and "bssid" in a] \
                    if isinstance(aps, list) else []
                self.aps = [self.convert(a) for a in aps] if self.convert else aps
            return self.aps
        self._sig = None
        self.aps = []
        return self.aps
