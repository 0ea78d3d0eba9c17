# The ESP32 port's network module (WLAN only), for lib/at/ports/esp32.py under
# MicroPython's unix port: the unit tests' scripted world, and the twin's live
# air. It copies ports/esp32/network_wlan.c (v1.27.0 line numbers; the code is
# the same at v1.24.1..v1.28.0 apart from the constants noted below), the
# ipconfig/ifconfig of network_common.c and the module functions of
# extmod/modnetwork.c:
# - One driver state per interface (the C statics, network_wlan.c 58-80): WLAN(id)
#   is the interface's one object in C (here objects of one interface compare
#   equal), ValueError for another id (257-270).
# - active() sets the Wi-Fi mode; both off is esp_wifi_stop() (272-307). STA_START
#   resets the retry counter (95-99); stopping the STA leaves the AP (ASSOC_LEAVE).
# - connect(ssid, key, *, bssid=6 bytes) (310-357): ValueError for a bssid of
#   another length; the config is stored, the retry counter reset, then
#   esp_wifi_connect(), which fails while an attempt is in progress ("sta is
#   connecting, return error": ESP_ERR_WIFI_CONN, OSError "Wifi Internal Error",
#   network_common.c 62-63; micropython#17661) and without a started STA.
# - Every STA_DISCONNECTED event stores its reason and, while a connection is
#   requested and the STA is up, connects again: for ever, or until
#   config(reconnects=n) retries are used up (109-169).
# - status() (367-403): STAT_GOT_IP while there is an address; else the reason for
#   the four "no AP" reasons and AUTH_FAIL/CONNECTION_FAIL (as STAT_WRONG_PASSWORD);
#   STAT_IDLE after ASSOC_LEAVE (our own disconnect); STAT_CONNECTING while a
#   requested connection has retries left; STAT_IDLE with no reason; else the raw
#   reason. The reason is cleared only by GOT_IP (184-189): a new attempt first
#   sees the old one. status('rssi') needs the STA and an association (OSError
#   "Wifi Not Connected", esp_wifi_sta_get_ap_info); status('stations') needs the
#   AP and gives 1-tuples (mac,) (407-420).
# - scan() needs the STA (OSError "STA must be active"), blocks, and gives
#   (ssid, bssid, channel, rssi, authmode, False): hidden APs with an empty SSID
#   (show_hidden), the hidden flag always False (437-477, 471).
# - isconnected(): STA has an address; AP has a station (480-489).
# - config() (492-741): keyword or one query; interface checks after the value is
#   applied ("STA required"/"AP required", require_if 207-212); no 'key' query;
#   'channel' is the radio's channel for both interfaces.
# - ipconfig()/ifconfig() (network_common.c 97-158, 210-327): dhcp4 on STA only,
#   'addr4', 'gw4'; anything else, 'addr6' included (no IPv6 query at these tags),
#   raises ValueError("unexpected key") (242-245).
# - network.hostname() (32 bytes, default "mpy-esp32", mpconfigport.h 170) and
#   network.country() (two characters, default "XX"), which the ESP32 port only
#   stores (extmod/modnetwork.c 124-155): nothing hands the country to the radio,
#   so ESP-IDF's default "01" (channels 1-11) stays.
# What the driver does that network_wlan.c only passes through, from ESP-IDF v5.x:
# the default fast scan joins the first AP found scanning up from channel 1; with
# a password of 8 bytes or more the authmode threshold defaults to WPA2
# (wifi_scan_threshold_t, esp_wifi_types_generic.h), so WEP/WPA/open APs are
# then not joined (NO_AP_FOUND_IN_AUTHMODE_THRESHOLD); a wrong password ends an
# attempt with AUTH_FAIL (which status() names STAT_WRONG_PASSWORD; a chip may
# also end it with a handshake timeout), an AP refusing the association with
# ASSOC_FAIL, a lost AP with BEACON_TIMEOUT. network_wlan.c ignores IP_EVENT_STA_LOST_IP (184-205):
# once GOT_IP, a DHCP server that goes away changes nothing while associated.
#
# Two worlds:
# - Scripted (the unit tests): the module globals APS (bssid as 6 bytes, authmode),
#   DHCP, FAIL (a reason every attempt ends with), STEPS (status() calls per stage
#   of a join), IP, MACS and STATIONS; drop() is a beacon timeout.
# - Live (the twin: $VBOARD_APS is set): the air of lib/at/ports/air.py, the same
#   files and fields the unix port's Radio reads (README.md, "The virtual board"),
#   looked at on every call (a stat(); `ecn` is the authmode). A join takes wall-clock time, as on a chip:
#   associated after JOIN_MS, an address DHCP_MS later, a failed attempt reported
#   after FAIL_MS (and the next one begins). An AP that leaves the air, changes
#   channel, SSID or password, or starts refusing is a beacon timeout at once (a
#   chip notices after its inactive time, ~6 s). The station address is $VBOARD_IP
#   (127.0.0.1), mask 255.0.0.0, gateway and DNS the same. No station ever joins
#   the soft-AP.
import os
import time

