# Minimal stand-ins for the ESP32 port's machine, network, esp32, socket, tls and
# select, just enough for the firmware to import and to reach "ready" (no I/O at
# all). The heap probe (heap32_probe.py) puts them in sys.modules under the real names, on
# both the 32-bit webassembly port (which has no socket, machine, network, tls)
# and the 64-bit unix port (whose own socket/tls are then not used), so that both
# run the same code. Constants are the ESP32 port's (copied from tools/twin/).
# The values do not matter for the heap; what matters is that the firmware finds
# every name it reads.
import sys


class _Mod:
    """A module-like namespace (module objects cannot be made from Python code on
    every port; a class instance with attributes does as well for import)."""

    def __init__(self, name, **names):
        self.__name__ = name
        for k, v in names.items():
            setattr(self, k, v)


# -- machine ------------------------------------------------------------------
class UART:
    RTS = 1
    CTS = 2
    INV_TX = 32
    INV_RX = 4
    INV_RTS = 64
    INV_CTS = 8
    IRQ_RX = 1
    IRQ_RXIDLE = 0x1000
    IRQ_BREAK = 2
    on_write = None  # the probe sets this: called with each write's data

    def __init__(self, uid, **kw):
        self.id = uid

    def init(self, **kw):
        pass

    def irq(self, handler=None, trigger=0, hard=False):
        pass

    def write(self, data):
        if UART.on_write is not None:
            UART.on_write(data)
        return len(data)

    def readinto(self, buf, n=None):
        return None

    def read(self, n=None):
        return None

    def any(self):
        return 0

    def txdone(self):
        return True

    def flush(self):
        pass

    def deinit(self):
        pass


class RTC:
    def datetime(self, t=None):
        return (2000, 1, 1, 5, 0, 0, 0, 0)

    def init(self, t=None):
        pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, *a, **kw):
        pass

    def value(self, v=None):
        return 0


def _reset():
    raise SystemExit(3)


def _deepsleep(ms=0):
    raise SystemExit(3)


machine = _Mod("machine", UART=UART, RTC=RTC, Pin=Pin, reset=_reset, soft_reset=_reset, deepsleep=_deepsleep,
               unique_id=lambda: b"\x24\x0a\xc4\x00\x00\x01", freq=lambda f=None: 240000000,
               reset_cause=lambda: 1, PWRON_RESET=1, HARD_RESET=2, WDT_RESET=3, DEEPSLEEP_RESET=4,
               SOFT_RESET=5, idle=lambda: None)


# -- network ------------------------------------------------------------------
class WLAN:
    IF_STA = 0
    IF_AP = 1
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
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, iface=0):
        self.iface = iface
        self.on = False

    def active(self, on=None):
        if on is None:
            return self.on
        self.on = bool(on)

    def connect(self, *a, **kw):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return False

    def status(self, what=None):
        if what == "stations":
            return []
        if what == "rssi":
            return -50
        return 1000  # STAT_IDLE

    def scan(self, *a, **kw):
        return []

    def config(self, *a, **kw):
        if a:
            k = a[0]
            if k == "mac":
                return b"\x24\x0a\xc4\x00\x00\x01"
            if k in ("ssid", "essid", "hostname", "key"):
                return ""
            return 0

    def ifconfig(self, c=None):
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def ipconfig(self, *a, **kw):
        if a and a[0] == "addr6":
            raise OSError(22)
        return None


network = _Mod("network", WLAN=WLAN, STA_IF=0, AP_IF=1, MODE_11B=1, MODE_11G=2, MODE_11N=4, MODE_LR=8,
               AUTH_OPEN=0, AUTH_WEP=1, AUTH_WPA_PSK=2, AUTH_WPA2_PSK=3, AUTH_WPA_WPA2_PSK=4,
               AUTH_WPA2_ENTERPRISE=5, AUTH_WPA3_PSK=6, AUTH_WPA2_WPA3_PSK=7, AUTH_WAPI_PSK=8, AUTH_OWE=9,
               STAT_IDLE=1000, STAT_CONNECTING=1001, STAT_GOT_IP=1010, STAT_BEACON_TIMEOUT=200,
               STAT_NO_AP_FOUND=201, STAT_WRONG_PASSWORD=202, STAT_ASSOC_FAIL=203, STAT_CONNECT_FAIL=203,
               STAT_HANDSHAKE_TIMEOUT=204, STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY=210,
               STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD=211, STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD=212,
               hostname=lambda name=None: "espressif", country=lambda code=None: "XX",
               ipconfig=lambda *a, **kw: None)


