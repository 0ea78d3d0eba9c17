# The Wi-Fi station as a service: watches the board's radio, prints WIFI
# CONNECTED / GOT IP / DISCONNECT, reconnects as AT+CWRECONNCFG says. The
# commands (at/commands/wifi.py) drive it; the links (at/net.py), passthrough
# and mDNS ask it whether there is an address. The radio states are named here
# once; every port's radio.status() reports them.
import time

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
OPT_RECONN, OPT_LISTEN, OPT_SCAN, OPT_PMF = 0, 1, 2, 3  # their places, in Wifi.opts and a saved AP
# A saved AP (the setting "ap"): a list, as settings files hold it; the last two
# came later, so an older file's list ends before them.
AP_SSID, AP_PWD, AP_BSSID, AP_OPTS, AP_TIMEOUT, AP_THRESHOLD = 0, 1, 2, 3, 7, 8
JAP_TIMEOUT = 15
HOSTNAME = "espressif"  # ESP-IDF's CONFIG_LWIP_LOCAL_HOSTNAME, what ESP-AT reports
COUNTRY = (0, "01", 1, 11)  # ESP-IDF's default: world-safe, channels 1-11, policy auto
LAPOPT = (0x7FF, -100, 0xFFFF)  # AT+CWLAPOPT <print mask>,<rssi filter>,<authmode mask>


