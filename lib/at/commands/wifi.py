# Wi-Fi commands (Wi-Fi_AT_Commands.rst): AT+CWMODE, AT+CWJAP, AT+CWRECONNCFG,
# AT+CWLAP, AT+CWLAPOPT, AT+CWQAP, AT+CWSTATE, AT+CWSAP, AT+CWLIF, AT+CWDHCP,
# AT+CWAUTOCONN, AT+CIPSTAMAC, AT+CIPSTA?, AT+CWHOSTNAME, AT+CWCOUNTRY; and the
# sleep commands of Basic_AT_Commands.rst that depend on the radio, AT+SLEEP and
# AT+GSLP. The radio itself is the board's (network.WLAN on the ESP32, a simulated
# AP list on the virtual board).
import time
from at import parse
from at.wifi import (Wifi, Target, saved_ap, saved_opts, target, OPT_RECONN, OPT_LISTEN, OPT_SCAN, OPT_PMF,
                     AP_SSID, AP_PWD, ASSOCIATED, GOT_IP, WRONG_PASSWORD, NO_AP, FAILED,
                     POLL_MS, JAP_TIMEOUT, HOSTNAME, COUNTRY, LAPOPT)
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, PARA_LENGTH
from at.commands import row

SCAN_POLL_MS = 20  # how often a background scan is looked at


def _sap(eng):
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
        eng.wifi.radio.softap(*_sap(eng))


def init(eng):
    eng.wifi = w = Wifi(eng)
    r = w.radio
    cfg = eng.cfg
    mode = cfg.get("cwmode")
    _apply_mode(eng, mode)
    mac = cfg.get("cipstamac")
    if isinstance(mac, str) and _is_mac(mac):
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


def s_cwjap(eng, a):
    parse.count(a, 1, 9)
    ssid = parse.text(a, 0, 32, None)
    pwd = parse.text(a, 1, 64, None)
    bssid = parse.text(a, 2, 17, None) or None
    if bssid is not None and not _is_mac(bssid):
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


# -- AT+CWRECONNCFG -------------------------------------------------------------------------------
def q_cwreconncfg(eng):
    eng.reply("+CWRECONNCFG:%d,%d" % tuple(eng.cfg.get("cwreconncfg")))


def s_cwreconncfg(eng, a):
    parse.count(a, 2, 3)
    interval = parse.num(a, 0, 0, 7200)
    repeat = parse.num(a, 1, 0, 1000)
    now = parse.num(a, 2, 0, 1, 0)
    eng.cfg.set("cwreconncfg", [interval, repeat])
    if now:
        eng.then(eng.wifi.reconnect_now)


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


# -- AT+CWLAP, AT+CWLAPOPT -----------------------------------------------------------------------
def _station(eng):
    if eng.cfg.get("cwmode") not in (1, 3):
        raise fail(EXEC_FAIL)


def _lap(eng, ssid=None, mac=None, channel=0, passive=False, bitmap=0):
    """Generator: a radio that scans in the background (the ESP32's, in a
    thread) is polled, so the host's lines meanwhile get "busy p..."."""
    _station(eng)
    radio = eng.wifi.radio
    try:
        if hasattr(radio, "scan_job"):
            job = radio.scan_job(ssid, passive)
            while not job.done:
                yield eng.sleep(SCAN_POLL_MS)
            if job.error is not None:
                raise job.error
            found = job.result
        else:
            found = radio.scan(ssid, passive)
    except OSError as e:
        eng.log.write("at: scan failed: %r\n" % (e,))
        raise fail(EXEC_FAIL)
    mask, rssi_min, auth = eng.wifi.lapopt
    out = []
    for r in found:  # (ecn, ssid, rssi, mac, channel, pairwise, group, protocol, wps)
        if (ssid and r[1] != ssid) or (mac and r[3] != mac) or r[2] < rssi_min \
                or (r[0] < 16 and not auth >> r[0] & 1):
            continue
        if channel:
            if r[4] != channel:
                continue
        elif bitmap and not bitmap >> r[4] & 1:
            continue
        out.append(r)
    out.sort(key=lambda r: -r[2])  # strongest first, as ESP-IDF returns its records
    lines = []
    for r in out:
        # <freq_offset>,<freqcal_val> are reserved: -1 on an ESP32 running ESP-AT.
        vals = (r[0], '"%s"' % r[1], r[2], '"%s"' % r[3], r[4], -1, -1, r[5], r[6], r[7], r[8])
        lines.append("+CWLAP:(" + ",".join(str(v) for i, v in enumerate(vals) if mask >> i & 1) + ")")
    if lines:
        eng.reply(*lines)


def exe_cwlap(eng):
    return _lap(eng)


