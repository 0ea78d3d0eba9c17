"""The AT engine over the serial port: echo, result framing, ERR CODE, line
assembly, bad input of every kind, and "busy p..." (AT_Command_Set_index.rst,
Basic_AT_Commands.rst AT+SYSLOG, esp_at_core.h)."""
import random
import re
import time

import pytest

from board import FINAL

pytestmark = pytest.mark.timeout(60)

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
BUSY = b"\r\nbusy p...\r\n"


def err(code):
    """What a failed command prints with AT+SYSLOG=1."""
    return b"ERR CODE:0x%08x\r\n" % code + ERROR


def still_answers(d, echo=False):
    assert d.cmd("AT") == (b"AT\r\n" if echo else b"") + OK


@pytest.fixture
def slog(dut):
    """Echo off, AT+SYSLOG=1: every ERROR comes with its ERR CODE."""
    assert dut.cmd("AT+SYSLOG=1") == OK
    return dut


# -- echo -----------------------------------------------------------------------------------

def test_echo_is_on_after_reset(raw_dut):
    assert raw_dut.cmd("AT") == b"AT\r\n" + OK


def test_ate0_ate1(raw_dut):
    d = raw_dut
    assert d.cmd("ATE0") == b"ATE0\r\n" + OK  # echoed: echo was on when it came
    assert d.cmd("AT") == OK
    assert d.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n" + OK
    assert d.cmd("ATE1") == OK  # not echoed: echo was off when it came
    assert d.cmd("AT") == b"AT\r\n" + OK
    assert d.cmd("ATE1") == b"ATE1\r\n" + OK
    assert d.cmd("ATE0") == b"ATE0\r\n" + OK
    assert d.cmd("ATE0") == OK


def test_echo_is_the_line_as_received(raw_dut):
    d = raw_dut
    assert d.cmd("AT+FAKE") == b"AT+FAKE\r\n" + ERROR
    assert d.cmd('AT+CWMODE="a\\,b\\"c"') == b'AT+CWMODE="a\\,b\\"c"\r\n' + ERROR
    assert d.cmd("AT+CWMODE?") == b"AT+CWMODE?\r\n+CWMODE:1\r\n" + OK
    assert d.cmd(b"AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    # A malformed line is echoed as it came, before its ERROR.
    d.write(b"AT\n")
    assert d.read_until(FINAL) == b"AT\n" + err(0x01020000)
    d.write(b"at\r\n")
    assert d.read_until(FINAL) == b"at\r\n" + err(0x01030000)


def test_ate_errors(slog):
    assert slog.cmd("ATE") == err(0x01090000)
    assert slog.cmd("ATE2") == err(0x01090000)
    assert slog.cmd("ATE0?") == err(0x010C0000)
    assert slog.cmd("ATE1=1") == err(0x010C0000)
    still_answers(slog)


# -- framing and ERR CODE ------------------------------------------------------------------------

def test_ok_and_error_framing(dut):
    assert dut.cmd("AT") == b"\r\nOK\r\n"
    assert dut.cmd("AT+FAKE") == b"\r\nERROR\r\n"  # AT+SYSLOG=0: no ERR CODE
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n\r\nOK\r\n"


def test_syslog_adds_err_code(dut):
    assert dut.cmd("AT+FAKE") == ERROR
    assert dut.cmd("AT+SYSLOG=1") == OK
    assert dut.cmd("AT+FAKE") == b"ERR CODE:0x01090000\r\n\r\nERROR\r\n"
    assert dut.cmd("AT+SYSLOG=0") == OK
    assert dut.cmd("AT+FAKE") == ERROR


@pytest.mark.parametrize("line", ["AT+FAKE", "AT+", "ATX", "AT+CWMODEX?", "AT+GMRR", "AT+ CWMODE?", "AT+CWMODE ?",
                                  "AT++GMR", "AT+GMR\t"])
def test_unknown_command(slog, line):
    assert slog.cmd(line) == err(0x01090000)
    still_answers(slog)


@pytest.mark.parametrize("line", [b"at", b"At", b"aT", b"at+gmr", b"AAT", b" AT", b"+AT", b"TA", b"A", b"\tAT"])
def test_no_at_prefix(slog, line):
    assert slog.cmd(line) == err(0x01030000)
    still_answers(slog)


@pytest.mark.parametrize("line", ["AT+GMR?", "AT+GMR=?", "AT+GMR=1", "AT+CMD", "AT+CMD=1", "AT+CWQAP?",
                                  "AT?", "AT=?", "AT=1", "AT+RST?", "AT+RST=1", "AT+RESTORE=0",
                                  "AT+CWMODE=?", "AT+CWMODE", "AT+SYSLOG", "AT+CWSTATE", "AT+UART_CUR"])
def test_wrong_operation_type(slog, line):
    assert slog.cmd(line) == err(0x010C0000)
    still_answers(slog)


# -- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line,code", [
    ('AT+CWMODE="1"', 0x01050000),
    ("AT+CWMODE=x", 0x01050000),
    ("AT+CWMODE=1x", 0x01050000),
    ("AT+CWMODE= 1", 0x01050000),
    ("AT+CWMODE=+", 0x01050000),  # a sign alone ("+1" is 1: AT+CIPSNTPCFG's [+|-][hh]mm needs it)
    ("AT+CWMODE=1.0", 0x01050000),
    ("AT+CWMODE=-", 0x01050000),
    ("AT+SYSLOG=99999999999", 0x01050000),  # more than 10 digits
    ("AT+SYSLOG=0xg", 0x01050000),
    ('AT+UART_CUR=115200,"8",1,0,0', 0x01050001),
    ("AT+UART_CUR=115200,8,1,0,z", 0x01050004),
    ('AT+CWJAP=1,"x"', 0x01050000),
    ('AT+CWJAP="x",2', 0x01050001),
])
def test_parameter_type_mismatch(slog, line, code):
    assert slog.cmd(line) == err(code)
    still_answers(slog)