_RELEASE = tuple(int(x) for x in (os.getenv("TWIN_MPY") or "1.27").split(".")[:2])

# modnetwork_globals.h (v1.27.0 18-39, 75-90): the module-level names
STA_IF = 0  # WIFI_IF_STA
AP_IF = 1
MODE_11B = 1
MODE_11G = 2
MODE_11N = 4
MODE_LR = 8
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4
AUTH_WPA2_ENTERPRISE = 5
AUTH_WPA3_PSK = 6
AUTH_WPA2_WPA3_PSK = 7
AUTH_WAPI_PSK = 8
AUTH_OWE = 9
AUTH_WPA3_ENT_192 = 10
AUTH_WPA3_EXT_PSK = 11
AUTH_WPA3_EXT_PSK_MIXED_MODE = 12
STAT_IDLE = 1000  # ports/esp32/modnetwork.h v1.27.0:64-66
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
# ESP-IDF wifi_err_reason_t values, as the ESP32 build exports them.
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202  # WIFI_REASON_AUTH_FAIL
STAT_ASSOC_FAIL = 203
if _RELEASE >= (1, 25):
    STAT_CONNECT_FAIL = 203  # added in v1.25.0 (modnetwork_globals.h v1.27.0:89)
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
STATIONS = []  # [(mac bytes, ip str or None)]: status('stations') reports the MACs

# -- the live air (the twin) -------------------------------------------------------------------
_LIVE = bool(os.getenv("VBOARD_APS"))
JOIN_MS = 100  # connect() -> associated
DHCP_MS = 100  # associated -> address
FAIL_MS = 300  # connect() -> a failed attempt's STA_DISCONNECTED
SCAN_MS = 11 * 120  # channels 1-11 at ESP-IDF's default 120 ms active dwell
_air = None


def _mac(s):
    try:
        b = bytes(int(x, 16) for x in s.split(":"))
    except (ValueError, AttributeError):
        return b""
    return b if len(b) == 6 else b""


def _entry(a):
    """An entry of the air in this module's form (only what differs from the defaults)."""
    ap = {"ssid": a["ssid"], "bssid": _mac(a["bssid"]), "channel": a.get("channel", 1),
          "rssi": a.get("rssi", -50), "authmode": a.get("ecn", 0)}
    for k, default in (("password", ""), ("hidden", False), ("dhcp", True), ("refuse", False)):
        v = a.get(k, default)
        if v != default:
            ap[k] = v
    return ap


if _LIVE:
    from at.ports.air import Air

    _air = Air(convert=_entry)
    APS = []  # the air replaces the script
    _ip = os.getenv("VBOARD_IP") or "127.0.0.1"
    IP = (_ip, "255.0.0.0", _ip, _ip)

_hostname = "mpy-esp32"  # MICROPY_PY_NETWORK_HOSTNAME_DEFAULT (ports/esp32/mpconfigport.h v1.27.0:170)
_country = "XX"  # mod_network_country_code (extmod/modnetwork.c v1.27.0:66)
_pm = 1  # WIFI_PS_MIN_MODEM, ESP-IDF's default
_txpower = 80  # esp_wifi_get_max_tx_power(): quarter dBm
_protocol = {STA_IF: 7, AP_IF: 7}  # 11b/g/n
_dhcp4 = True
_static = None  # STA (ip, mask, gw, dns) set by ifconfig()/ipconfig(): DHCP client stopped
_dns = "0.0.0.0"  # lwIP's dns_getserver(0)
_chan = 1  # cfg.sta.channel / the radio's channel while nothing decides it
# The soft-AP's wifi_config_t (ESP-IDF's defaults: ESP_ + the AP MAC's last bytes).
_ap = {"ssid": "ESP_000002", "key": "", "channel": 1, "security": 0, "max_clients": 4, "hidden": False}
_ap_ip = ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")

