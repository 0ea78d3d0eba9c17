"""Basic AT commands (Basic_AT_Commands.rst): AT, ATE, AT+RST, AT+GMR, AT+CMD,
AT+RESTORE, AT+SYSSTORE, AT+SYSMSG, AT+SYSLOG, AT+SYSRAM, AT+UART_CUR/DEF, and
the settings file's robustness on the virtual board."""
import json
import pathlib
import re
import time

import pytest

from board import FINAL
from peers import wait_for

pytestmark = pytest.mark.timeout(60)

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
READY = b"\r\nready\r\n"


def err(code):
    return b"ERR CODE:0x%08x\r\n" % code + ERROR


def rst(d):
    """AT+RST with echo off: OK, then ready; echo is on again afterwards."""
    d.write(b"AT+RST\r\n")
    assert d.read_until(FINAL, timeout=10) == OK
    assert d.read_until(READY, timeout=10) == READY
    assert d.quiet(0.2) == b""
    assert d.cmd("ATE0") == b"ATE0\r\n" + OK


def query(d, name):
    r = d.cmd("AT%s?" % name)
    m = re.fullmatch(rb"\%s:(.*)\r\n\r\nOK\r\n" % name.encode(), r)
    assert m, r
    return m.group(1).decode()


@pytest.fixture
def slog(dut):
    assert dut.cmd("AT+SYSLOG=1") == OK
    return dut


# -- AT, ATE -----------------------------------------------------------------------------------

def test_at(raw_dut):
    assert raw_dut.cmd("AT") == b"AT\r\n\r\nOK\r\n"
    raw_dut.ok("ATE0")
    assert raw_dut.cmd("AT") == b"\r\nOK\r\n"


def test_ate(raw_dut):
    d = raw_dut
    assert d.cmd("ATE0") == b"ATE0\r\n" + OK
    assert d.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
    assert d.cmd("ATE1") == OK
    assert d.cmd("AT+CWMODE?") == b"AT+CWMODE?\r\n+CWMODE:1\r\n" + OK


# -- AT+RST ------------------------------------------------------------------------------------

def test_rst_prints_ok_then_ready(raw_dut):
    d = raw_dut
    d.write(b"AT+RST\r\n")
    assert d.read_until(READY, timeout=10) == b"AT+RST\r\n" + OK + READY
    assert d.quiet(0.3) == b""
    assert d.cmd("AT") == b"AT\r\n" + OK  # echo is on again after a reset


def test_rst_keeps_settings_and_drops_echo_off(dut):
    assert dut.cmd("AT+CWMODE=3") == OK
    assert dut.cmd("AT+SYSMSG=5") == OK
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:3\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:5\r\n" + OK


def test_rst_wrong_types(slog):
    assert slog.cmd("AT+RST?") == err(0x010C0000)
    assert slog.cmd("AT+RST=?") == err(0x010C0000)
    assert slog.cmd("AT") == OK  # and no reset happened
    assert slog.quiet(0.3) == b""


def test_commands_right_after_rst(dut):
    """A host may send its next command the moment ready arrives (lwESP does)."""
    dut.write(b"AT+RST\r\n")
    dut.read_until(READY, timeout=10)
    dut.write(b"ATE0\r\nAT+GMR\r\nAT+CWMODE?\r\n")
    assert dut.read_until(FINAL) == b"ATE0\r\n" + OK
    assert dut.read_until(FINAL).startswith(b"AT version:")
    assert dut.read_until(FINAL) == b"+CWMODE:1\r\n" + OK


# -- AT+GMR --------------------------------------------------------------------------------------

