# Wi-Fi commands (Wi-Fi_AT_Commands.rst): AT+CWMODE, AT+CWJAP, AT+CWQAP,
# AT+CWSTATE, AT+CIPSTA?, and the station's setup at boot. The radio itself is the
# board's (network.WLAN on the ESP32, a simulated AP list on the virtual board).
# The commands a host sends to set up are in at/commands/wificonf.py (AT+CWDHCP,
# AT+CIPSTAMAC ...) and at/commands/wifiap.py (AT+CWLAP, AT+CWSAP ...).
import time
from at import parse
from at.wifi import (Wifi, Target, saved_ap, saved_opts, target, OPT_RECONN, OPT_LISTEN, OPT_SCAN, OPT_PMF,
                     AP_SSID, AP_PWD, ASSOCIATED, GOT_IP, WRONG_PASSWORD, NO_AP, FAILED,
                     POLL_MS, JAP_TIMEOUT, HOSTNAME, COUNTRY)
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID
from at.commands import row


def softap_config(eng):
    """The soft-AP configuration: saved by AT+CWSAP, or the chip's default (SSID
    ESP_ and the soft-AP MAC's last three bytes, open, channel 1, 4 stations)."""
    c = eng.cfg.get("cwsap")
    if isinstance(c, list) and len(c) == 6 and isinstance(c[0], str) and isinstance(c[1], str) \
            and all(isinstance(x, int) for x in c[2:]):
        return c
    mac = eng.wifi.radio.mac(1)
    return ["ESP_" + mac[9:].replace(":", "").upper(), "", 1, 0, 4, 0]


def _apply_mode(eng, mode, old=0):
    eng.wifi.radio.set_mode(mode)
    if mode & 2 and not old & 2:  # the soft-AP comes up with its configuration
        eng.wifi.radio.softap(*softap_config(eng))


def init(eng):
    eng.wifi = w = Wifi(eng)
    r = w.radio
    cfg = eng.cfg
    mode = cfg.get("cwmode")
    _apply_mode(eng, mode)
    mac = cfg.get("cipstamac")
    if isinstance(mac, str) and is_mac(mac):
        try:
            r.set_mac(0, mac)
        except (OSError, ValueError):
            eng.log.write("at: saved station MAC %s refused\n" % mac)
    r.hostname(HOSTNAME)  # not saved (AT+CWHOSTNAME): ESP-AT's default at every boot
    r.set_country(*COUNTRY)
    dhcp = cfg.get("cwdhcp")
    if dhcp != 3 and not r.set_dhcp(dhcp):
        eng.log.write("at: saved AT+CWDHCP=%d cannot be applied\n" % dhcp)
    r.set_pm(0)  # AT+SLEEP is not saved: awake at power-on, as ESP-AT
    ap = cfg.get("ap")
    if ap:
        w.opts = saved_opts(ap)
        if cfg.get("cwautoconn") and mode in (1, 3):
            w.start(target(ap), background=True)


# -- AT+CWMODE ----------------------------------------------------------------------------------
def q_cwmode(eng):
    eng.reply("+CWMODE:%d" % eng.cfg.get("cwmode"))


def s_cwmode(eng, a):
    parse.count(a, 1, 2)
    mode = parse.num(a, 0, 0, 3)
    auto = parse.num(a, 1, 0, 1, 1)
    old = eng.cfg.get("cwmode")
    eng.cfg.set("cwmode", mode)
    if mode in (0, 2):
        if eng.wifi.stop():
            # The station goes down with the mode: ESP-AT reports it after OK.
            eng.then(lambda: eng.reply("WIFI DISCONNECT"))
    _apply_mode(eng, mode, old)
    if mode in (1, 3) and old in (0, 2) and auto:
        # <auto_connect> alone decides here (Wi-Fi_AT_Commands.rst); AT+CWAUTOCONN
        # is about power-on.
        ap = eng.cfg.get("ap")
        if ap:
            eng.wifi.start(target(ap), background=True)


# -- AT+CWJAP -------------------------------------------------------------------------------------
def q_cwjap(eng):
    if not eng.wifi.has_ip() and eng.wifi.radio.status() != ASSOCIATED:
        eng.reply("No AP")
        return
    ssid, bssid, ch, rssi = eng.wifi.radio.ap_info()
    o = eng.wifi.opts
    # <pci_en> is 0: this firmware has no WPA2-Enterprise.
    eng.reply('+CWJAP:"%s","%s",%d,%d,0,%d,%d,%d,%d' % (
        ssid, bssid, ch, rssi, eng.cfg.get("cwreconncfg")[0], o[OPT_LISTEN], o[OPT_SCAN], o[OPT_PMF]))