# -- driver state (the statics of network_wlan.c 58-80) ------------------------------------------
_active = {STA_IF: False, AP_IF: False}
_st = {
    "connected": False,  # wifi_sta_connected: associated and has an IP
    "reason": 0,  # wifi_sta_disconn_reason
    "requested": False,  # wifi_sta_connect_requested
    "conf_reconnects": 0,  # 0 = for ever
    "reconnects": 0,
    "ap": None,  # the AP we are associated with
    "phase": None,  # None, "join", "fail" (live: the attempt failed, reported at "due") or "dhcp"
    "left": 0,  # scripted: status() calls until the phase ends
    "due": 0,  # live: ticks_ms when the phase ends
    "why": 0,  # live: the reason a failed attempt will report
    "ssid": "",
    "key": "",
    "bssid": None,
}
scans = []  # one entry per scan() call
connects = []  # (ssid, key, bssid) per connect() call


# -- the world ------------------------------------------------------------------------------------
def _aps():
    """The APs in range: APS, or the live air in the same form."""
    return _air.read() if _LIVE else APS


def _heard(ap):
    # ESP-IDF's default country "01": channels 1-11 (the port never sets another).
    return 1 <= ap["channel"] <= 11


def _pick():
    """One esp_wifi_connect() attempt in the air: (ap, 0) or (None, reason)."""
    if FAIL is not None:
        return None, FAIL
    found = [ap for ap in _aps() if ap["ssid"] == _st["ssid"] and _heard(ap)
             and (_st["bssid"] is None or ap["bssid"] == _st["bssid"])]
    if not found:
        return None, STAT_NO_AP_FOUND
    if len(_st["key"]) >= 8:  # the threshold defaults to WPA2 (see the header)
        found = [ap for ap in found if ap.get("authmode", 3) >= AUTH_WPA2_PSK]
        if not found:
            return None, STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD
    ap = found[0]
    for a in found:  # fast scan: the first found, channel by channel
        if a["channel"] < ap["channel"]:
            ap = a
    if ap.get("refuse"):
        return None, STAT_ASSOC_FAIL
    if ap.get("authmode", 3) and ap.get("password", "") != _st["key"]:
        return None, STAT_WRONG_PASSWORD
    return ap, 0


def _gets_ip(ap):
    if _static is not None:
        return True  # esp-netif posts GOT_IP for a static address at association
    return _dhcp4 and DHCP and ap.get("dhcp", True)


def _start(at=None):
    """esp_wifi_connect(): an attempt begins."""
    _st["phase"] = "join"
    _st["left"] = STEPS
    _st["due"] = time.ticks_add(time.ticks_ms() if at is None else at, JOIN_MS)


def _disconnected(reason, at=None):
    """The STA_DISCONNECTED event (network_wlan.c 109-169)."""
    global _dns
    _st["reason"] = reason
    _st["connected"] = False
    _st["ap"] = None
    _st["phase"] = None
    if _static is None:
        _dns = "0.0.0.0"
    if _st["requested"] and _active[STA_IF]:
        conf = _st["conf_reconnects"]
        if conf:
            _st["reconnects"] += 1
            if _st["reconnects"] >= conf:
                return
        _start(at)  # the driver calls esp_wifi_connect() again


def _leave():
    """STA_DISCONNECTED with ASSOC_LEAVE: our own leave, never followed by a retry
    (disconnect() cleared the request first; a stopped STA fails the mode check)."""
    global _dns
    _st["reason"] = _ASSOC_LEAVE
    _st["connected"] = False
    _st["ap"] = None
    _st["phase"] = None
    if _static is None:
        _dns = "0.0.0.0"


