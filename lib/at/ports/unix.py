# The virtual board: the firmware under MicroPython's unix port. The AT UART is
# the pseudo-terminal the launcher (tools/vboard.py) hands over as stdin/stdout,
# already non-blocking; logs go to stderr. The radio is simulated from a JSON
# list of access points (tools/aps.json, or $VBOARD_APS); joining one gives the
# host's own network at $VBOARD_IP (127.0.0.1 by default).
import os
import sys
import socket
import time
from at.ports.air import Air

_BOOT_MS = time.ticks_ms()  # power-up, for the RTC

RESET_EXIT = 3  # the launcher restarts the firmware when it exits with this


class Uart:
    def __init__(self):
        self.obj = sys.stdin.buffer
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self.config = [115200, 8, 1, 0, 0]

    def readinto(self, buf):
        try:
            return self._in.readinto(buf)
        except OSError:
            return None

    def write(self, data):
        """What the pty takes now (the rest waits in at/output.py's backlog)."""
        try:
            return self._out.write(data) or 0
        except OSError:  # EAGAIN: the host is not reading
            return 0

    def retry_ms(self):
        return None  # the pty's poll says when it has room again

    def configure(self, baud, bits, stop, parity, flow):
        self.config = [baud, bits, stop, parity, flow]
        try:
            import termios
            attr = termios.tcgetattr(0)
            speed = getattr(termios, "B%d" % baud, None)
            if speed is not None:
                attr[4] = attr[5] = speed
                termios.tcsetattr(0, termios.TCSANOW, attr)
        except Exception as e:
            # a pty ignores the rate anyway; the setting is what AT+UART_CUR? reports
            sys.stderr.write("at: pty speed not set: %r\n" % (e,))


# Radio states: what radio.status() reports (named in at/wifi.py).
from at.wifi import IDLE, ASSOCIATED, GOT_IP, WRONG_PASSWORD, NO_AP, FAILED  # noqa: E402
# <pairwise_cipher>,<group_cipher> an AP of a given <ecn> uses unless its entry says.
_CIPHERS = {0: (0, 0), 1: (1, 1), 2: (3, 3)}  # else CCMP (4, 4)