def s_cwlap(eng, a):
    parse.count(a, 1, 7)
    ssid = parse.text(a, 0, 32, None) or None
    mac = parse.text(a, 1, 17, None) or None
    if mac is not None:
        if not _is_mac(mac):
            raise ATError(code(PARA_INVALID, 1))
        mac = mac.lower()
    channel = parse.num(a, 2, 0, 14, 0)
    scan_type = parse.num(a, 3, 0, 1, 0)
    parse.num(a, 4, 0, 1500, 0)  # scan_time_min
    parse.num(a, 5, 0, 1500, 0)  # scan_time_max
    bitmap = parse.num(a, 6, 0, 0x7FFF, 0)  # bit n: channel n
    return _lap(eng, ssid, mac, channel, scan_type == 1, bitmap)


def s_cwlapopt(eng, a):
    parse.count(a, 2, 4)
    parse.num(a, 0, 0, 1, 0)  # <reserved> (once <sort_enable>): the list is always sorted
    eng.wifi.lapopt = [parse.num(a, 1, 0, 0x7FF), parse.num(a, 2, -100, 40, LAPOPT[1]),
                      parse.num(a, 3, 0, 0xFFFF, LAPOPT[2])]


# -- the soft-AP: AT+CWSAP, AT+CWLIF, AT+CWDHCP ---------------------------------------------------------
def _softap_mode(eng):
    if eng.cfg.get("cwmode") not in (2, 3):
        raise fail(EXEC_FAIL)


def q_cwsap(eng):
    _softap_mode(eng)
    eng.reply('+CWSAP:"%s","%s",%d,%d,%d,%d' % tuple(_sap(eng)))


def s_cwsap(eng, a):
    _softap_mode(eng)
    parse.count(a, 4, 6)
    cur = _sap(eng)
    ssid = parse.text(a, 0, 32, minlen=1)
    pwd = parse.text(a, 1, 64)
    ch = parse.num(a, 2, 1, 14)
    c = eng.wifi.country
    if not c[2] <= ch < c[2] + c[3]:
        raise ATError(code(PARA_INVALID, 2))  # not a channel of AT+CWCOUNTRY's
    ecn = parse.num(a, 3, 0, 4)
    if ecn == 1:
        raise ATError(code(PARA_INVALID, 3))  # WEP is not supported
    max_conn = parse.num(a, 4, 1, 10, cur[4])
    hidden = parse.num(a, 5, 0, 1, cur[5])
    if ecn == 0:
        pwd = ""  # an open AP has no password
    elif len(pwd.encode()) < 8:
        raise ATError(code(PARA_LENGTH, 1))  # WPA needs 8 to 64 bytes
    conf = [ssid, pwd, ch, ecn, max_conn, hidden]
    if not eng.wifi.radio.softap(*conf):
        raise fail(EXEC_FAIL)
    eng.cfg.set("cwsap", conf)


def exe_cwlif(eng):
    _softap_mode(eng)
    lines = ["+CWLIF:%s,%s" % s for s in eng.wifi.radio.stations()]
    if lines:
        eng.reply(*lines)


def q_cwdhcp(eng):
    # <state> bit 2, Ethernet DHCP, is 0: there is no Ethernet.
    eng.reply("+CWDHCP:%d" % eng.cfg.get("cwdhcp"))


def s_cwdhcp(eng, a):
    parse.count(a, 2, 2)
    on = parse.num(a, 0, 0, 1)
    mode = parse.num(a, 1, 0, 3)
    old = eng.cfg.get("cwdhcp")
    new = old | mode if on else old & ~mode
    if not eng.wifi.radio.set_dhcp(new):
        raise fail(EXEC_FAIL)
    eng.cfg.set("cwdhcp", new)


# -- AT+CWAUTOCONN ------------------------------------------------------------------------------------
def q_cwautoconn(eng):
    eng.reply("+CWAUTOCONN:%d" % eng.cfg.get("cwautoconn"))


def s_cwautoconn(eng, a):
    parse.count(a, 1, 1)
    eng.cfg.set("cwautoconn", parse.num(a, 0, 0, 1), True)


# -- AT+CIPSTAMAC, AT+CWHOSTNAME, AT+CWCOUNTRY ------------------------------------------------------------
# -- the soft-AP's address (AT+CIPAP?, AT+CIPAPMAC): lwESP's reset chain and
# WiFiEspAT ask for them; in a mode without the soft-AP, ERROR, as AT+CWSAP
def q_cipap(eng):
    _softap_mode(eng)
    ip, mask, gw = eng.wifi.radio.ap_ifconfig()[:3]
    eng.reply('+CIPAP:ip:"%s"' % ip, '+CIPAP:gateway:"%s"' % gw, '+CIPAP:netmask:"%s"' % mask)


