# Wi-Fi commands a host sends to set up (Wi-Fi_AT_Commands.rst): AT+CWRECONNCFG,
# AT+CWDHCP, AT+CWAUTOCONN, AT+CIPSTAMAC, AT+CWHOSTNAME, AT+CWCOUNTRY; and the
# sleep commands of Basic_AT_Commands.rst that depend on the radio, AT+SLEEP and
# AT+GSLP. A passing group (at/commands/__init__.py): the station's state is
# eng.wifi's (at/wifi.py), the joining commands are at/commands/wifi.py's,
# scanning and the soft-AP at/commands/wifiap.py's.
from at import parse
from at.errors import ATError, code, fail, EXEC_FAIL, PARA_INVALID
from at.commands import row
from at.commands.wifi import is_mac, station_mode


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


# -- AT+CWDHCP ----------------------------------------------------------------------------------------
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
def q_cipstamac(eng):
    eng.reply('+CIPSTAMAC:"%s"' % eng.wifi.radio.mac(0))


def s_cipstamac(eng, a):
    parse.count(a, 1, 1)
    mac = parse.text(a, 0, 17)
    if not is_mac(mac):
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
    station_mode(eng)
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
    row("+CWDHCP", query=q_cwdhcp, set=s_cwdhcp),
    row("+CWAUTOCONN", query=q_cwautoconn, set=s_cwautoconn),
    row("+CIPSTAMAC", query=q_cipstamac, set=s_cipstamac),
    row("+CWHOSTNAME", query=q_cwhostname, set=s_cwhostname),
    row("+CWCOUNTRY", query=q_cwcountry, set=s_cwcountry),
    row("+SLEEP", query=q_sleep, set=s_sleep),
    row("+GSLP", set=s_gslp),
]
