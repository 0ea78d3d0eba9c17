# A fake of the ESP32 port's `network` module (WLAN only), for
# lib/at/ports/esp32.py under MicroPython's unix port. It models the behaviour
# of ports/esp32/network_wlan.c and docs/library/network.WLAN.rst:
# - WLAN objects share one driver state per interface (C statics);
# - connect() needs an active STA, takes bssid as 6 bytes, and asks for
#   automatic reconnection (for ever unless config(reconnects=n));
# - status() reports STAT_GOT_IP while there is an IP, else the last
#   disconnect reason for the few reasons it names (the reason is kept until the
#   next IP, so a new attempt first sees the old one), STAT_IDLE after our own
#   disconnect (reason ASSOC_LEAVE) or with no activity, STAT_CONNECTING while a
#   requested connection is retried, else the raw ESP-IDF reason;
# - status('rssi') raises OSError unless associated; scan() needs an active STA
#   and reports a hidden AP with an empty SSID (show_hidden);
# - the soft-AP: config(ssid=, key=, channel=, security=, max_clients=, hidden=)
#   on AP_IF only (OSError "AP required" elsewhere), queried back except the key
#   (network_wlan.c has no 'key' query); status('stations') lists STATIONS as
#   (mac, ip or None) while the AP is active, OSError otherwise;
# - config(mac=) takes 6 bytes (ValueError else); config(pm=) the PM_* values;
# - ipconfig(dhcp4=) / ipconfig('dhcp4') on STA_IF only (ValueError "unexpected
#   key" elsewhere, as network_common.c);
# - network.hostname() (32 bytes at most, default "mpy-esp32") and
#   network.country() (two characters, default "XX"), which the ESP32 port only
#   stores: nothing here applies the country to the radio either.
#
# The test script sets the world: APS (the access points in range), DHCP
# (whether the AP hands out an address), FAIL (a disconnect reason every
# attempt ends with), STEPS (status() calls per stage of a join) and STATIONS
# (stations joined to the soft-AP).

STA_IF = 0
AP_IF = 1

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
# ESP-IDF wifi_err_reason_t values, as the ESP32 build exports them.
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202  # WIFI_REASON_AUTH_FAIL
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = 210
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = 211
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = 212
_ASSOC_LEAVE = 8
_CONNECTION_FAIL = 205

# -- the world, chosen by the test script ---------------------------------------------------
APS = [
    {"ssid": "lab", "bssid": b"\x24\x0a\xc4\x11\x22\x33", "channel": 6, "rssi": -42,
     "password": "labpass", "authmode": 3},
]
DHCP = True
FAIL = None
STEPS = 1
IP = ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
MACS = {STA_IF: b"\x24\x0a\xc4\x00\x00\x01", AP_IF: b"\x24\x0a\xc4\x00\x00\x02"}
STATIONS = []  # [(mac bytes, ip str or None)]

_hostname = "mpy-esp32"  # MICROPY_PY_NETWORK_HOSTNAME_DEFAULT (ports/esp32/mpconfigport.h)
_country = "XX"  # mod_network_country_code
_pm = 1  # WIFI_PS_MIN_MODEM, ESP-IDF's default
_dhcp4 = True
# The soft-AP's wifi_config_t (ESP-IDF's defaults: ESP_ + the AP MAC's last bytes).
_ap = {"ssid": "ESP_000002", "key": "", "channel": 1, "security": 0, "max_clients": 4, "hidden": False}

# -- driver state (the statics of network_wlan.c) ----------------------------------------------
_active = {STA_IF: False, AP_IF: False}
_st = {
    "connected": False,  # wifi_sta_connected: associated and has an IP
    "reason": 0,  # wifi_sta_disconn_reason
    "requested": False,  # wifi_sta_connect_requested
    "conf_reconnects": 0,  # 0 = for ever
    "reconnects": 0,
    "ap": None,  # the AP we are associated with
    "phase": None,  # None, "join" or "dhcp"
    "left": 0,
    "ssid": "",
    "key": "",
    "bssid": None,
}
scans = []  # one entry per scan() call
connects = []  # (ssid, key, bssid) per connect() call


def _find():
    for ap in APS:
        if ap["ssid"] == _st["ssid"] and (_st["bssid"] is None or ap["bssid"] == _st["bssid"]):
            return ap
    return None


def _disconnected(reason):
    _st["reason"] = reason
    _st["connected"] = False
    _st["ap"] = None
    _st["phase"] = None
    if _st["requested"]:
        conf = _st["conf_reconnects"]
        _st["reconnects"] += 1
        if conf and _st["reconnects"] >= conf:
            return
        _st["phase"] = "join"  # the driver calls esp_wifi_connect() again
        _st["left"] = STEPS


def _advance():
    """One step of simulated time for a join in progress."""
    if _st["phase"] is None:
        return
    _st["left"] -= 1
    if _st["left"] > 0:
        return
    if _st["phase"] == "join":
        ap = _find()
        if FAIL is not None:
            _disconnected(FAIL)
        elif ap is None:
            _disconnected(STAT_NO_AP_FOUND)
        elif ap.get("password", "") != _st["key"]:
            _disconnected(STAT_WRONG_PASSWORD)
        else:
            _st["ap"] = ap
            _st["phase"] = "dhcp"
            _st["left"] = STEPS
    elif _st["phase"] == "dhcp" and DHCP:
        _st["connected"] = True
        _st["reason"] = 0
        _st["phase"] = None


def drop(reason=STAT_BEACON_TIMEOUT):
    """The AP goes away (test side)."""
    _disconnected(reason)


def hostname(*args):
    global _hostname
    if not args:
        return _hostname
    if len(args[0]) > 32:
        raise ValueError()
    _hostname = args[0]