def test_gmr(dut):
    r = dut.cmd("AT+GMR")
    assert r.endswith(b"\r\n" + OK)
    lines = r[:-len(OK)].split(b"\r\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert len(lines) == 4, lines
    assert re.fullmatch(rb"AT version:\d+\.\d+\.\d+\.\d+\(.+ - ESP32 - .+\)", lines[0]), lines[0]
    assert b"- ESP32 -" in lines[0]  # lwESP tells chips apart by this tag
    assert re.fullmatch(rb"SDK version:\S.*", lines[1]), lines[1]
    assert re.fullmatch(rb"compile time\(.+\):\S.*", lines[2]), lines[2]
    assert re.fullmatch(rb"Bin version:\S+\(.+\)", lines[3]), lines[3]
    assert dut.cmd("AT+GMR") == r  # stable


# -- AT+CMD? ----------------------------------------------------------------------------------------

CMD_ROW = re.compile(rb'\+CMD:(\d+),"(AT[^"]*)",([01]),([01]),([01]),([01])')


def cmd_rows(d):
    r = d.cmd("AT+CMD?")
    assert r.endswith(b"\r\n" + OK)
    lines = r[:-len(b"\r\n" + OK)].split(b"\r\n")
    rows = []
    for ln in lines:
        m = CMD_ROW.fullmatch(ln)
        assert m, ln
        rows.append((int(m.group(1)), m.group(2).decode()) + tuple(int(m.group(i)) for i in range(3, 7)))
    return rows


def test_cmd_lists_every_command(dut):
    rows = cmd_rows(dut)
    assert [r[0] for r in rows] == list(range(len(rows)))  # indexes from 0, in order
    names = [r[1] for r in rows]
    assert len(set(names)) == len(names)
    table = {r[1]: r[2:] for r in rows}
    # test, query, set, execute
    assert table["AT"] == (0, 0, 0, 1)
    assert table["AT+RST"] == (0, 0, 0, 1)
    assert table["AT+GMR"] == (0, 0, 0, 1)
    assert table["AT+CMD"] == (0, 1, 0, 0)
    assert table["AT+RESTORE"] == (0, 0, 0, 1)
    assert table["AT+SYSSTORE"] == (0, 1, 1, 0)
    assert table["AT+SYSMSG"] == (0, 1, 1, 0)
    assert table["AT+SYSLOG"] == (0, 1, 1, 0)
    assert table["AT+SYSRAM"] == (0, 1, 1, 0)
    assert table["AT+UART_CUR"] == (0, 1, 1, 0)
    assert table["AT+UART_DEF"] == (0, 1, 1, 0)
    assert table["AT+CWMODE"] == (0, 1, 1, 0)
    assert table["AT+CWJAP"] == (0, 1, 1, 1)
    assert table["AT+CWQAP"] == (0, 0, 0, 1)
    assert table["AT+CWSTATE"] == (0, 1, 0, 0)
    assert table["AT+CIPSTA"][1] == 1
    assert table["AT+CWAUTOCONN"] == (0, 1, 1, 0)


def test_cmd_flags_match_what_the_commands_accept(slog):
    """Every type AT+CMD? marks unsupported answers ERR CODE 0x010c0000 (wrong operation type)."""
    rows = cmd_rows(slog)
    forms = ("%s=?", "%s?", "%s=1", "%s")
    checked = 0
    for _, name, *flags in rows:
        for form, flag in zip(forms, flags):
            if flag:
                continue
            assert slog.cmd(form % name) == err(0x010C0000), form % name
            checked += 1
    assert checked > len(rows)
    assert slog.cmd("AT") == OK


# -- AT+RESTORE -------------------------------------------------------------------------------------

def test_restore(raw_dut, opts):
    d = raw_dut
    d.ok("ATE0")
    for c in ("AT+CWMODE=3", "AT+SYSMSG=3", "AT+CWAUTOCONN=0", "AT+SYSSTORE=0"):
        assert d.cmd(c) == OK, c
    d.write(b"AT+RESTORE\r\n")
    assert d.read_until(FINAL, timeout=10) == OK
    assert d.read_until(READY, timeout=10) == READY
    assert d.quiet(0.3) == b""
    # Echo is on again, and every setting is back to its default.
    assert d.cmd("AT+CWMODE?") == b"AT+CWMODE?\r\n+CWMODE:1\r\n" + OK
    d.ok("ATE0")
    assert d.cmd("AT+SYSMSG?") == b"+SYSMSG:0\r\n" + OK
    assert d.cmd("AT+SYSSTORE?") == b"+SYSSTORE:1\r\n" + OK
    assert d.cmd("AT+CWAUTOCONN?") == b"+CWAUTOCONN:1\r\n" + OK
    assert d.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n" + OK
    assert d.cmd("AT+UART_DEF?") == b"+UART_DEF:115200,8,1,0,0\r\n" + OK


def test_restore_forgets_the_ap(joined, opts):
    d = joined
    d.write(b"AT+RESTORE\r\n")
    d.read_until(READY, timeout=10)
    assert d.quiet(2.0) == b""  # no auto-connect: no AP is saved any more
    d.ok("ATE0")
    assert d.cmd("AT+CWJAP?") == b"No AP\r\n" + OK
    assert d.cmd("AT+CWJAP") == ERROR  # nothing to reuse


def test_restore_resets_uart_def(raw_dut, vboard):
    d = raw_dut
    d.ok("ATE0")
    assert d.cmd("AT+UART_DEF=115200,8,1,0,3") == OK
    d.reset()
    d.ok("ATE0")
    assert d.cmd("AT+UART_DEF?") == b"+UART_DEF:115200,8,1,0,0\r\n" + OK
    assert d.cmd("AT+UART_CUR?") == b"+UART_CUR:115200,8,1,0,0\r\n" + OK


# -- AT+SYSSTORE ------------------------------------------------------------------------------------

def test_sysstore_query_set_range(slog):
    assert slog.cmd("AT+SYSSTORE?") == b"+SYSSTORE:1\r\n" + OK
    assert slog.cmd("AT+SYSSTORE=0") == OK
    assert slog.cmd("AT+SYSSTORE?") == b"+SYSSTORE:0\r\n" + OK
    assert slog.cmd("AT+SYSSTORE=2") == err(0x01070000)
    assert slog.cmd("AT+SYSSTORE=-1") == err(0x01070000)
    assert slog.cmd('AT+SYSSTORE="1"') == err(0x01050000)
    assert slog.cmd("AT+SYSSTORE=1,1") == err(0x01060102)
    assert slog.cmd("AT+SYSSTORE?") == b"+SYSSTORE:0\r\n" + OK
    assert slog.cmd("AT+SYSSTORE=1") == OK
    assert slog.cmd("AT+SYSSTORE?") == b"+SYSSTORE:1\r\n" + OK


def test_sysstore_0_does_not_save(dut):
    assert dut.cmd("AT+SYSSTORE=0") == OK
    assert dut.cmd("AT+CWMODE=2") == OK
    assert dut.cmd("AT+SYSMSG=3") == OK
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:2\r\n" + OK  # queries read RAM
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:0\r\n" + OK
    assert dut.cmd("AT+SYSSTORE?") == b"+SYSSTORE:0\r\n" + OK  # the mode itself is kept


def test_sysstore_1_saves(dut):
    assert dut.cmd("AT+SYSSTORE=1") == OK
    assert dut.cmd("AT+CWMODE=2") == OK
    assert dut.cmd("AT+SYSMSG=3") == OK
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:2\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:3\r\n" + OK


def test_sysstore_0_then_1_saves_the_later_value(dut):
    assert dut.cmd("AT+SYSSTORE=0") == OK
    assert dut.cmd("AT+CWMODE=3") == OK
    assert dut.cmd("AT+SYSSTORE=1") == OK
    assert dut.cmd("AT+CWMODE=2") == OK
    assert dut.cmd("AT+SYSSTORE=0") == OK
    assert dut.cmd("AT+CWMODE=0") == OK
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:2\r\n" + OK


# -- AT+SYSMSG, AT+SYSLOG ------------------------------------------------------------------------------

def test_sysmsg(slog):
    assert slog.cmd("AT+SYSMSG?") == b"+SYSMSG:0\r\n" + OK
    for v in range(8):
        assert slog.cmd("AT+SYSMSG=%d" % v) == OK
        assert slog.cmd("AT+SYSMSG?") == b"+SYSMSG:%d\r\n" % v + OK
    assert slog.cmd("AT+SYSMSG=8") == err(0x01070000)
    assert slog.cmd("AT+SYSMSG=-1") == err(0x01070000)
    assert slog.cmd("AT+SYSMSG=1,2") == err(0x01060102)
    assert slog.cmd("AT+SYSMSG=a") == err(0x01050000)
    assert slog.cmd("AT+SYSMSG") == err(0x010C0000)
    assert slog.cmd("AT+SYSMSG?") == b"+SYSMSG:7\r\n" + OK


def test_syslog(dut):
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n" + OK
    assert dut.cmd("AT+SYSLOG=2") == ERROR  # no ERR CODE: SYSLOG is still 0
    assert dut.cmd("AT+SYSLOG=1") == OK
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:1\r\n" + OK
    assert dut.cmd("AT+SYSLOG=2") == err(0x01070000)
    assert dut.cmd("AT+SYSLOG=-1") == err(0x01070000)
    assert dut.cmd('AT+SYSLOG="1"') == err(0x01050000)
    assert dut.cmd("AT+SYSLOG=0,0") == err(0x01060102)
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:1\r\n" + OK
    assert dut.cmd("AT+SYSLOG=0") == OK
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n" + OK
    assert dut.cmd("AT+SYSLOG=0") == OK


# -- AT+SYSRAM ---------------------------------------------------------------------------------------------

def sysram(d):
    r = d.cmd("AT+SYSRAM?")
    m = re.fullmatch(rb"\+SYSRAM:(\d+),(\d+)\r\n\r\nOK\r\n", r)
    assert m, r
    return int(m.group(1)), int(m.group(2))


def test_sysram_query(dut):
    free, low = sysram(dut)
    assert 4096 < free < 64 * 1024 * 1024
    assert 0 < low <= free
    lows = [low]
    for _ in range(5):
        dut.cmd("AT+GMR")
        f, lo = sysram(dut)
        assert 0 < lo <= f
        lows.append(lo)
    # The minimum only ever goes down.
    assert lows == sorted(lows, reverse=True)


def test_sysram_set(slog):
    for caps in ("0", "0x1800", "6144", "4"):
        r = slog.cmd("AT+SYSRAM=%s" % caps)
        m = re.fullmatch(rb"\+SYSRAM:(\d+),(\d+),(\d+),(\d+)\r\n\r\nOK\r\n", r)
        assert m, (caps, r)
        largest, free, low, total = (int(x) for x in m.groups())
        assert 0 < largest <= free <= total
        assert 0 < low <= total
    assert slog.cmd("AT+SYSRAM=-1") == err(0x01070000)
    assert slog.cmd('AT+SYSRAM="x"') == err(0x01050000)
    assert slog.cmd("AT+SYSRAM=1,2") == err(0x01060102)


def test_sysram_reports_the_idf_heap_on_an_esp32(dut, twin, opts, host_ip):
    """On an ESP32 AT+SYSRAM tells what ESP-AT tells: the IDF heap (esp32.idf_heap_info),
    where Wi-Fi, lwIP and mbedTLS live, not MicroPython's GC heap. The twin's regions
    are an ESP32-WROOM's (tools/twin/esp32.py, from docs/library/esp32.rst), and its
    sockets take their IDF bytes from them: the figures move with them."""
    if not twin:
        pytest.skip("the ESP32's IDF heap (the unix personality has only the GC heap)")
    from peers import TcpServer, hold
    d = dut
    r = d.cmd("AT+SYSRAM=0")  # every region
    assert r == b"+SYSRAM:%s\r\n\r\nOK\r\n" % r[8:-8], r
    largest, free, low, total = (int(x) for x in r[8:-8].split(b","))
    assert total == 240 + 7288 + 16648 + 79912 + 15072 + 113840 + 19456  # the twin's seven regions
    d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    joined, _ = sysram(d)
    assert joined < 100 * 1024  # a WROOM's DRAM with the radio up (a GC heap figure would be above)
    srv = TcpServer(host_ip, hold)
    try:
        assert d.cmd('AT+CIPSTART="TCP","%s",%d' % (host_ip, srv.port)) == b"CONNECT\r\n\r\nOK\r\n"
        linked, low = sysram(d)
        assert joined - linked >= 5 * 1024  # an lwIP socket
        assert low <= linked
        assert d.cmd("AT+CIPCLOSE") == b"CLOSED\r\n\r\nOK\r\n"
    finally:
        srv.close()


# -- AT+RFPOWER ---------------------------------------------------------------------------------------------
def test_rfpower(dut):
    """Wi-Fi's TX power as an ESP32 reports it: the level the value falls in
    (Basic_AT_Commands.rst's table), BLE's three kept; lwESP's reset chain sends
    AT+RFPOWER (lwesp_int.c). Not saved; ERROR with Wi-Fi off (AT+CWMODE=0)."""
    d = dut
    assert d.cmd("AT+RFPOWER?") == b"+RFPOWER:78,5,5,5\r\n" + OK
    for v, got in ((40, 34), (43, 34), (44, 44), (51, 44), (52, 52), (59, 56), (60, 60), (70, 66), (72, 72),
                   (77, 72), (78, 78), (84, 78)):
        assert d.cmd("AT+RFPOWER=%d" % v) == OK
        assert d.cmd("AT+RFPOWER?") == b"+RFPOWER:%d,5,5,5\r\n" % got + OK
    assert d.cmd("AT+RFPOWER=60,1,2,3") == OK
    assert d.cmd("AT+RFPOWER?") == b"+RFPOWER:60,1,2,3\r\n" + OK
    for bad in ("AT+RFPOWER=39", "AT+RFPOWER=85", "AT+RFPOWER=60,8", "AT+RFPOWER=", 'AT+RFPOWER="60"',
                "AT+RFPOWER=60,1,2,3,4", "AT+RFPOWER"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad
    assert d.cmd("AT+CWMODE=0") == OK
    assert d.cmd("AT+RFPOWER?") == b"\r\nERROR\r\n"
    assert d.cmd("AT+RFPOWER=60") == b"\r\nERROR\r\n"
    assert d.cmd("AT+CWMODE=1") == OK


# -- AT+SYSTIMESTAMP ----------------------------------------------------------------------------------------
def test_systimestamp(dut):
    """The board's clock in Unix seconds (WiFiEspAT's EspAtDrv asks AT+SYSTIMESTAMP?);
    the set form moves the same clock AT+CIPSNTPTIME? reads, as SNTP would."""
    d = dut
    r = d.cmd("AT+SYSTIMESTAMP?")
    m = re.fullmatch(rb"\+SYSTIMESTAMP:(\d+)\r\n\r\nOK\r\n", r)
    assert m, r
    assert d.cmd("AT+SYSTIMESTAMP=1565853509") == OK  # the spec's example: 2019-08-15 07:18:29 UTC
    t = int(re.fullmatch(rb"\+SYSTIMESTAMP:(\d+)\r\n\r\nOK\r\n", d.cmd("AT+SYSTIMESTAMP?")).group(1))
    assert 1565853509 <= t <= 1565853509 + 2
    d.ok("AT+CIPSNTPCFG=0,0")
    assert d.cmd("AT+CIPSNTPTIME?").startswith(b"+CIPSNTPTIME:Thu Aug 15 07:18:")
    for bad in ("AT+SYSTIMESTAMP=-1", 'AT+SYSTIMESTAMP="1"', "AT+SYSTIMESTAMP=", "AT+SYSTIMESTAMP=1,2",
                "AT+SYSTIMESTAMP"):
        assert d.cmd(bad) == b"\r\nERROR\r\n", bad


# -- AT+UART_CUR, AT+UART_DEF --------------------------------------------------------------------------------

RANGES = [(80, 5000000), (5, 8), (1, 3), (0, 2), (0, 3)]
DEFAULT = [115200, 8, 1, 0, 0]


@pytest.mark.parametrize("name", ["+UART_CUR", "+UART_DEF"])
def test_uart_query_default(dut, name):
    assert dut.cmd("AT%s?" % name) == b"%s:115200,8,1,0,0\r\n" % name.encode() + OK


@pytest.mark.parametrize("name", ["+UART_CUR", "+UART_DEF"])
def test_uart_range_checks(slog, name):
    d = slog
    for i, (lo, hi) in enumerate(RANGES):
        for bad in (lo - 1, hi + 1):
            p = list(DEFAULT)
            p[i] = bad
            line = "AT%s=%s" % (name, ",".join(map(str, p)))
            assert d.cmd(line) == err(0x01070000 | i), line
    assert d.cmd("AT%s=115200,8,1,0" % name) == err(0x01060504)
    assert d.cmd("AT%s=115200,8,1,0,0,0" % name) == err(0x01060506)
    assert d.cmd("AT%s=115200,8,1,,0" % name) == err(0x01060405)
    assert d.cmd('AT%s="115200",8,1,0,0' % name) == err(0x01050000)
    # Nothing was changed by the failures.
    assert d.cmd("AT%s?" % name) == b"%s:115200,8,1,0,0\r\n" % name.encode() + OK
    # Setting the current values is always safe, on any board.
    assert d.cmd("AT%s=115200,8,1,0,0" % name) == OK
    assert d.cmd("AT%s?" % name) == b"%s:115200,8,1,0,0\r\n" % name.encode() + OK


@pytest.mark.parametrize("name", ["+UART_CUR", "+UART_DEF"])
def test_uart_bounds_are_accepted(dut, vboard, name):
    """Every bound is accepted (virtual board only: a real UART would change under the host)."""
    d = dut
    for i, (lo, hi) in enumerate(RANGES):
        for good in (lo, hi):
            p = list(DEFAULT)
            p[i] = good
            vals = ",".join(map(str, p))
            assert d.cmd("AT%s=%s" % (name, vals), timeout=20) == OK, vals
            # A host switches its own UART after the OK before it sends again; the
            # ESP32 drops what arrives while it switches (uart_flush_input).
            time.sleep(0.05)
            # The ESP32 twin paces its UART: at 80 baud a query and its answer take 5 s.
            wait = 20 if p[0] < 1200 else 5
            assert d.cmd("AT+UART_CUR?", timeout=wait) == b"+UART_CUR:%s\r\n" % vals.encode() + OK
            if name == "+UART_DEF":
                assert d.cmd("AT+UART_DEF?", timeout=wait) == b"+UART_DEF:%s\r\n" % vals.encode() + OK
    assert d.cmd("AT%s=115200,8,1,0,0" % name, timeout=20) == OK


def test_uart_def_survives_rst_uart_cur_does_not(dut, vboard):
    d = dut
    assert d.cmd("AT+UART_DEF=57600,7,2,1,3") == OK
    # UART_DEF applies at once too.
    assert d.cmd("AT+UART_CUR?") == b"+UART_CUR:57600,7,2,1,3\r\n" + OK
    assert d.cmd("AT+UART_CUR=9600,8,1,0,0") == OK
    assert d.cmd("AT+UART_CUR?") == b"+UART_CUR:9600,8,1,0,0\r\n" + OK
    assert d.cmd("AT+UART_DEF?") == b"+UART_DEF:57600,7,2,1,3\r\n" + OK
    rst(d)
    # After a reset the UART runs with the saved default; UART_CUR is gone.
    assert d.cmd("AT+UART_CUR?") == b"+UART_CUR:57600,7,2,1,3\r\n" + OK
    assert d.cmd("AT+UART_DEF?") == b"+UART_DEF:57600,7,2,1,3\r\n" + OK


def test_uart_cur_is_not_saved(dut, vboard):
    assert dut.cmd("AT+UART_CUR=230400,8,1,0,1") == OK
    rst(dut)
    assert dut.cmd("AT+UART_CUR?") == b"+UART_CUR:115200,8,1,0,0\r\n" + OK
    assert dut.cmd("AT+UART_DEF?") == b"+UART_DEF:115200,8,1,0,0\r\n" + OK


def test_uart_def_saved_even_with_sysstore_0(dut, vboard):
    assert dut.cmd("AT+SYSSTORE=0") == OK
    assert dut.cmd("AT+UART_DEF=921600,8,1,0,0") == OK
    rst(dut)
    assert dut.cmd("AT+UART_DEF?") == b"+UART_DEF:921600,8,1,0,0\r\n" + OK
    assert dut.cmd("AT+UART_CUR?") == b"+UART_CUR:921600,8,1,0,0\r\n" + OK


# -- the settings file on the virtual board ----------------------------------------------------------------

def _config(vboard):
    return pathlib.Path(vboard.log).parent / "flash" / "at_config.json"


def _log_since(vboard, pos):
    with open(vboard.log, "rb") as f:
        f.seek(pos)
        return f.read().decode(errors="replace")


def _log_size(vboard):
    try:
        return pathlib.Path(vboard.log).stat().st_size
    except FileNotFoundError:
        return 0


def _boot_with(d, vboard, content, *words):
    """Put content in the settings file, AT+RST; return what the log said
    meanwhile, once it says all of `words` (or after 5 s: the caller checks)."""
    cfg = _config(vboard)
    pos = _log_size(vboard)
    cfg.write_bytes(content)
    d.write(b"AT+RST\r\n")
    assert d.read_until(FINAL, timeout=10) == OK
    assert d.read_until(READY, timeout=10) == READY
    wait_for(lambda: all(w in _log_since(vboard, pos) for w in words))
    return _log_since(vboard, pos)


@pytest.mark.parametrize("content", [
    b"garbage",
    b"",
    b"\x00\xff\x00\xff" * 64,
    b'{"cwmode": 2',  # a write cut short
    b"[1, 2, 3]",
    b"null",
    b'"cwmode"',
])
def test_corrupt_settings_file_means_defaults(dut, vboard, content):
    assert dut.cmd("AT+CWMODE=2") == OK
    assert dut.cmd("AT+SYSMSG=3") == OK
    log = _boot_with(dut, vboard, content, "corrupt", "at_config.json")
    assert "corrupt" in log and "at_config.json" in log, log
    assert dut.cmd("AT") == b"AT\r\n" + OK  # it answers, with echo on as after any boot
    dut.ok("ATE0")
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:0\r\n" + OK
    assert dut.cmd("AT+UART_DEF?") == b"+UART_DEF:115200,8,1,0,0\r\n" + OK
    # The next saved setting writes a good file again.
    assert dut.cmd("AT+CWMODE=3") == OK
    assert json.loads(_config(vboard).read_text())["cwmode"] == 3
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:3\r\n" + OK


def test_settings_of_the_wrong_shape_are_dropped(dut, vboard):
    content = json.dumps({"cwmode": "two", "sysmsg": 3, "uart_def": [9600], "cwautoconn": True,
                          "ap": [1, 2, 3], "sysstore": 1}).encode()
    log = _boot_with(dut, vboard, content, "cwmode", "uart_def", "ap")
    assert "cwmode" in log and "uart_def" in log and "ap" in log, log
    dut.ok("ATE0")
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:3\r\n" + OK  # the good value is kept
    assert dut.cmd("AT+UART_DEF?") == b"+UART_DEF:115200,8,1,0,0\r\n" + OK
    assert dut.cmd("AT+CWAUTOCONN?") == b"+CWAUTOCONN:1\r\n" + OK
    assert dut.cmd("AT+CWJAP?") == b"No AP\r\n" + OK


def test_saved_uart_def_out_of_range_means_default(dut, vboard):
    log = _boot_with(dut, vboard, b'{"uart_def": [0, 8, 1, 0, 0]}', "UART")
    assert "UART" in log, log
    dut.ok("ATE0")
    assert dut.cmd("AT+UART_CUR?") == b"+UART_CUR:115200,8,1,0,0\r\n" + OK


def test_settings_file_is_read(dut, vboard):
    _boot_with(dut, vboard, b'{"cwmode": 3, "sysmsg": 6}')
    dut.ok("ATE0")
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:3\r\n" + OK
    assert dut.cmd("AT+SYSMSG?") == b"+SYSMSG:6\r\n" + OK


def test_no_settings_file_means_defaults(dut, vboard):
    assert dut.cmd("AT+CWMODE=2") == OK
    cfg = _config(vboard)
    assert cfg.exists()
    cfg.unlink()
    rst(dut)
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