def _step(at):
    """The phase in progress ends (at: when, live; None, scripted)."""
    global _dns
    ph = _st["phase"]
    if ph == "join":
        ap, why = _pick()
        if why:
            if at is None:
                _disconnected(why)
            else:
                _st["phase"] = "fail"
                _st["why"] = why
                _st["due"] = time.ticks_add(at, FAIL_MS - JOIN_MS)
        else:
            _st["ap"] = ap
            _st["phase"] = "dhcp"
            _st["left"] = STEPS
            if at is not None:
                _st["due"] = time.ticks_add(at, DHCP_MS)
    elif ph == "fail":
        _disconnected(_st["why"], at)
    elif ph == "dhcp":
        if _gets_ip(_st["ap"]):
            _st["connected"] = True
            _st["reason"] = 0  # IP_EVENT_STA_GOT_IP clears it (184-189)
            _st["phase"] = None
            _dns = (_static or IP)[3]
        elif at is not None:
            _st["due"] = time.ticks_add(at, 100)  # no lease yet: look again later


def _watch(now=None):
    """Is the AP we are associated with still there, as it was? Else a beacon timeout."""
    ap = _st["ap"]
    if ap is None:
        return
    for a in _aps():
        if a["bssid"] == ap["bssid"]:
            if a["ssid"] == ap["ssid"] and a["channel"] == ap["channel"] and _heard(a) \
                    and not a.get("refuse") and (not a.get("authmode", 3) or a.get("password", "") == _st["key"]):
                _st["ap"] = a  # RSSI and DHCP as the air says now
                return
            break
    _disconnected(STAT_BEACON_TIMEOUT, now)


def _advance(step=True):
    """Bring the driver up to date. Live: to the wall clock, on every call.
    Scripted: one step per status() call (step=True), nothing otherwise."""
    if _LIVE:
        now = time.ticks_ms()
        _watch(now)
        n = 0
        while _st["phase"] is not None and time.ticks_diff(now, _st["due"]) >= 0:
            _step(_st["due"])
            n += 1
            if n > 64:  # a long silence: go on from now
                _st["due"] = now
        return
    if not step:
        return
    _watch()
    if _st["phase"] is None:
        return
    _st["left"] -= 1
    if _st["left"] > 0:
        return
    _step(None)


def drop(reason=STAT_BEACON_TIMEOUT):
    """The AP goes away (test side)."""
    _disconnected(reason)


# -- module functions --------------------------------------------------------------------------
def hostname(*args):
    """extmod/modnetwork.c v1.27.0:141-153."""
    global _hostname
    if not args:
        return _hostname
    if len(args[0]) > 32:  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
        raise ValueError()
    _hostname = args[0]


def country(*args):
    """extmod/modnetwork.c v1.27.0:124-137: kept, never applied (see the header)."""
    global _country
    if not args:
        return _country
    if len(args[0]) != 2:
        raise ValueError()
    _country = args[0]


def ipconfig(*args, **kw):
    """network.ipconfig(): 'dns' only (network_common.c v1.27.0:160-207)."""
    global _dns
    if not kw:
        if len(args) != 1:
            raise TypeError("must query one param")
        if args[0] == "dns":
            return _dns
        raise ValueError("unexpected key")
    if args:
        raise TypeError("can't specify pos and kw args")
    for k, v in kw.items():
        if k != "dns":
            raise ValueError("unexpected key")
        _dns = v


def phy_mode(*args):
    return None  # network_common.c v1.27.0:338-340