def country(*args):
    global _country
    if not args:
        return _country
    if len(args[0]) != 2:
        raise ValueError()
    _country = args[0]


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF
    SEC_OPEN = 0
    SEC_WEP = 1
    SEC_WPA = 2
    SEC_WPA2 = 3
    SEC_WPA_WPA2 = 4
    SEC_WPA3 = 6
    SEC_WPA2_WPA3 = 7
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        self.if_id = interface

    def active(self, *args):
        if args:
            _active[self.if_id] = bool(args[0])
            if self.if_id == STA_IF and not args[0]:
                _st["connected"] = False
                _st["ap"] = None
                _st["phase"] = None
        return _active[self.if_id]

    def connect(self, ssid=None, key=None, *, bssid=None):
        if self.if_id != STA_IF or not _active[STA_IF]:
            raise OSError("Wifi Not Started")
        if bssid is not None and len(bssid) != 6:
            raise ValueError()
        if ssid is not None:
            _st["ssid"] = ssid
        if key is not None:
            _st["key"] = key
        _st["bssid"] = bssid
        connects.append((ssid, key, bssid))
        _st["reconnects"] = 0
        _st["requested"] = True
        _st["phase"] = "join"
        _st["left"] = STEPS

    def disconnect(self):
        _st["requested"] = False
        if _st["ap"] is not None or _st["phase"] is not None:
            _st["reason"] = _ASSOC_LEAVE  # the STA_DISCONNECTED event of our own leave
        _st["connected"] = False
        _st["ap"] = None
        _st["phase"] = None

    def isconnected(self):
        if self.if_id == STA_IF:
            return _st["connected"]
        return False

    def status(self, param=None):
        if param is not None:
            if param == "rssi":
                if self.if_id != STA_IF:
                    raise OSError("STA required")
                if _st["ap"] is None:
                    raise OSError("Wifi Not Connected")
                return _st["ap"]["rssi"]
            if param == "stations":
                if self.if_id != AP_IF:
                    raise OSError("AP required")
                if not _active[AP_IF]:
                    raise OSError("Wifi Not Started")  # esp_wifi_ap_get_sta_list: ESP_ERR_WIFI_MODE
                return [(m, ip) for m, ip in STATIONS]
            raise ValueError("unknown status param")
        if self.if_id != STA_IF:
            return None
        _advance()
        r = _st["reason"]
        if _st["connected"]:
            return STAT_GOT_IP
        if r in (STAT_NO_AP_FOUND, STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD,
                 STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD, STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY):
            return r
        if r in (STAT_WRONG_PASSWORD, _CONNECTION_FAIL):
            return STAT_WRONG_PASSWORD
        if r == _ASSOC_LEAVE:
            return STAT_IDLE
        conf = _st["conf_reconnects"]
        if _st["requested"] and (conf == 0 or _st["reconnects"] < conf):
            return STAT_CONNECTING
        if r == 0:
            return STAT_IDLE
        return r

    def scan(self):
        if not _active[STA_IF]:
            raise OSError("STA must be active")
        scans.append(1)
        return [(b"" if ap.get("hidden") else ap["ssid"].encode(), ap["bssid"], ap["channel"], ap["rssi"],
                 ap.get("authmode", 3), False) for ap in APS]

    def ipconfig(self, *args, **kw):
        global _dhcp4
        if self.if_id != STA_IF:
            raise ValueError("unexpected key")
        if kw:
            for k, v in kw.items():
                if k != "dhcp4":
                    raise NotImplementedError("the fake sets dhcp4 only")
                _dhcp4 = bool(v)
            return None
        if args[0] == "dhcp4":
            return _dhcp4
        raise ValueError("unexpected key")

    def ifconfig(self, *args):
        if args:
            raise NotImplementedError("the fake does not set addresses")
        if self.if_id == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        return IP if _st["connected"] else ("0.0.0.0",) * 4

    def config(self, *args, **kw):
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        global _pm
        if kw:
            ap = dict(_ap)
            for k, v in kw.items():
                if k == "reconnects":
                    _st["conf_reconnects"] = 0 if v == -1 else v + 1
                elif k == "mac":
                    if len(v) != 6:
                        raise ValueError("invalid buffer length")
                    MACS[self.if_id] = bytes(v)
                elif k in ("ssid", "essid", "key", "password", "security", "authmode", "max_clients",
                           "hidden"):
                    if self.if_id != AP_IF:
                        raise OSError("AP required")
                    k = {"essid": "ssid", "password": "key", "authmode": "security"}.get(k, k)
                    ap[k] = bool(v) if k == "hidden" else v
                elif k == "channel":
                    if self.if_id == AP_IF:
                        ap["channel"] = v
                elif k == "pm":
                    _pm = v
                elif k == "hostname":
                    hostname(v)
                elif k != "txpower":
                    raise ValueError("unknown config param")
            _ap.update(ap)
            return None
        if len(args) != 1:
            raise TypeError("can query only one param")
        p = args[0]
        if p == "mac":
            return MACS[self.if_id]
        if p in ("ssid", "essid"):
            return _st["ssid"] if self.if_id == STA_IF else _ap["ssid"]
        if p in ("hidden", "security", "authmode", "max_clients"):
            if self.if_id != AP_IF and p != "max_clients":
                raise OSError("AP required")
            return _ap[{"authmode": "security"}.get(p, p)]
        if p == "pm":
            return _pm
        if p == "hostname":
            return _hostname
        if p == "channel":
            if self.if_id == AP_IF:
                return _ap["channel"]
            return _st["ap"]["channel"] if _st["ap"] else 1
        if p == "reconnects":
            return _st["conf_reconnects"] - 1
        raise ValueError("unknown config param")