@pytest.mark.parametrize("line,code", [
    ("AT+CWMODE=4", 0x01070000),
    ("AT+CWMODE=-1", 0x01070000),
    ("AT+CWMODE=1,2", 0x01070001),
    ("AT+SYSLOG=2", 0x01070000),
    ("AT+SYSLOG=0x2", 0x01070000),
    ("AT+SYSLOG=4294967297", 0x01070000),
    ("AT+UART_CUR=115200,9,1,0,0", 0x01070001),
    ("AT+UART_CUR=115200,8,1,0,4", 0x01070004),
])
def test_parameter_out_of_range(slog, line, code):
    assert slog.cmd(line) == err(code)
    still_answers(slog)


@pytest.mark.parametrize("line,code", [
    # PARA_NUM(need, given): esp_at_core.h ESP_AT_CMD_ERROR_PARA_NUM, (need << 8) | given
    ("AT+CWMODE=1,1,1", 0x01060203),
    ("AT+SYSLOG=1,0", 0x01060102),
    ("AT+SYSLOG=1,", 0x01060102),
    ("AT+UART_CUR=115200,8,1,0", 0x01060504),
    ("AT+UART_CUR=115200,8,1,0,0,0", 0x01060506),
    ("AT+SYSLOG=", 0x01060101),  # one parameter, omitted
    ("AT+UART_CUR=115200,,1,0,0", 0x01060205),  # a parameter that may not be omitted
    ("AT+CWJAP=" + ",1" * 9, 0x0106090A),
])
def test_parameter_count(slog, line, code):
    assert slog.cmd(line) == err(code)
    still_answers(slog)