class Radio:
    """A station (and a soft-AP nobody joins) in the air of a JSON list of access
    points: $VBOARD_APS (tools/aps.json), replaced while it exists by the "live"
    file $VBOARD_APS_LIVE (aps_live.json in the flash folder), so a test can take an
    AP away and bring it back while the board runs. README.md ("The virtual board")
    documents the fields. The list is checked on every status() (the board polls it
    every 100 ms while joined): one stat() per file, read again only when the file
    it uses changed (at.ports.air)."""

    def __init__(self):
        self.air = Air()
        self.ip = os.getenv("VBOARD_IP") or "127.0.0.1"
        self._status = IDLE
        self._ap = None  # the AP joined (its entry as last read)
        self._key = ""  # the password it was joined with
        self._dhcp = True  # station DHCP was on when it joined
        self.mode = 1  # AT+CWMODE: which interfaces are up
        self.macs = ["02:00:00:00:00:01", "02:00:00:00:00:02"]  # station, soft-AP
        self.name = "espressif"
        self.country = (0, "01", 1, 11)
        self.dhcp = 3
        self.pm = 0
        self.ap_conf = None

    # -- the air (lib/at/ports/air.py) ------------------------------------------------
    def _air(self):
        return self.air.read()

    def _heard(self, ap):
        """Is the AP on a channel AT+CWCOUNTRY lets the station use?"""
        c = self.country
        return c[2] <= ap.get("channel", 1) < c[2] + c[3]

    def _state(self, ap):
        return GOT_IP if ap.get("dhcp", True) and self._dhcp else ASSOCIATED

    # -- the station -----------------------------------------------------------------
    def set_mode(self, mode):
        self.mode = mode

    def connect(self, ssid, pwd, bssid=None, threshold=0, scan_mode=0):
        """Join as ESP-IDF would: APs with this SSID (and BSSID) on an allowed
        channel, at or above the authmode threshold (WEP when the password has 8
        bytes or more and no threshold is given, as AT+CWJAP says); <scan_mode> 0
        takes the first one a channel-by-channel scan finds, 1 the strongest."""
        self._ap = None
        if not threshold and len(pwd) >= 8:
            threshold = 1
        found = [ap for ap in self._air() if ap["ssid"] == ssid and self._heard(ap)
                 and (not bssid or ap["bssid"].lower() == bssid.lower())
                 and ap.get("ecn", 0) >= threshold]
        if not found:
            self._status = NO_AP
            return
        if scan_mode:
            ap = max(found, key=lambda a: a.get("rssi", -50))
        else:
            ap = min(found, key=lambda a: a.get("channel", 1))
        if ap.get("ecn", 0) and ap.get("password", "") != pwd:
            self._status = WRONG_PASSWORD
            return
        if ap.get("refuse"):
            self._status = FAILED
            return
        self._ap = ap
        self._key = pwd
        self._dhcp = bool(self.dhcp & 1)
        self._status = self._state(ap)

    def disconnect(self):
        self._status = IDLE
        self._ap = None

    def status(self):
        ap = self._ap
        if ap is not None:
            # Still in the air, unchanged where it matters? Otherwise the link is
            # lost, as after a beacon timeout.
            now = None
            for a in self._air():
                if a["bssid"] == ap["bssid"]:
                    now = a
                    break
            if now is None or now["ssid"] != ap["ssid"] or not self._heard(now) or now.get("refuse") \
                    or (now.get("ecn", 0) and now.get("password", "") != self._key):
                self._ap = None
                self._status = FAILED
            else:
                self._ap = now
                self._status = self._state(now)
        return self._status

    def ap_info(self):
        ap = self._ap
        return ap["ssid"], ap["bssid"].lower(), ap.get("channel", 1), ap.get("rssi", -50)

    def scan(self, ssid=None, passive=False):
        """(ecn, ssid, rssi, mac, channel, pairwise, group, wifi_protocol, wps) per
        AP heard. A hidden AP has an empty SSID, except to an active scan for it."""
        out = []
        for ap in self._air():
            if not self._heard(ap):
                continue
            name = ap["ssid"]
            if ap.get("hidden") and (passive or ssid != name):
                name = ""
            ecn = ap.get("ecn", 0)
            pc, gc = _CIPHERS.get(ecn, (4, 4))
            out.append((ecn, name, ap.get("rssi", -50), ap["bssid"].lower(), ap.get("channel", 1),
                        ap.get("pairwise_cipher", pc), ap.get("group_cipher", gc),
                        ap.get("wifi_protocol", 7), ap.get("wps", 0)))
        return out

    def ifconfig(self):
        return self.ip, "255.0.0.0", self.ip, self.ip

    def ip6(self):
        """Link-local from the MAC (EUI-64), and $VBOARD_IP6 (::1 by default) as
        the global address: joining gives the host's own network, loopback included."""
        return "fe80::ff:fe00:1", os.getenv("VBOARD_IP6") or "::1"

    # -- settings: kept, reported back, nothing else to do without a radio ---------------
    def mac(self, iface=0):
        return self.macs[1 if iface else 0]

    def set_mac(self, iface, mac):
        self.macs[1 if iface else 0] = mac.lower()

    def hostname(self, name=None):
        if name is None:
            return self.name
        self.name = name

    def set_country(self, policy, code, start, count):
        """The channels the station scans and joins on follow it (the APs of the list
        carry no country, so policy 0 changes nothing)."""
        self.country = (policy, code, start, count)
        return True

    def set_dhcp(self, mask):
        """Station DHCP off: the next join gets no address (no static IP here)."""
        self.dhcp = mask
        return True

    def set_pm(self, mode):
        self.pm = mode
        return True

    def set_txpower(self, dbm):
        self.txpower = dbm
        return True

    # -- the soft-AP --------------------------------------------------------------------
    def ap_ifconfig(self):
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")

    def softap(self, ssid, pwd, channel, ecn, max_conn, hidden):
        self.ap_conf = (ssid, pwd, channel, ecn, max_conn, hidden)
        return True

    def stations(self):
        """(ip, mac) of the stations joined to the soft-AP: there are none."""
        return []


