# The Wi-Fi commands TCP/IP needs first (Wi-Fi_AT_Commands.rst): AT+CWMODE,
# AT+CWJAP, AT+CWQAP, AT+CWSTATE, AT+CIPSTA?, AT+CWAUTOCONN. The radio itself is
# the board's (network.WLAN on the ESP32, a simulated AP list on the virtual board).
import time
from at import parse
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID

# Radio states, as every port's radio.status() reports them.
IDLE = 0
CONNECTING = 1
ASSOCIATED = 2
GOT_IP = 3
WRONG_PASSWORD = -2
NO_AP = -3
FAILED = -4

POLL_MS = 100
JAP_OPTS = (1, 3, 0, 1)  # defaults of reconn_interval, listen_interval, scan_mode, pmf


class Wifi:
    """Watches the radio and prints WIFI CONNECTED / GOT IP / DISCONNECT on changes."""

    def __init__(self, at):
        self.at = at
        self.radio = at.board.radio
        self.state = 0  # AT+CWSTATE's <state>
        self.ssid = ""
        self._last = IDLE
        self._timer = None
        # AT+CWJAP's <reconn_interval>,<listen_interval>,<scan_mode>,<pmf>, which
        # AT+CWJAP? reports back.
        self.opts = list(JAP_OPTS)

    def has_ip(self):
        return self._last == GOT_IP

    def start(self, ssid, pwd, bssid):
        if self._last in (ASSOCIATED, GOT_IP):
            self.radio.disconnect()
            self._last = IDLE
            self.at.reply("WIFI DISCONNECT")
        self.ssid = ssid
        self.state = 3
        self.radio.connect(ssid, pwd, bssid)
        self._watch()

    def stop(self):
        was = self._last in (ASSOCIATED, GOT_IP)
        had_ip = self._last == GOT_IP
        self.radio.disconnect()
        self._last = IDLE
        self.state = 4 if was or self.state else 0
        if had_ip:
            self._down()
        return was

    def _down(self):
        """The station lost its address: links without AT+CIPCONNPERSIST close."""
        net = getattr(self.at, "net", None)
        if net is not None:
            net.netif_down()

    def ip6(self):
        """(link-local, global) IPv6 addresses when AT+CIPV6=1 and joined, else None."""
        if not self.at.cfg.get("cipv6") or self._last != GOT_IP:
            return None
        return self.radio.ip6()

    def tick(self):
        """Read the radio; report changes; return its status."""
        st = self.radio.status()
        last = self._last
        if st != last:
            if st in (ASSOCIATED, GOT_IP) and last not in (ASSOCIATED, GOT_IP):
                self.at.reply("WIFI CONNECTED")
            if st == GOT_IP:
                self.at.reply("WIFI GOT IP")
                self.state = 2
                self._last = st
                v6 = self.ip6()
                if v6:
                    self.at.reply("WIFI GOT IPv6 LL")
                    if v6[1]:
                        self.at.reply("WIFI GOT IPv6 GL")
            elif st == ASSOCIATED:
                self.state = 1
            elif last in (ASSOCIATED, GOT_IP):
                self.at.reply("WIFI DISCONNECT")
                self.state = 4 if st != CONNECTING else 3
                if last == GOT_IP:
                    self._last = st
                    self._down()
            elif st < 0:
                self.state = 4
            self._last = st
        return st

    def _watch(self):
        if self._timer is None:
            self._timer = self.at.loop.later(POLL_MS, self._poll)

    def _poll(self):
        self._timer = None
        st = self.tick()
        if st in (CONNECTING, ASSOCIATED, GOT_IP):
            self._watch()


def _saved_opts(ap):
    o = ap[3:7]
    return o if len(o) == 4 else list(JAP_OPTS)


def init(at):
    at.wifi = Wifi(at)
    ap = at.cfg.get("ap")
    if ap:
        at.wifi.opts = _saved_opts(ap)
    if ap and at.cfg.get("cwautoconn") and at.cfg.get("cwmode") in (1, 3):
        at.wifi.start(ap[0], ap[1], ap[2])


def q_cwmode(at):
    at.reply("+CWMODE:%d" % at.cfg.get("cwmode"))


def s_cwmode(at, a):
    parse.count(a, 1, 2)
    mode = parse.num(a, 0, 0, 3)
    auto = parse.num(a, 1, 0, 1, 1)
    old = at.cfg.get("cwmode")
    at.cfg.set("cwmode", mode)
    if mode in (0, 2):
        if at.wifi.stop():
            # The station goes down with the mode: ESP-AT reports it after OK.
            at.then(lambda: at.reply("WIFI DISCONNECT"))
    elif old in (0, 2) and auto:
        # <auto_connect> alone decides here (Wi-Fi_AT_Commands.rst); AT+CWAUTOCONN
        # is about power-on.
        ap = at.cfg.get("ap")
        if ap:
            at.wifi.start(ap[0], ap[1], ap[2])


