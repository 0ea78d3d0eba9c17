# The virtual board: the firmware under MicroPython's unix port. The AT UART is
# the pseudo-terminal the launcher (tools/vboard.py) hands over as stdin/stdout,
# already non-blocking; logs go to stderr. The radio is simulated from a JSON
# list of access points (tools/aps.json, or $VBOARD_APS); joining one gives the
# host's own network at $VBOARD_IP (127.0.0.1 by default).
import json
import os
import sys
import socket

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
        try:
            return self._out.write(data)
        except OSError:  # EAGAIN: the host is not reading
            return 0

    def configure(self, baud, bits, stop, parity, flow):
        self.config = [baud, bits, stop, parity, flow]
        try:
            import termios
            attr = termios.tcgetattr(0)
            speed = getattr(termios, "B%d" % baud, None)
            if speed is not None:
                attr[4] = attr[5] = speed
                termios.tcsetattr(0, termios.TCSANOW, attr)
        except Exception:
            pass  # a pty ignores the rate anyway; the setting is what AT+UART_CUR? reports


class Radio:
    """A station that can join the access points listed in a JSON file."""

    def __init__(self):
        path = os.getenv("VBOARD_APS") or "aps.json"
        try:
            with open(path) as f:
                self.aps = json.load(f)
        except (OSError, ValueError):
            self.aps = []
        self.ip = os.getenv("VBOARD_IP") or "127.0.0.1"
        self._status = 0
        self._ap = None

    def connect(self, ssid, pwd, bssid=None):
        self._ap = None
        for ap in self.aps:
            if ap["ssid"] == ssid and (not bssid or ap["bssid"].lower() == bssid.lower()):
                if ap.get("password", "") != pwd:
                    self._status = -2
                    return
                self._ap = ap
                self._status = 3 if ap.get("dhcp", True) else 2
                return
        self._status = -3

    def disconnect(self):
        self._status = 0
        self._ap = None

    def status(self):
        return self._status

    def ap_info(self):
        ap = self._ap
        return ap["ssid"], ap["bssid"], ap.get("channel", 1), ap.get("rssi", -50)

    def ifconfig(self):
        return self.ip, "255.0.0.0", self.ip, self.ip

    def ap_ifconfig(self):
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")

    def mac(self, iface=0):
        return "02:00:00:00:00:%02x" % (1 + iface)

    def ip6(self):
        """Link-local from the MAC (EUI-64), and $VBOARD_IP6 (::1 by default) as
        the global address: joining gives the host's own network, loopback included."""
        return "fe80::ff:fe00:1", os.getenv("VBOARD_IP6") or "::1"


class Board:
    chip = "ESP32"  # what AT+GMR reports: host drivers look for the chip tag
    module = "MicroPython-AT virtual board"

    def __init__(self):
        self.uart = Uart()
        self.radio = Radio()
        self.log = sys.stderr
        self.min_free = 1 << 30

    def reset(self):
        sys.exit(RESET_EXIT)

    def rtc_now(self):
        """The virtual board's RTC at power-up: 1970, like an ESP32 never set."""
        return 0

    def rtc_set(self, secs):
        pass  # the clock offset lives in at.clock; the host's clock is never touched

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