def _wifi_started():
    return _active[STA_IF] or _active[AP_IF]


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF
    SEC_OPEN = 0
    SEC_WEP = 1
    SEC_WPA = 2
    SEC_WPA2 = 3
    SEC_WPA_WPA2 = 4
    SEC_WPA2_ENT = 5
    SEC_WPA3 = 6
    SEC_WPA2_WPA3 = 7
    SEC_WAPI = 8
    SEC_OWE = 9
    if _RELEASE >= (1, 25):  # network_wlan.c v1.25.0 (not in v1.24.1)
        SEC_WPA3_ENT_192 = 10
        SEC_WPA3_EXT_PSK = 11
        SEC_WPA3_EXT_PSK_MIXED_MODE = 12
    if _RELEASE >= (1, 27):  # network_wlan.c v1.27.0:783-786
        PROTOCOL_DEFAULT = 7
        PROTOCOL_LR = 8
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        self.if_id = interface

    def __eq__(self, other):
        return isinstance(other, WLAN) and other.if_id == self.if_id

    def __hash__(self):
        return self.if_id

    def active(self, *args):
        _advance(False)
        if args:
            on = bool(args[0])
            if self.if_id == STA_IF and on and not _active[STA_IF]:
                _st["reconnects"] = 0  # WIFI_EVENT_STA_START (95-99)
            if self.if_id == STA_IF and not on and _active[STA_IF]:
                if _st["ap"] is not None or _st["phase"] is not None:
                    _leave()  # the mode no longer has STA: no reconnect (153-155)
            _active[self.if_id] = on
        return _active[self.if_id]

    def connect(self, *args, bssid=None):
        # Either interface's object configures the STA: the C code does not look (310-357).
        _advance(False)
        if len(args) > 2:
            raise TypeError("function takes 3 positional arguments but %d were given" % (len(args) + 1))
        ssid = args[0] if args else None
        key = args[1] if len(args) > 1 else None
        if args:
            # a new wifi_config_t, only when positional arguments are given: what
            # is None or missing is cleared (322-345)
            if bssid is not None and len(bssid) != 6:
                raise ValueError()
            _st["ssid"] = ssid if ssid is not None else ""
            _st["key"] = key if key is not None else ""
            _st["bssid"] = bytes(bssid) if bssid is not None else None
        connects.append((ssid, key, bssid))
        _st["reconnects"] = 0
        if not _wifi_started():
            raise OSError("Wifi Not Started")  # esp_wifi_connect: ESP_ERR_WIFI_NOT_STARTED
        if not _active[STA_IF]:
            raise OSError("Wifi Invalid Mode")  # ESP_ERR_WIFI_MODE
        if _st["phase"] in ("join", "fail"):
            raise OSError("Wifi Internal Error")  # "sta is connecting, return error"
        if _st["ap"] is not None:
            _leave()  # the driver leaves the AP for the new attempt
        _st["requested"] = True
        _start()

    def disconnect(self):
        _advance(False)
        _st["requested"] = False
        if not _wifi_started():
            raise OSError("Wifi Not Started")
        if _st["ap"] is not None or _st["phase"] is not None:
            _leave()

    def isconnected(self):
        _advance(False)
        if self.if_id == STA_IF:
            return _st["connected"]
        return bool(_active[AP_IF] and STATIONS)

    def status(self, param=None):
        if param is not None:
            _advance(False)
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
                    raise OSError("Wifi Invalid Mode")  # esp_wifi_ap_get_sta_list: ESP_ERR_WIFI_MODE
                return [(s[0],) for s in STATIONS]
            raise ValueError("unknown status param")
        if self.if_id != STA_IF:
            return None
        _advance(True)
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
        if _LIVE:
            time.sleep_ms(SCAN_MS)  # esp_wifi_scan_start(&config, 1): blocking
        _advance(False)
        return [(b"" if ap.get("hidden") else ap["ssid"].encode(), ap["bssid"], ap["channel"], ap["rssi"],
                 ap.get("authmode", 3), False) for ap in _aps() if _heard(ap)]

    # -- addresses (network_common.c) ---------------------------------------------------------
    def _addr(self):
        if self.if_id == AP_IF:
            return _ap_ip
        _advance(False)
        if _static is not None:
            return _static
        return IP if _st["connected"] else ("0.0.0.0",) * 4

    def ifconfig(self, *args):
        global _static, _dhcp4, _ap_ip
        if not args:
            return self._addr()
        a = args[0]
        if isinstance(a, (tuple, list)):
            if len(a) != 4:
                raise ValueError("requested length 4 but object has length %d" % len(a))
            if self.if_id == STA_IF:
                _dhcp4 = False  # esp_netif_dhcpc_stop (130-137)
                _static = tuple(a)
            else:
                _ap_ip = tuple(a)
            return None
        if self.if_id != STA_IF or a != "dhcp":
            raise ValueError("invalid arguments")
        _dhcp4 = True
        _static = None

    def ipconfig(self, *args, **kw):
        global _dhcp4, _static
        if not kw:
            if len(args) != 1:
                raise TypeError("must query one param")
            p = args[0]
            if p == "dhcp4" and self.if_id == STA_IF:
                return _dhcp4
            if p == "addr4":
                return self._addr()[:2]
            if p == "gw4":
                return self._addr()[2]
            raise ValueError("unexpected key")  # addr6 too: no IPv6 query on the ESP32 port
        if args:
            raise TypeError("can't specify pos and kw args")
        ip = list(self._addr())
        touched = False
        for k, v in kw.items():
            if k == "dhcp4":
                if self.if_id != STA_IF:
                    raise ValueError("unexpected key")
                _dhcp4 = bool(v)
                if _dhcp4:
                    _static = None
            elif k == "addr4":
                if isinstance(v, str):
                    if "/" in v:
                        v, bits = v.split("/")
                        m = (0xFFFFFFFF << (32 - int(bits))) & 0xFFFFFFFF
                        ip[1] = "%d.%d.%d.%d" % (m >> 24, (m >> 16) & 255, (m >> 8) & 255, m & 255)
                    ip[0] = v
                else:
                    ip[0], ip[1] = v
                touched = True
            elif k == "gw4":
                ip[2] = v
                touched = True
            else:
                raise ValueError("unexpected key")
        if touched:
            self.ifconfig(tuple(ip))

    # -- config (network_wlan.c 492-741) -------------------------------------------------------
    def config(self, *args, **kw):
        global _pm, _txpower, _chan
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        if kw:
            ap = dict(_ap)
            for k, v in kw.items():
                need = -1
                if k == "mac":
                    if len(v) != 6:
                        raise ValueError("invalid buffer length")
                    MACS[self.if_id] = bytes(v)
                elif k in ("ssid", "essid", "key", "password", "security", "authmode", "max_clients",
                           "hidden"):
                    need = AP_IF
                    k = {"essid": "ssid", "password": "key", "authmode": "security"}.get(k, k)
                    ap[k] = bool(v) if k == "hidden" else v
                elif k == "channel":
                    if self.if_id == AP_IF:
                        ap["channel"] = v
                    else:
                        _chan = v
                elif k in ("hostname", "dhcp_hostname"):
                    hostname(v)
                elif k == "reconnects":
                    _st["conf_reconnects"] = 0 if v == -1 else v + 1
                    need = STA_IF
                elif k == "txpower":
                    p = int(v * 4)
                    if not 8 <= p <= 84:
                        raise RuntimeError("Wifi Unknown Error 0x%04x" % 0x102)  # ESP_ERR_INVALID_ARG
                    _txpower = p
                elif k == "protocol":
                    _protocol[self.if_id] = v
                elif k == "pm":
                    _pm = v
                else:
                    raise ValueError("unknown config param")
                if need >= 0 and need != self.if_id:
                    raise OSError("STA required" if need == STA_IF else "AP required")
            _ap.update(ap)
            return None
        if len(args) != 1:
            raise TypeError("can query only one param")
        p = args[0]
        need = -1
        if p == "mac":
            return MACS[self.if_id]
        if p in ("ssid", "essid"):
            val = _st["ssid"] if self.if_id == STA_IF else _ap["ssid"]
        elif p == "hidden":
            need, val = AP_IF, _ap["hidden"]
        elif p in ("security", "authmode"):
            need, val = AP_IF, _ap["security"]
        elif p == "channel":
            _advance(False)
            if _st["ap"] is not None:
                val = _st["ap"]["channel"]  # the radio follows the AP joined
            elif _active[AP_IF]:
                val = _ap["channel"]
            else:
                val = _chan
        elif p in ("hostname", "dhcp_hostname"):
            need, val = STA_IF, _hostname
        elif p == "max_clients":
            val = _ap["max_clients"]
        elif p == "reconnects":
            need, val = STA_IF, _st["conf_reconnects"] - 1
        elif p == "txpower":
            val = _txpower * 0.25
        elif p == "protocol":
            val = _protocol[self.if_id]
        elif p == "pm":
            val = _pm
        else:
            raise ValueError("unknown config param")
        if need >= 0 and need != self.if_id:
            raise OSError("STA required" if need == STA_IF else "AP required")
        return val
