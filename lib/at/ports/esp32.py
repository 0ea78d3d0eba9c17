# The real board: an ESP32 running stock MicroPython. AT commands travel on
# UART1 (ESP-AT's wiring for ESP32-WROOM-32, spec/en/Hardware_connection.rst);
# UART0 keeps the REPL, mpremote and the log (sys.stdout). The radio is
# network.WLAN(STA_IF). Everything MicroPython-specific is here and was checked
# against MicroPython's source: ports/esp32/machine_uart.c, network_wlan.c,
# modsocket.c (see firmware/README.md).
import sys
import time
import socket
import machine
import network

# -- the one place for board wiring ---------------------------------------------------------
# A board_config.py on the board's filesystem may override any key, e.g.
#     HW = {"tx": 4, "rx": 5, "rts": None, "cts": None}
# A pin of None is left unconfigured (no flow-control wiring).
HW = {
    "uart": 1,  # machine.UART id of the AT port
    "tx": 17,
    "rx": 16,
    "rts": 14,  # our RTS output: the host may send while it is low
    "cts": 15,  # our CTS input: we send while the host holds it low
    "rxbuf": 4096,  # ring buffers of the ESP-IDF driver (16-bit sizes, rxbuf >= 256)
    "txbuf": 4096,
    "chip": "ESP32",  # the tag AT+GMR reports; host drivers look for it
    "module": "ESP32-WROOM-32 (MicroPython)",
    # WLAN.status() keeps the last disconnect reason until the next IP, and reports
    # it between automatic retries too: an error counts only after it has lasted
    # this long since the last progress (network_wlan.c, wifi_sta_disconn_reason).
    "fail_hold_ms": 5000,
}

# Seconds from 1970 to the port's time epoch (2000 on the ESP32; 0 where it is 1970).
_EPOCH_2000 = 946684800  # 2000-01-01 in seconds since 1970: where the RTC starts at power-on
_EPOCH = _EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0
_CAP_DEFAULT = 0x1000  # ESP-IDF esp_heap_caps.h MALLOC_CAP_DEFAULT (bit 12)
_CAP_SPIRAM = 0x400  # MALLOC_CAP_SPIRAM (bit 10): a region only where PSRAM is fitted
CLOCK_KNOWN = 1704067200  # 2024-01-01: a clock before this date has never been set
_UNSET_SPAN = 315360000  # 10 years: an RTC that near its power-on date has never been set

FACTORY_UART = [115200, 8, 1, 0, 0]  # AT order: baud, data bits, stop bits, parity, flow

# Radio states: what radio.status() reports (named in at/wifi.py).
from at.wifi import IDLE, CONNECTING, ASSOCIATED, GOT_IP, WRONG_PASSWORD, NO_AP, FAILED  # noqa: E402


def hw_config(over=None):
    """HW with the overrides: `over`, or board_config.HW when there is one."""
    hw = dict(HW)
    if over is None:
        over = {}
        try:
            import board_config
            over = board_config.HW
        except ImportError:
            pass
        except Exception as e:  # a broken board_config.py must not stop the board
            sys.stdout.write("at: board_config.py ignored: %r\n" % (e,))
    hw.update(over)
    return hw