@pytest.mark.parametrize("line,code", [
    ('AT+CWJAP="abc', 0x01080000),  # no closing quote
    ('AT+CWJAP="abc\\"', 0x01080000),  # the closing quote is escaped
    ('AT+CWJAP="abc\\', 0x01080000),
    ('AT+CWJAP="a"b,"x"', 0x01080000),  # text after the closing quote
    ('AT+CWJAP="x","ab', 0x01080001),
    ('AT+CWJAP="x","y"z', 0x01080001),
    ('AT+CWJAP=,"y" ', 0x01080001),
])
def test_parameter_parse_failure(slog, line, code):
    assert slog.cmd(line) == err(code)
    still_answers(slog)


def test_parameter_length(slog):
    assert slog.cmd('AT+CWJAP="%s","x"' % ("s" * 33)) == err(0x01040000)
    assert slog.cmd('AT+CWJAP="s","%s"' % ("p" * 65)) == err(0x01040001)
    # Escapes count once: 32 characters after unescaping is within the limit.
    assert slog.cmd('AT+CWJAP="%s","x"' % ("\\," * 33)) == err(0x01040000)
    still_answers(slog)


@pytest.mark.timeout(60)
def test_quoted_string_escapes(slog):
    """\\\\, \\, and \\" (and \\<any>) reach the command unescaped: AT+CWSTATE? shows the SSID tried."""
    d = slog
    cases = [
        (r'a\\b\,c\"d', 'a\\b,c"d'),
        (r'\e\s\c', "esc"),
        (r'x?y=z', "x?y=z"),
        (r'tail\\', "tail\\"),
        (r'\"\"', '""'),
    ]
    for raw, ssid in cases:
        # jap_timeout 3 s keeps this short on a real board, which scans for the SSID.
        r = d.cmd('AT+CWJAP="%s","password",,,,,,3' % raw, timeout=10)
        assert re.fullmatch(rb"\+CWJAP:[13]\r\nERR CODE:0x[0-9a-f]{8}\r\n\r\nERROR\r\n", r), (raw, r)
        assert d.cmd("AT+CWSTATE?") == b'+CWSTATE:4,"%s"\r\n' % ssid.encode() + OK, raw


def test_omitted_parameters(dut):
    assert dut.cmd("AT+CWMODE=3,") == OK  # <auto_connect> omitted: its default
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:3\r\n" + OK
    assert dut.cmd("AT+CWMODE=2,0") == OK
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:2\r\n" + OK
    assert dut.cmd("AT+CWMODE=,1") == ERROR  # <mode> may not be omitted
    assert dut.cmd("AT+CWMODE?") == b"+CWMODE:2\r\n" + OK


def test_hex_parameter(dut):
    """Basic_AT_Commands.rst writes AT+SYSRAM=0x1800: integers may be hexadecimal."""
    assert dut.cmd("AT+SYSLOG=0x1") == OK
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:1\r\n" + OK
    assert dut.cmd("AT+SYSLOG=0X0") == OK
    assert dut.cmd("AT+SYSLOG?") == b"+SYSLOG:0\r\n" + OK


# -- line assembly and bad input ------------------------------------------------------------------