def q_cwjap(at):
    if not at.wifi.has_ip() and at.wifi.radio.status() != ASSOCIATED:
        at.reply("No AP")
        return
    ssid, bssid, ch, rssi = at.wifi.radio.ap_info()
    # <pci_en> is 0: this firmware has no WPA2-Enterprise.
    at.reply('+CWJAP:"%s","%s",%d,%d,0,%d,%d,%d,%d' % ((ssid, bssid, ch, rssi) + tuple(at.wifi.opts)))


def _is_mac(s):
    p = s.split(":")
    if len(s) != 17 or len(p) != 6:
        return False
    for x in p:
        if len(x) != 2:
            return False
        try:
            int(x, 16)
        except ValueError:
            return False
    return True


def s_cwjap(at, a):
    parse.count(a, 1, 9)
    ssid = parse.text(a, 0, 32, None)
    pwd = parse.text(a, 1, 64, None)
    bssid = parse.text(a, 2, 17, None) or None
    if bssid is not None and not _is_mac(bssid):
        raise ATError(code(PARA_INVALID, 2))
    parse.num(a, 3, 0, 16, 0)  # authmode threshold
    opts = [parse.num(a, 4, 0, 7200, 1),  # reconn_interval
            parse.num(a, 5, 1, 100, 3),  # listen_interval
            parse.num(a, 6, 0, 1, 0),  # scan_mode
            0]
    timeout = parse.num(a, 7, 3, 600, 15)
    opts[3] = parse.num(a, 8, 0, 3, 1)  # pmf
    if ssid is None:
        ap = at.cfg.get("ap")
        if not ap:
            raise ATError(code(PARA_INVALID, 0))
        ssid, pwd = ap[0], ap[1] if pwd is None else pwd
    return _join(at, ssid, pwd or "", bssid, timeout, opts)


def exe_cwjap(at):
    ap = at.cfg.get("ap")
    if not ap:
        raise fail(EXEC_FAIL)
    return _join(at, ap[0], ap[1], ap[2], 15, _saved_opts(ap))


def _join(at, ssid, pwd, bssid, timeout_s, opts):
    if at.cfg.get("cwmode") not in (1, 3):
        raise fail(EXEC_FAIL)
    w = at.wifi
    w.opts = opts
    w.start(ssid, pwd, bssid)
    deadline = time.ticks_add(time.ticks_ms(), timeout_s * 1000)
    while True:
        st = w.tick()
        if st == GOT_IP:
            break
        if st < 0 or time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            was = w._last in (ASSOCIATED, GOT_IP)
            w.radio.disconnect()
            w._last = IDLE
            w.state = 4
            if was:
                # Associated but no IP before the timeout: the station is taken
                # down, and the host, told WIFI CONNECTED, is told so after ERROR.
                at.then(lambda: at.reply("WIFI DISCONNECT"))
            reason = {WRONG_PASSWORD: 2, NO_AP: 3, FAILED: 4}.get(st, 1)
            raise fail(EXEC_FAIL, reason, lines=["+CWJAP:%d" % reason])
        yield at.sleep(POLL_MS)
    at.cfg.set("ap", [ssid, pwd, bssid] + list(opts))


def exe_cwqap(at):
    was = at.wifi.stop()
    if was:
        at.then(lambda: at.reply("WIFI DISCONNECT"))


def q_cwstate(at):
    at.wifi.tick()
    at.reply('+CWSTATE:%d,"%s"' % (at.wifi.state, at.wifi.ssid))


def q_cipsta(at):
    ip, mask, gw = at.wifi.radio.ifconfig()[:3] if at.wifi.has_ip() else ("0.0.0.0",) * 3
    at.reply('+CIPSTA:ip:"%s"' % ip, '+CIPSTA:gateway:"%s"' % gw, '+CIPSTA:netmask:"%s"' % mask)
    v6 = at.wifi.ip6()
    if v6:
        at.reply('+CIPSTA:ip6ll:"%s"' % v6[0])
        if v6[1]:
            at.reply('+CIPSTA:ip6gl:"%s"' % v6[1])


def q_cwautoconn(at):
    at.reply("+CWAUTOCONN:%d" % at.cfg.get("cwautoconn"))


def s_cwautoconn(at, a):
    parse.count(a, 1, 1)
    at.cfg.set("cwautoconn", parse.num(a, 0, 0, 1), True)


COMMANDS = [
    # name, test, query, set, execute
    ("+CWMODE", None, q_cwmode, s_cwmode, None),
    ("+CWJAP", None, q_cwjap, s_cwjap, exe_cwjap),
    ("+CWQAP", None, None, None, exe_cwqap),
    ("+CWSTATE", None, q_cwstate, None, None),
    ("+CIPSTA", None, q_cipsta, None, None),
    ("+CWAUTOCONN", None, q_cwautoconn, s_cwautoconn, None),
]
