# Wi-Fi commands a host sends to set up (Wi-Fi_AT_Commands.rst): AT+CWRECONNCFG,
# AT+CWLAP, AT+CWLAPOPT, AT+CWSAP, AT+CWLIF, AT+CWDHCP, AT+CWAUTOCONN,
# AT+CIPSTAMAC, AT+CIPAP?, AT+CIPAPMAC?, AT+CWHOSTNAME, AT+CWCOUNTRY; and the
# sleep commands of Basic_AT_Commands.rst that depend on the radio, AT+SLEEP and
# AT+GSLP. A passing group (at/commands/__init__.py): the station's state is
# eng.wifi's (at/wifi.py), the joining commands are at/commands/wifi.py's.
from at import parse
from at.wifi import LAPOPT
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, PARA_LENGTH
from at.commands import row
from at.commands.wifi import _sap, _is_mac

SCAN_POLL_MS = 20  # how often a background scan is looked at


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
    row("+CWRECONNCFG", query=q_cwreconncfg, set=s_cwreconncfg),
    row("+CWLAPOPT", set=s_cwlapopt),
    row("+CWLAP", set=s_cwlap, execute=exe_cwlap),
    row("+CWSAP", query=q_cwsap, set=s_cwsap),
    row("+CWLIF", execute=exe_cwlif),
    row("+CWDHCP", query=q_cwdhcp, set=s_cwdhcp),
    row("+CWAUTOCONN", query=q_cwautoconn, set=s_cwautoconn),
    row("+CIPSTAMAC", query=q_cipstamac, set=s_cipstamac),
    row("+CIPAPMAC", query=q_cipapmac),
    row("+CIPAP", query=q_cipap),
    row("+CWHOSTNAME", query=q_cwhostname, set=s_cwhostname),
    row("+CWCOUNTRY", query=q_cwcountry, set=s_cwcountry),
    row("+SLEEP", query=q_sleep, set=s_sleep),
    row("+GSLP", set=s_gslp),
]