def _line(baud, bits, stop, parity, flow):
    """UART.init() keywords for an AT line setting. machine.UART takes stop=1 or 2
    only: AT's 1.5 stop bits (2) are sent as 2, which a 1.5-bit receiver accepts.

    timeout_char: machine_uart.c sets the RX event threshold to one byte when
    timeout_char is under one character time (12000 // baud + 1 ms), so the
    UART.irq wake-up would fire, and schedule, once per byte; a few character
    times keep ESP-IDF's 120-byte threshold plus an idle timeout of that many
    characters. Under 10 ms (one FreeRTOS tick), readinto() never waits for
    more bytes (v1.27 waits pdMS_TO_TICKS(timeout_char) = 0 ticks)."""
    if baud <= 0:
        raise ValueError("baudrate")  # a bad saved AT+UART_DEF: the caller falls back
    f = (machine.UART.RTS if flow & 1 else 0) | (machine.UART.CTS if flow & 2 else 0)
    return {
        "baudrate": baud,
        "bits": bits,
        "parity": (None, 1, 0)[parity],  # AT 0 none, 1 odd, 2 even; UART: None, odd if &1
        "stop": 1 if stop == 1 else 2,
        "flow": f,
        "timeout_char": min(9, 4 * (12000 // baud + 1)),
    }


def _wake(uart):
    pass  # the wake-up itself is the point: the loop's poll then sees the UART readable


class Uart:
    """UART1 for the engine. write() never blocks the loop: machine.UART.write()
    returns only when every byte is in the TX ring (uart_write_bytes), and poll()
    calls the UART writable whatever the ring holds (machine_uart.c), so this
    keeps its own account of the ring: what was written, drained at the line rate
    since (without CTS flow control nothing can stop the line), and all of it gone
    once txdone() says so (with CTS the host may hold the line: only that counts).
    write() takes what fits; retry_ms() says when to look again."""

    def __init__(self, hw, line, log):
        self.log = log
        self.cap = hw["txbuf"]
        self.q = 0.0  # bytes in the TX ring, at most
        self.t = time.ticks_us()  # when that figure was true
        kw = {"rxbuf": hw["rxbuf"], "txbuf": hw["txbuf"], "timeout": 0}
        for pin in ("tx", "rx", "rts", "cts"):
            if hw[pin] is not None:
                kw[pin] = hw[pin]
        try:
            kw.update(_line(*line))
            self.obj = machine.UART(hw["uart"], **kw)
            self.config = list(line)
        except (ValueError, TypeError, IndexError, OSError) as e:
            log.write("at: UART setting %r refused (%r); using %r\n" % (line, e, FACTORY_UART))
            kw.update(_line(*FACTORY_UART))
            self.obj = machine.UART(hw["uart"], **kw)
            self.config = list(FACTORY_UART)
        self._rate()
        # Wake the loop as soon as the host sends: without a handler the ESP32's
        # poll looks again only at the next FreeRTOS tick (10 ms).
        self.obj.irq(_wake, machine.UART.IRQ_RX)

    def _rate(self):
        baud, bits, stop, parity, flow = self.config
        self.per_us = baud / ((2 + bits + (parity > 0) + (stop != 1)) * 1e6)  # bytes per us
        self.cts = flow & 2

    def readinto(self, buf):
        # timeout=0: returns what the driver holds, or None at once (EAGAIN).
        return self.obj.readinto(buf)

    def room(self):
        q = self.q
        if q:
            now = time.ticks_us()
            if not self.cts:
                q -= time.ticks_diff(now, self.t) * self.per_us
                if q < 0:
                    q = 0.0
            self.t = now
            if q and self.obj.txdone():
                q = 0.0
            self.q = q
        return self.cap - int(q + 0.999)

    def write(self, data):
        """Put as much of data in the TX ring as fits without waiting; the count."""
        n = self.room()
        if n <= 0:
            return 0
        if n < len(data):
            data = memoryview(data)[:n]
        else:
            n = len(data)
        if not self.q:
            self.t = time.ticks_us()
        self.obj.write(data)
        self.q += n
        return n

    def retry_ms(self):
        """When the ring will have room for half of itself (with CTS flow control:
        when it would be empty if the host let it drain; txdone() then confirms)."""
        left = self.q if self.cts else self.q - self.cap // 2
        return max(1, int(left / self.per_us / 1000) + 1)

    def drain(self):
        """Wait until every written byte has left the wire (flush times out, e.g. when
        the host holds CTS, with OSError ETIMEDOUT)."""
        try:
            self.obj.flush()
        except OSError:
            pass

    def configure(self, baud, bits, stop, parity, flow):
        # The final result was written at the old rate: let it go out first. UART.init()
        # waits at most 1 s for that, too short for a full txbuf at a low rate.
        self.drain()
        try:
            self.obj.init(**_line(baud, bits, stop, parity, flow))
        except (ValueError, OSError) as e:
            self.log.write("at: UART setting refused: %r\n" % (e,))
            return
        if stop == 2:
            self.log.write("at: 1.5 stop bits are sent as 2\n")
        self.config = [baud, bits, stop, parity, flow]
        self.q = 0.0  # drain() emptied the ring before the switch
        self._rate()


# WLAN.status() failure codes (ESP-IDF disconnect reasons) -> radio states. Only
# the names this build defines are used (ports/esp32/modnetwork_globals.h).
_FAILS = {}
for _name, _code in (
    ("STAT_WRONG_PASSWORD", WRONG_PASSWORD),  # AUTH_FAIL and CONNECTION_FAIL
    ("STAT_HANDSHAKE_TIMEOUT", WRONG_PASSWORD),  # a WPA handshake that never finishes
    ("STAT_NO_AP_FOUND", NO_AP),
    ("STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD", NO_AP),
    ("STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD", NO_AP),
    ("STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY", NO_AP),
    ("STAT_CONNECT_FAIL", FAILED),
    ("STAT_ASSOC_FAIL", FAILED),
    ("STAT_BEACON_TIMEOUT", FAILED),
):
    if hasattr(network, _name):
        _FAILS[getattr(network, _name)] = _code
_BUSY = (network.STAT_IDLE, network.STAT_CONNECTING)


def _mac_str(b):
    return ":".join("%02x" % x for x in b)


def _mac_bytes(s):
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise ValueError("bssid")
    return b


# AT+SLEEP modes -> WLAN.config(pm=): 1 modem sleep by DTIM (WIFI_PS_MIN_MODEM), 3 by
# listen interval (WIFI_PS_MAX_MODEM). 2, light sleep, needs automatic light sleep
# (CONFIG_PM_ENABLE), which a stock image lacks.
_PM = {0: "PM_NONE", 1: "PM_PERFORMANCE", 3: "PM_POWERSAVE"}


def _text(b):
    try:
        return b.decode()
    except UnicodeError:  # an SSID that is not UTF-8: its bytes as they are
        return "".join(chr(c) for c in b)


class ScanJob:
    """A scan running in the background: done, then its result or error."""
    __slots__ = ("result", "error", "done")

    def __init__(self):
        self.result = None
        self.error = None
        self.done = False


class Radio:
    """network.WLAN's station (self.sta) and soft-AP (self.ap), as ports/esp32/
    network_wlan.c, network_common.c and extmod/modnetwork.c implement them."""

    def __init__(self, hold_ms, log):
        self.sta = network.WLAN(network.STA_IF)
        self.ap = network.WLAN(network.AP_IF)
        self.sta.active(True)  # connect() needs a started STA
        self.hold = hold_ms
        self.log = log
        self._want = False  # a connect() not yet undone by disconnect()
        self._err = 0  # connect() itself failed
        self._bad = None  # ticks_ms when the current run of error statuses began
        self._bssid = None

    def set_mode(self, mode):
        """AT+CWMODE: bit 0 the station, bit 1 the soft-AP; 0 stops the radio
        (WLAN.active() of both false is esp_wifi_stop()). What comes up first, so
        that a 1 -> 2 switch never stops the driver in between."""
        try:
            for wlan, on in ((self.sta, mode & 1), (self.ap, mode & 2)):
                if on:
                    wlan.active(True)
            for wlan, on in ((self.sta, mode & 1), (self.ap, mode & 2)):
                if not on:
                    wlan.active(False)
        except OSError as e:
            self.log.write("at: WLAN.active failed: %r\n" % (e,))

    def connect(self, ssid, pwd, bssid=None, threshold=0, scan_mode=0):
        """WLAN.connect() has neither ESP-IDF's authmode threshold nor its
        all-channel scan (AT+CWJAP's <authmode>, <scan_mode>=1): when the host asks
        for one of them, the AP is picked from a scan (blocks ~2 s) and joined by its
        BSSID. By default nothing is scanned (ESP-IDF's fast scan is the default)."""
        if self._want:
            self.disconnect()  # esp_wifi_connect() refuses while already connecting
        self._want = True
        self._err = 0
        self._bad = None
        if not bssid and (threshold or scan_mode):
            pick = None
            try:
                found = self.sta.scan()
            except OSError:
                found = []
            name = ssid.encode()
            for r in found:  # (ssid, bssid, channel, rssi, authmode, hidden)
                if r[0] == name and r[4] >= threshold:
                    if pick is None or (r[3] > pick[3] if scan_mode else r[2] < pick[2]):
                        pick = r
            if pick is None:
                self._err = NO_AP
                return
            bssid = _mac_str(pick[1])
        self._bssid = bssid.lower() if bssid else None
        try:
            self.sta.connect(ssid, pwd, bssid=_mac_bytes(bssid) if bssid else None)
        except (OSError, ValueError) as e:
            self.log.write("at: WLAN.connect failed: %r\n" % (e,))
            self._err = FAILED

    def disconnect(self):
        self._want = False
        self._bssid = None
        try:
            self.sta.disconnect()
        except OSError:
            pass

    def _associated(self):
        try:
            self.sta.status("rssi")  # OSError "Wifi Not Connected" unless associated
            return True
        except OSError:
            return False

    def status(self):
        if not self._want:
            return IDLE
        if self._err:
            return self._err
        s = self.sta.status()
        if s == network.STAT_GOT_IP:
            self._bad = None
            return GOT_IP
        if self._associated():
            self._bad = None
            return ASSOCIATED
        if s in _BUSY:  # IDLE too: the reason ASSOC_LEAVE of our own disconnect()
            self._bad = None
            return CONNECTING
        now = time.ticks_ms()
        if self._bad is None:
            self._bad = now
        if time.ticks_diff(now, self._bad) < self.hold:
            return CONNECTING
        return _FAILS.get(s, FAILED)

    def ap_info(self):
        sta = self.sta
        ssid = sta.config("ssid")
        ch = sta.config("channel")
        rssi = sta.status("rssi")
        if self._bssid is None:
            # MicroPython gives no BSSID for the joined AP: find it in a scan (blocks
            # ~2 s, once per association). Unknown stays "" rather than made up.
            best = None
            for r in sta.scan():
                if r[0] == ssid.encode() and r[2] == ch:
                    if best is None or abs(r[3] - rssi) < abs(best[3] - rssi):
                        best = r
            if best is None:
                return ssid, "", ch, rssi
            self._bssid = _mac_str(best[1])
        return ssid, self._bssid, ch, rssi

    def ifconfig(self):
        return self.sta.ifconfig()

    def ip6(self):
        """(link-local, global) from WLAN.ipconfig('addr6') where the build has
        IPv6; None where it has not."""
        try:
            addrs = self.sta.ipconfig("addr6")
        except (AttributeError, ValueError, OSError, TypeError):
            return None
        ll = gl = None
        for a in addrs:
            ip = a[0] if isinstance(a, tuple) else a
            if ip.lower().startswith("fe80"):
                ll = ll or ip
            else:
                gl = gl or ip
        return (ll, gl) if ll else None

    def scan_job(self, ssid=None, passive=False):
        """scan() in a thread, so the loop answers the host ("busy p...") for the
        ~2 s it takes: WLAN.scan() releases the GIL around esp_wifi_scan_start()
        (v1.27.0 ports/esp32/network_wlan.c l.448-450). The thread's 5 KB stack
        comes from the IDF heap for the scan's length (mpthreadport.c l.40-41).
        Returns a ScanJob the thread fills; without a thread (no memory for its
        stack) the scan runs here, blocking, as before."""
        job = ScanJob()

        def work():
            try:
                job.result = self.scan(ssid, passive)
            except Exception as e:
                job.error = e
            job.done = True

        try:
            import _thread
            _thread.start_new_thread(work, ())
        except Exception:  # ImportError, or OSError/MemoryError: no stack for it
            work()
        return job

    def scan(self, ssid=None, passive=False):
        """WLAN.scan(): every channel, active, hidden APs with an empty SSID; it
        blocks the caller for the ~2 s the scan takes. It cannot scan for one SSID or
        passively (`ssid`, `passive` are ignored; the caller filters). Its tuples
        (ssid, bssid, channel, rssi, authmode, hidden) carry no cipher, protocol or
        WPS: those are printed as ESP-AT's "unknown" cipher (7; none for an open AP),
        protocol 0 and WPS 0 rather than made up."""
        out = []
        for r in self.sta.scan():
            c = 0 if r[4] == 0 else 7
            out.append((r[4], _text(r[0]), r[3], _mac_str(r[1]), r[2], c, c, 0, 0))
        return out

    def mac(self, iface=0):
        return _mac_str((self.ap if iface else self.sta).config("mac"))

    def set_mac(self, iface, mac):
        """WLAN.config(mac=) (esp_wifi_set_mac); OSError when ESP-IDF refuses it."""
        (self.ap if iface else self.sta).config(mac=_mac_bytes(mac))

    def hostname(self, name=None):
        """network.hostname(): sent to DHCP from the next WLAN.connect() on."""
        if name is None:
            return network.hostname()
        network.hostname(name)

    def set_country(self, policy, code, start, count):
        """network.country() keeps a two-letter code, but the ESP32 port never hands
        it to the radio (no esp_wifi_set_country()): ESP-IDF's default stays, the
        world-safe "01" with channels 1-11. True only when that is what was asked."""
        if len(code) == 2:
            network.country(code)
        return start == 1 and count == 11

    def set_dhcp(self, mask):
        """Station DHCP through WLAN.ipconfig(dhcp4=). MicroPython has no way to
        stop the soft-AP's DHCP server (ipconfig(dhcp4=) is for STA and LAN only):
        False when asked to."""
        if not mask & 2:
            return False
        try:
            self.sta.ipconfig(dhcp4=bool(mask & 1))
        except (OSError, ValueError, TypeError) as e:
            self.log.write("at: WLAN.ipconfig(dhcp4) failed: %r\n" % (e,))
            return False
        return True

    def set_txpower(self, dbm):
        """WLAN.config(txpower=dBm): esp_wifi_set_max_tx_power (network_wlan.c)."""
        try:
            self.sta.config(txpower=dbm)
        except (OSError, ValueError, RuntimeError) as e:
            self.log.write("at: WLAN.config(txpower) failed: %r\n" % (e,))
            return False
        return True

    def set_pm(self, mode):
        name = _PM.get(mode)
        if name is None:
            return False
        try:
            self.sta.config(pm=getattr(network.WLAN, name))
        except (OSError, ValueError, AttributeError) as e:
            self.log.write("at: WLAN.config(pm) failed: %r\n" % (e,))
            return False
        return True

    # -- the soft-AP ----------------------------------------------------------------------
    def ap_ifconfig(self):
        return self.ap.ifconfig()

    def softap(self, ssid, pwd, channel, ecn, max_conn, hidden):
        """AT+CWSAP through WLAN.config(); ESP-AT's <ecn> values are ESP-IDF's
        authmodes, which WLAN's security= takes as they are."""
        try:
            self.ap.config(ssid=ssid, key=pwd, channel=channel, security=ecn,
                           max_clients=max_conn, hidden=bool(hidden))
        except (OSError, ValueError) as e:
            self.log.write("at: soft-AP config refused: %r\n" % (e,))
            return False
        return True

    def stations(self):
        """(ip, mac) per station joined to the soft-AP: WLAN.status('stations') gives
        (mac, ip or None); an address not yet leased is 0.0.0.0, as ESP-AT prints it."""
        try:
            found = self.ap.status("stations")  # the stubs say int; it is a list of tuples
        except OSError:  # the soft-AP is not up
            return []
        return [(s[1] if len(s) > 1 and s[1] else "0.0.0.0", _mac_str(s[0]))
                for s in found]  # type: ignore[attr-defined]


class Board:
    def __init__(self, cfg=None, hw=None):
        """cfg: the AT settings (anything with .get); its "uart_def" (AT+UART_DEF)
        sets the UART at boot. Default: the settings file. hw: overrides of HW."""
        self.log = sys.stdout  # UART0: REPL and log, away from the AT stream
        if cfg is None:
            from at.store import Store

            cfg = Store(self.log)
        hw = hw_config(hw)
        self.chip = hw["chip"]
        self.module = hw["module"]
        self.uart = Uart(hw, cfg.get("uart_def") or FACTORY_UART, self.log)
        self.radio = Radio(hw["fail_hold_ms"], self.log)
        # Without PSRAM (a WROOM) the GC heap starts at 56 KB and the IDF heap needs
        # the rest (BENCHMARKS.md "Heap"): the core takes its small buffer sizes.
        self.small_heap = self.heap(_CAP_SPIRAM)[3] == 0

    def heap(self, caps=None):
        """AT+SYSRAM: the IDF heap, as ESP-AT reports it (Wi-Fi, lwIP, mbedTLS and
        the UART driver live there; MicroPython's GC heap is carved out of it and
        shows as used). (largest free block, free, lowest free seen, total) over the
        regions with `caps` (esp32.idf_heap_info); by default MALLOC_CAP_DEFAULT,
        what ESP-AT's esp_get_free_heap_size() counts."""
        import esp32

        largest = free = low = total = 0
        for t, f, big, lo in esp32.idf_heap_info(_CAP_DEFAULT if caps is None else caps):
            total += t
            free += f
            low += lo
            if big > largest:
                largest = big
        return largest, free, low, total

    def reset(self):
        self.uart.drain()  # the OK before a reset must reach the host
        machine.reset()

    def deepsleep(self, ms):
        """AT+GSLP: machine.deepsleep(ms); the wake-up is a boot. 0 means "restart
        now" (machine.deepsleep(0) would sleep until another wake-up source)."""
        self.uart.drain()
        if ms:
            machine.deepsleep(ms)
        machine.reset()

    def tcpopt(self, sock, linger, nodelay, keepalive):
        """AT+CIPTCPOPT on a TCP socket; False when an option cannot be applied.
        The ESP32 port's setsockopt() implements TCP_NODELAY but neither SO_LINGER
        nor SO_KEEPALIVE/TCP_KEEP*: for those it only prints a warning on UART0
        (modsocket.c), so they are never passed on, and never pretended."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)
        return linger < 0 and not keepalive

    # -- OTA of the whole MicroPython image (lib/at/ota.py), esp32.Partition --------
    def image_running(self):
        """The running app partition's label."""
        from esp32 import Partition
        return Partition(Partition.RUNNING).info()[4]  # type: ignore[arg-type]  # stubs: labels only

    def image_next(self):
        """The app partition an update goes to; OSError without OTA partitions."""
        from esp32 import Partition
        return Partition(Partition.RUNNING).get_next_update()  # type: ignore[arg-type]  # stubs: labels only

    def image_mark_valid(self):
        from esp32 import Partition
        Partition.mark_app_valid_cancel_rollback()

    def rtc_now(self):
        """UTC seconds since 1970 from the RTC (kept across a soft reset). The
        ESP32 port's time.time() counts from 2000 (MICROPY_EPOCH_IS_2000), and its
        RTC reads 2000-01-01 at power-on; ESP-AT's clock reads 1970-01-01 then
        (ESP-IDF's time starts at 0), and hosts rely on it: WiFiEspAT's SNTPTime
        example waits for AT+SYSTIMESTAMP? to pass 2000. So an RTC never set
        since power-on is reported as ESP-AT's: seconds since power-on."""
        t = time.time() + _EPOCH
        up = t - _EPOCH_2000
        return up if 0 <= up < _UNSET_SPAN else t

    def clock_set(self):
        """Is the RTC (what mbedTLS checks certificate dates against) set? At
        power-on it reads 2000-01-01."""
        return time.time() + _EPOCH >= CLOCK_KNOWN

    def rtc_set(self, secs):
        """Set machine.RTC from SNTP or AT+SYSTIMESTAMP= (weekday: Monday is 0, as
        time.gmtime gives it). A time in the first ten years from 1970 (a host
        counting from power-on, as ESP-AT's clock does) is kept in the power-on
        frame rtc_now() reads, from 2000-01-01, inside the port's 2000 epoch."""
        secs = int(secs)
        if secs < _UNSET_SPAN:
            secs += _EPOCH_2000
        y, mo, d, h, mi, s, wd = time.gmtime(secs - _EPOCH)[:7]
        machine.RTC().datetime((y, mo, d, wd, h, mi, s, 0))

    def dns_servers(self):
        """The DNS server DHCP gave the station (WLAN.ifconfig()'s fourth field)."""
        try:
            dns = self.radio.ifconfig()[3]
        except (OSError, IndexError):
            return []
        return [dns] if dns and dns != "0.0.0.0" else []