# -- esp32 --------------------------------------------------------------------
class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, which, *a):
        self.which = which

    def info(self):
        return (0, 0, 0x10000, 0x1F0000, "factory", False)

    def get_next_update(self):
        raise OSError(2)

    def set_boot(self):
        pass

    @staticmethod
    def mark_app_valid_cancel_rollback():
        pass

    @staticmethod
    def find(*a, **kw):
        return []


esp32 = _Mod("esp32", Partition=Partition, HEAP_DATA=4, HEAP_EXEC=1,
             # a WROOM: no region has MALLOC_CAP_SPIRAM (0x400), so the firmware takes
             # its no-PSRAM sizes (at.ports.esp32.Board)
             idf_heap_info=lambda cap=4: [] if cap & 0x400 else [(100000, 50000, 40000, 30000)])


# -- socket -------------------------------------------------------------------
class Socket:
    def __init__(self, af=2, typ=1, proto=0):
        pass

    def setblocking(self, b):
        pass

    def settimeout(self, t):
        pass

    def setsockopt(self, *a):
        pass

    def bind(self, a):
        pass

    def listen(self, n=0):
        pass

    def connect(self, a):
        raise OSError(119)

    def close(self):
        pass


def _getaddrinfo(host, port, af=0, typ=0, proto=0, flags=0):
    # The ESP32 port: IPv4 only; any other family gives None as the address.
    if af == 10:
        return [(10, 1, 0, "", None)]
    return [(2, 1, 0, "", ("127.0.0.1", port))]


socket = _Mod("socket", socket=Socket, getaddrinfo=_getaddrinfo, AF_INET=2, AF_INET6=10, SOCK_STREAM=1,
              SOCK_DGRAM=2, SOCK_RAW=3, IPPROTO_IP=0, IPPROTO_TCP=6, IPPROTO_UDP=17, SOL_SOCKET=0xFFF,
              SO_REUSEADDR=4, SO_BROADCAST=0x20, SO_BINDTODEVICE=0x100B, IP_ADD_MEMBERSHIP=3,
              TCP_NODELAY=1, MSG_PEEK=1, MSG_DONTWAIT=8)


# -- tls ----------------------------------------------------------------------
class SSLContext:
    def __init__(self, protocol=0):
        self.protocol = protocol
        self.verify_mode = 0

    def load_cert_chain(self, *a):
        pass

    def load_verify_locations(self, *a, **kw):
        pass

    def set_ciphers(self, c):
        pass

    def get_ciphers(self):
        return []

    def wrap_socket(self, sock, **kw):
        raise OSError(5)


tls = _Mod("tls", SSLContext=SSLContext, PROTOCOL_TLS_CLIENT=0, PROTOCOL_TLS_SERVER=1, CERT_NONE=0,
           CERT_OPTIONAL=1, CERT_REQUIRED=2, MBEDTLS_VERSION="Mbed TLS 3.6.0")


# -- select -------------------------------------------------------------------
# The real select.poll wants streams (the fake UART is none); this one only keeps
# the registrations, as the C poll object's map does.
class _Poll:
    def __init__(self):
        self.m = {}

    def register(self, obj, mask=7):
        self.m[obj] = mask

    def modify(self, obj, mask):
        self.m[obj] = mask

    def unregister(self, obj):
        self.m.pop(obj, None)

    def poll(self, timeout=-1):
        return []

    def ipoll(self, timeout=-1, flags=0):
        return iter(())


select = _Mod("select", poll=_Poll, POLLIN=1, POLLOUT=4, POLLERR=8, POLLHUP=16)


def _urandom(n):
    return bytes(n)


def install():
    import os
    if not hasattr(os, "urandom"):  # the webassembly port's os has none
        os.urandom = _urandom
    for name in ("machine", "network", "esp32", "socket", "tls", "select"):
        sys.modules[name] = globals()[name]