def test_line_of_256_bytes_is_taken_257_is_too_long(raw_dut):
    d = raw_dut
    assert d.cmd("AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    line = b"AT+" + b"X" * 253
    assert len(line) == 256
    assert d.cmd(line) == line + b"\r\n" + err(0x01090000)  # parsed: an unknown command
    assert d.cmd(line + b"X") == err(0x01010000)  # too long: not parsed, not echoed
    assert d.cmd("AT") == b"AT\r\n" + OK


@pytest.mark.parametrize("size", [300, 1000, 5000, 70000])
def test_overlong_line(dut, size):
    assert dut.cmd("AT+SYSLOG=1") == OK
    r = dut.cmd(b"AT+" + b"A" * size, timeout=20)
    assert r == err(0x01010000)
    still_answers(dut)


def test_overlong_line_in_small_pieces(dut):
    assert dut.cmd("AT+SYSLOG=1") == OK
    for _ in range(40):
        dut.write(b"AT+" + b"B" * 20)
        time.sleep(0.005)  # pacing: the line comes in many reads of the UART
    dut.write(b"\r\n")
    assert dut.read_until(FINAL) == err(0x01010000)
    assert dut.quiet(0.3) == b""
    still_answers(dut)


def test_lf_only_ending(raw_dut):
    d = raw_dut
    d.write(b"AT\n")
    assert d.read_until(FINAL) == b"AT\n" + ERROR
    assert d.cmd("AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    d.write(b"AT\n")
    assert d.read_until(FINAL) == b"AT\n" + err(0x01020000)
    d.write(b"AT+GMR\n")
    assert d.read_until(FINAL) == b"AT+GMR\n" + err(0x01020000)
    assert d.cmd("AT") == b"AT\r\n" + OK


def test_cr_only_ending(raw_dut):
    d = raw_dut
    assert d.cmd("AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    d.write(b"AT\r")
    assert d.quiet(0.3) == b""  # an LF may still follow
    d.write(b"X")  # it does not: ERROR at once, no LF needed
    assert d.read_until(FINAL, timeout=2) == b"AT\r" + err(0x01020000)
    d.write(b"\r\n")  # "X\r\n" is the next line
    assert d.read_until(FINAL) == b"X\r\n" + err(0x01030000)
    d.write(b"AT\rAT\r\n")
    assert d.read_until(FINAL) == b"AT\r" + err(0x01020000)
    assert d.read_until(FINAL) == b"AT\r\n" + OK
    d.write(b"AT\r\r\n")
    assert d.read_until(FINAL) == b"AT\r" + err(0x01020000)
    assert d.read_until(FINAL) == b"\r\n" + err(0x01030000)
    assert d.quiet(0.3) == b""
    assert d.cmd("AT") == b"AT\r\n" + OK


def test_crlf_in_separate_writes(raw_dut):
    d = raw_dut
    for b in b"AT+CWMODE?\r\n":
        d.write(bytes([b]))
        time.sleep(0.01)  # pacing: a byte per read of the UART
    assert d.read_until(FINAL) == b"AT+CWMODE?\r\n+CWMODE:1\r\n" + OK


def test_empty_line(raw_dut):
    d = raw_dut
    d.write(b"\r\n")
    assert d.read_until(FINAL) == b"\r\n" + ERROR
    assert d.cmd("AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    d.write(b"\r\n")
    assert d.read_until(FINAL) == b"\r\n" + err(0x01030000)
    assert d.quiet(0.3) == b""
    assert d.cmd("AT") == b"AT\r\n" + OK


@pytest.mark.parametrize("junk,code", [
    (b"\x00", 0x01030000),
    (b"\x00\x00\x00\x00", 0x01030000),
    (b"\xff\xfe\xfd", 0x01030000),
    (b"\xff" * 100, 0x01030000),
    (b"AT\x00", 0x01090000),
    (b"AT\xff", 0x01090000),  # starts with AT: an unknown command
    (b"AT+\xc3\x28", 0x01090000),
    (b"AT+GMR\x00", 0x01090000),
    (b"\x00AT", 0x01030000),
    (b"\x1b[A", 0x01030000),
])
def test_binary_garbage_line(slog, junk, code):
    assert slog.cmd(junk) == err(code)
    still_answers(slog)


def test_binary_garbage_with_nul_and_ff_in_bulk(dut):
    rnd = random.Random(1234)
    junk = bytes(rnd.choice(b"\x00\xff\xfe\x80\r\n\x01\x7f\"\\,=?A+") for _ in range(6000))
    junk = junk.replace(b"A", b"\x00")  # never an accidental "AT..." command
    dut.write(junk + b"\r\n")
    out = dut.quiet(2.0)
    # Only ERRORs come back (echo is off), and at least one per LF.
    assert out.replace(ERROR, b"") == b""
    assert out.count(ERROR) >= junk.count(b"\n")
    still_answers(dut)


def test_nul_flood_without_line_end(dut):
    dut.write(b"\x00" * 20000)
    assert dut.quiet(0.5) == b""  # no line has ended yet
    dut.write(b"\r\n")
    assert dut.read_until(FINAL) == ERROR
    still_answers(dut)


def test_many_commands_in_one_write(raw_dut):
    d = raw_dut
    d.write(b"AT\r\nAT+SYSLOG?\r\nAT+FAKE\r\nAT+SYSLOG=1\r\nAT+FAKE\r\nATE0\r\nAT\r\nAT+CWMODE?\r\n")
    want = (b"AT\r\n" + OK
            + b"AT+SYSLOG?\r\n+SYSLOG:0\r\n" + OK
            + b"AT+FAKE\r\n" + ERROR
            + b"AT+SYSLOG=1\r\n" + OK
            + b"AT+FAKE\r\n" + err(0x01090000)
            + b"ATE0\r\n" + OK
            + OK
            + b"+CWMODE:1\r\n" + OK)
    assert d.read_exactly(len(want)) == want
    assert d.quiet(0.3) == b""


def test_hundreds_of_commands_in_one_write(dut):
    dut.write(b"AT\r\n" * 500)
    assert dut.read_exactly(500 * len(OK), timeout=20) == OK * 500
    assert dut.quiet(0.3) == b""


def test_ok_after_each_bad_input(dut):
    bad = [b"AT\n", b"at\r\n", b"AT+FAKE\r\n", b"\r\n", b"\x00\xff\r\n", b"AT+GMR?\r\n", b'AT+CWJAP="x\r\n',
           b"AT+CWMODE=9\r\n", b"AT+" + b"L" * 400 + b"\r\n", b"AT\rZ\r\n", b"\n", b"AT+CWMODE=1,1,1\r\n"]
    for b in bad:
        dut.write(b)
        out = dut.quiet(0.3)
        assert out.endswith(ERROR), (b, out)
        assert dut.cmd("AT") == OK, b


# -- busy p... ---------------------------------------------------------------------------------------

def _start_slow_join(d):
    """AT+CWJAP to the AP without DHCP: associated at once, no IP, fails after 3 s."""
    d.write(b'AT+CWJAP="vboard-nodhcp","vboardpass",,,,,,3\r\n')
    assert d.read_until(b"WIFI CONNECTED\r\n", timeout=5) == b"WIFI CONNECTED\r\n"


def test_busy_while_a_command_runs(dut, vboard):
    _start_slow_join(dut)
    dut.write(b"AT\r\n")
    assert dut.read_until(BUSY, timeout=2) == BUSY
    dut.write(b"AT+GMR\r\nAT+CWMODE?\r\n")
    assert dut.read_exactly(2 * len(BUSY), timeout=2) == BUSY * 2
    assert dut.read_until(FINAL, timeout=6) == b"+CWJAP:1\r\n" + ERROR
    assert dut.read_until(b"WIFI DISCONNECT\r\n", timeout=2) == b"WIFI DISCONNECT\r\n"
    still_answers(dut)


def test_busy_is_not_echoed_and_has_err_code_with_syslog(raw_dut, vboard):
    d = raw_dut
    assert d.cmd("AT+SYSLOG=1") == b"AT+SYSLOG=1\r\n" + OK
    d.write(b'AT+CWJAP="vboard-nodhcp","vboardpass",,,,,,3\r\n')
    assert d.read_until(b"WIFI CONNECTED\r\n") == b'AT+CWJAP="vboard-nodhcp","vboardpass",,,,,,3\r\nWIFI CONNECTED\r\n'
    d.write(b"AT\r\n")
    # esp-at issue #731 shows the order: ERR CODE:0x010b0000, then busy p...
    assert d.read_until(BUSY, timeout=2) == b"ERR CODE:0x010b0000\r\n" + BUSY
    r = d.read_until(FINAL, timeout=6)
    assert r.startswith(b"+CWJAP:1\r\nERR CODE:0x010a") and r.endswith(ERROR), r
    d.read_until(b"WIFI DISCONNECT\r\n", timeout=2)
    assert d.cmd("AT") == b"AT\r\n" + OK
