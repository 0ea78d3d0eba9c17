# Scanning and the soft-AP (Wi-Fi_AT_Commands.rst): AT+CWLAP, AT+CWLAPOPT,
# AT+CWSAP, AT+CWLIF, AT+CIPAP? and AT+CIPAPMAC?. A passing group
# (at/commands/__init__.py), apart from at/commands/wificonf.py so that each
# passes through a small heap in less room.
from at import parse
from at.wifi import LAPOPT
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID, PARA_LENGTH
from at.commands import row
from at.commands.wifi import softap_config, is_mac, station_mode

SCAN_POLL_MS = 20  # how often a background scan is looked at


# -- AT+CWLAP, AT+CWLAPOPT -----------------------------------------------------------------------
def _lap(eng, ssid=None, mac=None, channel=0, passive=False, bitmap=0):
    """Generator: a radio that scans in the background (the ESP32's, in a
    thread) is polled, so the host's lines meanwhile get "busy p..."."""
    station_mode(eng)
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
        if not is_mac(mac):
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


# -- the soft-AP: AT+CWSAP, AT+CWLIF, AT+CIPAP?, AT+CIPAPMAC? --------------------------------------------
def _softap_mode(eng):
    if eng.cfg.get("cwmode") not in (2, 3):
        raise fail(EXEC_FAIL)


def q_cwsap(eng):
    _softap_mode(eng)
    eng.reply('+CWSAP:"%s","%s",%d,%d,%d,%d' % tuple(softap_config(eng)))


def s_cwsap(eng, a):
    _softap_mode(eng)
    parse.count(a, 4, 6)
    cur = softap_config(eng)
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


# The soft-AP's address (AT+CIPAP?, AT+CIPAPMAC): lwESP's reset chain and
# WiFiEspAT ask for them; in a mode without the soft-AP, ERROR, as AT+CWSAP
def q_cipap(eng):
    _softap_mode(eng)
    ip, mask, gw = eng.wifi.radio.ap_ifconfig()[:3]
    eng.reply('+CIPAP:ip:"%s"' % ip, '+CIPAP:gateway:"%s"' % gw, '+CIPAP:netmask:"%s"' % mask)


def q_cipapmac(eng):
    _softap_mode(eng)
    eng.reply('+CIPAPMAC:"%s"' % eng.wifi.radio.mac(1))


COMMANDS = [
    row("+CWLAPOPT", set=s_cwlapopt),
    row("+CWLAP", set=s_cwlap, execute=exe_cwlap),
    row("+CWSAP", query=q_cwsap, set=s_cwsap),
    row("+CWLIF", execute=exe_cwlif),
    row("+CIPAPMAC", query=q_cipapmac),
    row("+CIPAP", query=q_cipap),
]