class Wifi:
    """Watches the radio, prints WIFI CONNECTED / GOT IP / DISCONNECT on changes,
    and reconnects after a link loss as AT+CWRECONNCFG says."""

    def __init__(self, eng):
        self.eng = eng
        self.radio = eng.board.radio
        self.state = 0  # AT+CWSTATE's <state>
        self.ssid = ""
        self._last = IDLE
        self._timer = None
        # AT+CWJAP's <reconn_interval>,<listen_interval>,<scan_mode>,<pmf>; the first
        # is AT+CWRECONNCFG's <interval_second>, kept in the settings.
        self.opts = list(JAP_OPTS)
        self.joining = False  # an AT+CWJAP waits for the result: no reconnects of our own
        self.target = None  # [ssid, pwd, bssid, threshold, scan_mode, timeout_s]
        self._retry = None  # timer of the next reconnect attempt
        self._tries = 0
        self._deadline = None  # a background attempt (reconnect, power-on) gives up then
        self.lapopt = list(LAPOPT)
        self.sleep = 0  # AT+SLEEP
        self.country = COUNTRY

    def has_ip(self):
        return self._last == GOT_IP

    def join_failed(self):
        """An AT+CWJAP that ends without an address: take the station down (no
        retries of the radio's own); True if it was associated meanwhile (the host
        was told WIFI CONNECTED and is now owed a WIFI DISCONNECT)."""
        self.joining = False
        was = self._last in (ASSOCIATED, GOT_IP)
        self.radio.disconnect()
        self._last = IDLE
        self.state = 4
        return was

    def start(self, target, background=False):
        """Join an AP: target is [ssid, pwd, bssid, threshold, scan_mode, timeout_s].
        background: not for an AT+CWJAP (power-on, a mode switch), so a failure is
        retried as AT+CWRECONNCFG says."""
        self._cancel_retry()
        if self._last in (ASSOCIATED, GOT_IP):
            had_ip = self._last == GOT_IP
            self.radio.disconnect()
            self._last = IDLE
            self.eng.reply("WIFI DISCONNECT")
            if had_ip:
                self._down()
        self.ssid = target.ssid
        self.state = 3
        self.target = target
        self._tries = 0
        self._attempt(background)

    def _attempt(self, background=True):
        t = self.target
        if t is None:
            return
        self._deadline = time.ticks_add(time.ticks_ms(), t.timeout * 1000) if background else None
        self.radio.connect(t.ssid, t.pwd, t.bssid, t.threshold, t.scan_mode)
        self._watch()

    def stop(self):
        self._cancel_retry()
        self._deadline = None
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
        net = self.eng.net
        if net is not None:
            net.netif_down()

    def ip6(self):
        """(link-local, global) IPv6 addresses when AT+CIPV6=1 and joined, else None."""
        if not self.eng.cfg.get("cipv6") or self._last != GOT_IP:
            return None
        return self.radio.ip6()

    # -- reconnecting ---------------------------------------------------------------------
    def _cancel_retry(self):
        if self._retry is not None:
            self.eng.loop.cancel(self._retry)
            self._retry = None

    def _again(self):
        """After a loss or a failed attempt: retry in <interval_second> unless
        reconnecting is off or <repeat_count> attempts have been made."""
        interval, repeat = self.eng.cfg.get("cwreconncfg")
        if self.target and interval and (not repeat or self._tries < repeat):
            self.state = 3
            self._cancel_retry()
            self._retry = self.eng.loop.later(interval * 1000, self._reconnect)
        else:
            self.state = 4

    def _reconnect(self):
        self._retry = None
        self._tries += 1
        self.eng.log.write("at: wifi reconnect..(%d/%d)\n" % (self._tries, self.eng.cfg.get("cwreconncfg")[1]))
        self.state = 3
        self._attempt()

    def _gave_up(self):
        """A background attempt failed: stop the radio's own retries, pace ours."""
        if self._last == ASSOCIATED:  # associated, but no address in time
            self.eng.reply("WIFI DISCONNECT")
        self.radio.disconnect()
        self._last = IDLE
        self._deadline = None
        self._again()

    def reconnect_now(self):
        """AT+CWRECONNCFG's <reconnect_now>: only while there is no address."""
        if self._last == GOT_IP or self.joining or self.eng.cfg.get("cwmode") not in (1, 3):
            return
        if self.target is None:
            ap = self.eng.cfg.get("ap")
            if not ap:
                return
            self.target = target(ap)
            self.ssid = ap[AP_SSID]
        self._cancel_retry()
        self._tries = 0
        self.state = 3
        self._attempt()

    # -- watching the radio ------------------------------------------------------------------
    def tick(self):
        """Read the radio; report changes; return its status."""
        st = self.radio.status()
        last = self._last
        if st != last:
            was = last in (ASSOCIATED, GOT_IP)
            if st in (ASSOCIATED, GOT_IP) and not was:
                self.eng.reply("WIFI CONNECTED")
            if st == GOT_IP:
                self.eng.reply("WIFI GOT IP")
                self.state = 2
                self._last = st
                self._deadline = None
                self._tries = 0
                v6 = self.ip6()
                if v6:
                    self.eng.reply("WIFI GOT IPv6 LL")
                    if v6[1]:
                        self.eng.reply("WIFI GOT IPv6 GL")
            elif st == ASSOCIATED:
                self.state = 1
                if last == GOT_IP:  # the lease is gone, the association stays
                    self._last = st
                    self._down()
            elif was:
                # The link is lost (beacon timeout, the AP went away).
                self.eng.reply("WIFI DISCONNECT")
                self._last = st
                if last == GOT_IP:
                    self._down()
                if self.joining:
                    self.state = 4 if st != CONNECTING else 3
                else:
                    self._last = IDLE
                    self._deadline = None
                    self.radio.disconnect()
                    self._again()
                    return st
            elif st < 0:
                self.state = 4
            self._last = st
        if self._deadline is not None and not self.joining and st != GOT_IP:
            if st < 0 or time.ticks_diff(self._deadline, time.ticks_ms()) <= 0:
                self._gave_up()
        return st

    def _watch(self):
        if self._timer is None:
            self._timer = self.eng.loop.later(POLL_MS, self._poll)

    def _poll(self):
        self._timer = None
        st = self.tick()
        if st in (CONNECTING, ASSOCIATED, GOT_IP):
            self._watch()


class Target:
    """The AP a join aims at (AT+CWJAP's parameters the radio needs)."""

    def __init__(self, ssid, pwd, bssid, threshold, scan_mode, timeout):
        self.ssid = ssid
        self.pwd = pwd
        self.bssid = bssid
        self.threshold = threshold  # <ecn>'s minimum authmode
        self.scan_mode = scan_mode
        self.timeout = timeout  # <jap_timeout>, seconds


def saved_ap(t, opts):
    """The setting "ap" for a join that succeeded."""
    return [t.ssid, t.pwd, t.bssid] + list(opts) + [t.timeout, t.threshold]


def saved_opts(ap):
    o = ap[AP_OPTS:AP_OPTS + 4]
    return o if len(o) == 4 else list(JAP_OPTS)


def target(ap):
    """The Target of a saved AP."""
    return Target(ap[AP_SSID], ap[AP_PWD], ap[AP_BSSID], ap[AP_THRESHOLD] if len(ap) > AP_THRESHOLD else 0,
                  saved_opts(ap)[OPT_SCAN], ap[AP_TIMEOUT] if len(ap) > AP_TIMEOUT else JAP_TIMEOUT)