def q_cipapmac(eng):
    _softap_mode(eng)
    eng.reply('+CIPAPMAC:"%s"' % eng.wifi.radio.mac(1))


def q_cipstamac(eng):
    eng.reply('+CIPSTAMAC:"%s"' % eng.wifi.radio.mac(0))


def s_cipstamac(eng, a):
    parse.count(a, 1, 1)
    mac = parse.text(a, 0, 17)
    if not _is_mac(mac):
        raise ATError(code(PARA_INVALID, 0))
    mac = mac.lower()
    r = eng.wifi.radio
    # Bit 0 (multicast) of the first byte must be 0; all zeros, all ones and the
    # soft-AP's address are refused, as ESP-IDF refuses them.
    if int(mac[:2], 16) & 1 or mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") or mac == r.mac(1):
        raise fail(EXEC_FAIL)
    try:
        r.set_mac(0, mac)
    except (OSError, ValueError) as e:
        eng.log.write("at: station MAC refused: %r\n" % (e,))
        raise fail(EXEC_FAIL)
    eng.cfg.set("cipstamac", mac)


def q_cwhostname(eng):
    eng.reply("+CWHOSTNAME:%s" % eng.wifi.radio.hostname())


def s_cwhostname(eng, a):
    parse.count(a, 1, 1)
    name = parse.text(a, 0, 32, minlen=1)
    _station(eng)
    eng.wifi.radio.hostname(name)


def q_cwcountry(eng):
    eng.reply('+CWCOUNTRY:%d,"%s",%d,%d' % tuple(eng.wifi.country))


def s_cwcountry(eng, a):
    parse.count(a, 4, 4)
    policy = parse.num(a, 0, 0, 1)
    cc = parse.text(a, 1, 3, minlen=2)
    start = parse.num(a, 2, 1, 14)
    n = parse.num(a, 3, 1, 14)
    if start + n - 1 > 14:
        raise ATError(code(PARA_INVALID, 3))
    if not eng.wifi.radio.set_country(policy, cc, start, n):
        raise fail(EXEC_FAIL)
    eng.wifi.country = (policy, cc, start, n)


# -- AT+SLEEP, AT+GSLP (Basic_AT_Commands.rst) --------------------------------------------------------
def q_sleep(eng):
    eng.reply("+SLEEP:%d" % eng.wifi.sleep)


def s_sleep(eng, a):
    parse.count(a, 1, 1)
    m = parse.num(a, 0, 0, 3)
    mode = eng.cfg.get("cwmode")
    # Modem sleep (1, 3): station mode only, allowed (without effect) with Wi-Fi
    # off; light sleep (2): not with the soft-AP up. What the radio cannot do
    # (light sleep on a stock MicroPython image) answers ERROR.
    if m and mode in (2, 3):
        raise fail(EXEC_FAIL)
    if (mode == 1 or m == 2) and not eng.wifi.radio.set_pm(m):
        raise fail(EXEC_FAIL)
    eng.wifi.sleep = m


def s_gslp(eng, a):
    parse.count(a, 1, 1)
    ms = parse.num(a, 0, 0, 0x7FFFFFFF)
    eng.reply("%d" % ms)

    def sleep():
        eng.out.flush()  # <time> and OK must leave the UART first
        eng.board.deepsleep(ms)

    eng.then(sleep)


COMMANDS = [
    row("+CWMODE", query=q_cwmode, set=s_cwmode),
    row("+CWJAP", query=q_cwjap, set=s_cwjap, execute=exe_cwjap),
    row("+CWRECONNCFG", query=q_cwreconncfg, set=s_cwreconncfg),
    row("+CWLAPOPT", set=s_cwlapopt),
    row("+CWLAP", set=s_cwlap, execute=exe_cwlap),
    row("+CWQAP", execute=exe_cwqap),
    row("+CWSTATE", query=q_cwstate),
    row("+CWSAP", query=q_cwsap, set=s_cwsap),
    row("+CWLIF", execute=exe_cwlif),
    row("+CWDHCP", query=q_cwdhcp, set=s_cwdhcp),
    row("+CWAUTOCONN", query=q_cwautoconn, set=s_cwautoconn),
    row("+CIPSTAMAC", query=q_cipstamac, set=s_cipstamac),
    row("+CIPSTA", query=q_cipsta),
    row("+CIPAPMAC", query=q_cipapmac),
    row("+CIPAP", query=q_cipap),
    row("+CWHOSTNAME", query=q_cwhostname, set=s_cwhostname),
    row("+CWCOUNTRY", query=q_cwcountry, set=s_cwcountry),
    row("+SLEEP", query=q_sleep, set=s_sleep),
    row("+GSLP", set=s_gslp),
]