class Board:
    chip = "ESP32"  # what AT+GMR reports: host drivers look for the chip tag
    module = "MicroPython-AT virtual board"

    def __init__(self):
        self.uart = Uart()
        self.radio = Radio()
        self.log = sys.stderr
        self._low = 1 << 30
        # tools/vboard.py --target wroom: the small buffer sizes the core takes on an
        # ESP32 without PSRAM, to measure them here.
        self.small_heap = os.getenv("VBOARD_TARGET") == "wroom"

    def heap(self, caps=None):
        """AT+SYSRAM: the GC heap (the unix port has no other), whatever caps
        ask: (largest free block as far as known, free, lowest free seen, total)."""
        import gc

        gc.collect()
        free = gc.mem_free()
        if free < self._low:
            self._low = free
        return free, free, self._low, free + gc.mem_alloc()

    def reset(self):
        sys.exit(RESET_EXIT)

    def deepsleep(self, ms):
        """AT+GSLP: silent for ms milliseconds, then a reset (an ESP32 wakes from
        deep sleep through its boot). What the host sends meanwhile is read and
        dropped, as a sleeping chip's UART loses it."""
        import select
        import time

        p = select.poll()
        p.register(self.uart.obj, select.POLLIN)
        buf = bytearray(256)
        left = ms
        while left > 0:
            t0 = time.ticks_ms()
            if p.poll(min(left, 1000)) and not self.uart.readinto(buf):
                time.sleep_ms(10)  # hung up: nothing to read, do not spin
            left -= time.ticks_diff(time.ticks_ms(), t0)
        sys.exit(RESET_EXIT)

    def rtc_now(self):
        """The virtual board's RTC: 1970 at power-up (like an ESP32 never set),
        counting on from there."""
        return time.ticks_diff(time.ticks_ms(), _BOOT_MS) / 1000

    def clock_set(self):
        """mbedTLS on the unix port checks certificate dates against the host's
        clock, which is set: always True (the board's own clock may say 1970)."""
        return True

    def rtc_set(self, secs):
        pass  # the clock offset lives in eng.clock; the host's clock is never touched

    def dns_servers(self):
        """With AT+CIPDNS=0 the virtual board asks the host's resolvers
        ($VBOARD_RESOLV_CONF, default /etc/resolv.conf), as DHCP would tell it."""
        out = []
        try:
            with open(os.getenv("VBOARD_RESOLV_CONF") or "/etc/resolv.conf") as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 2 and p[0] == "nameserver" and p[1] not in out:
                        out.append(p[1])
        except OSError:
            pass
        return out[:3]

    def tcpopt(self, sock, linger, nodelay, keepalive):
        """Apply AT+CIPTCPOPT / keep_alive to a TCP socket. The unix port passes
        every option to Linux (numbers, as its socket module lacks the names):
        SO_LINGER, TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE=<keep_alive>,
        TCP_KEEPINTVL=1, TCP_KEEPCNT=3 as the spec maps them."""
        sol = socket.SOL_SOCKET
        if linger >= 0:
            sock.setsockopt(sol, socket.SO_LINGER, b"\x01\x00\x00\x00" + linger.to_bytes(4, "little"))
        else:
            sock.setsockopt(sol, socket.SO_LINGER, bytes(8))
        sock.setsockopt(6, 1, 1 if nodelay else 0)  # IPPROTO_TCP, TCP_NODELAY
        sock.setsockopt(sol, socket.SO_KEEPALIVE, 1 if keepalive else 0)
        if keepalive:
            sock.setsockopt(6, 4, keepalive)  # TCP_KEEPIDLE
            sock.setsockopt(6, 5, 1)  # TCP_KEEPINTVL
            sock.setsockopt(6, 6, 3)  # TCP_KEEPCNT
        return True