def is_mac(s):
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


def s_cwjap(eng, a):
    parse.count(a, 1, 9)
    ssid = parse.text(a, 0, 32, None)
    pwd = parse.text(a, 1, 64, None)
    bssid = parse.text(a, 2, 17, None) or None
    if bssid is not None and not is_mac(bssid):
        raise ATError(code(PARA_INVALID, 2))
    threshold = parse.num(a, 3, 0, 16, 0)
    opts = [parse.num(a, 4, 0, 7200, 1),  # reconn_interval
            parse.num(a, 5, 1, 100, 3),  # listen_interval
            parse.num(a, 6, 0, 1, 0),  # scan_mode
            0]
    timeout = parse.num(a, 7, 3, 600, JAP_TIMEOUT)
    opts[OPT_PMF] = parse.num(a, 8, 0, 3, 1)
    if ssid is None:
        ap = eng.cfg.get("ap")
        if not ap:
            raise ATError(code(PARA_INVALID, 0))
        ssid, pwd = ap[AP_SSID], ap[AP_PWD] if pwd is None else pwd
    return _join(eng, Target(ssid, pwd or "", bssid, threshold, opts[OPT_SCAN], timeout), opts, True)


def exe_cwjap(eng):
    ap = eng.cfg.get("ap")
    if not ap:
        raise fail(EXEC_FAIL)
    # The last configuration, its <jap_timeout> too; the reconnect interval is
    # AT+CWRECONNCFG's as it is now.
    return _join(eng, target(ap), saved_opts(ap), False)


def _join(eng, t, opts, set_interval):
    if eng.cfg.get("cwmode") not in (1, 3):
        raise fail(EXEC_FAIL)
    w = eng.wifi
    if set_interval:
        # <reconn_interval> is AT+CWRECONNCFG's <interval_second> (default 1 here).
        eng.cfg.set("cwreconncfg", [opts[OPT_RECONN], eng.cfg.get("cwreconncfg")[1]])
    opts = list(opts)
    opts[OPT_RECONN] = eng.cfg.get("cwreconncfg")[0]
    w.opts = opts
    w.joining = True
    w.start(t)
    deadline = time.ticks_add(time.ticks_ms(), t.timeout * 1000)
    while True:
        st = w.tick()
        if st == GOT_IP:
            break
        if st < 0 or time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            if w.join_failed():
                # Associated but no IP before the timeout: the station is taken
                # down, and the host, told WIFI CONNECTED, is told so after ERROR.
                eng.then(lambda: eng.reply("WIFI DISCONNECT"))
            reason = {WRONG_PASSWORD: 2, NO_AP: 3, FAILED: 4}.get(st, 1)
            raise fail(EXEC_FAIL, reason, lines=["+CWJAP:%d" % reason])
        yield eng.sleep(POLL_MS)
    w.joining = False
    eng.cfg.set("ap", saved_ap(t, opts))


def station_mode(eng):
    """ERROR unless the station is on (AT+CWMODE 1 or 3)."""
    if eng.cfg.get("cwmode") not in (1, 3):
        raise fail(EXEC_FAIL)


# -- AT+CWQAP, AT+CWSTATE, AT+CIPSTA? ------------------------------------------------------------
def exe_cwqap(eng):
    was = eng.wifi.stop()
    if was:
        eng.then(lambda: eng.reply("WIFI DISCONNECT"))


def q_cwstate(eng):
    eng.wifi.tick()
    eng.reply('+CWSTATE:%d,"%s"' % (eng.wifi.state, eng.wifi.ssid))


def q_cipsta(eng):
    ip, mask, gw = eng.wifi.radio.ifconfig()[:3] if eng.wifi.has_ip() else ("0.0.0.0",) * 3
    eng.reply('+CIPSTA:ip:"%s"' % ip, '+CIPSTA:gateway:"%s"' % gw, '+CIPSTA:netmask:"%s"' % mask)
    v6 = eng.wifi.ip6()
    if v6:
        eng.reply('+CIPSTA:ip6ll:"%s"' % v6[0])
        if v6[1]:
            eng.reply('+CIPSTA:ip6gl:"%s"' % v6[1])


COMMANDS = [
    row("+CWMODE", query=q_cwmode, set=s_cwmode),
    row("+CWJAP", query=q_cwjap, set=s_cwjap, execute=exe_cwjap),
    row("+CWQAP", execute=exe_cwqap),
    row("+CWSTATE", query=q_cwstate),
    row("+CIPSTA", query=q_cipsta),
]
