"""AT+UART_CUR / AT+UART_DEF change the line the board talks on.

On the unix personality the firmware answers at the old rate, then sets the
line's termios speed, which the host side reads back (a pty moves bytes at
memory speed whatever the rate says). On the ESP32 twin the pty's termios are
not touched: the twin's UART (tools/twin/machine.py) paces every character at
the rate UART.init() was given, as the ESP32's UART does (README, "The ESP32
twin"), so the new rate shows in how long an exchange takes on the wire."""
import termios
import time

import pytest

from peers import wait_for

SLOW = 600  # baud: a query and its answer (45 characters) take 0.75 s of wire


def speed(ser):
    return termios.tcgetattr(ser.fd)[4]


def becomes(ser, want):
    """The switch comes right after OK has been written: give it a moment."""
    return wait_for(lambda: speed(ser) == want, 2)


@pytest.fixture
def twin_only(twin, vboard):
    if not twin:
        pytest.skip("the ESP32 twin's paced UART (the unix pty moves bytes at memory speed)")


def wire_s(chars, baud, bits_per_char=10):
    """Seconds a line at `baud` needs for `chars` characters (start + 8 data + stop)."""
    return chars * bits_per_char / baud


def exchange(d, line, want, timeout=20):
    """Send `line`, check the answer is exactly `want`; return (seconds, characters on the wire)."""
    t = time.monotonic()
    r = d.cmd(line, timeout=timeout)
    took = time.monotonic() - t
    assert r == want, (line, r)
    return took, len(line) + 2 + len(want)


@pytest.mark.unix_pty
@pytest.mark.timeout(60)
def test_uart_cur_sets_the_pty_speed(dut, vboard):
    d = dut
    assert d.cmd("AT+UART_CUR=921600,8,1,0,0") == b"\r\nOK\r\n"
    assert becomes(d.ser, termios.B921600)
    d.ser.baudrate = 921600  # what a host does next; the pty does not care
    assert d.cmd("AT+UART_CUR?") == b"+UART_CUR:921600,8,1,0,0\r\n\r\nOK\r\n"
    assert d.cmd("AT+UART_CUR=115200,8,1,0,0") == b"\r\nOK\r\n"
    assert becomes(d.ser, termios.B115200)
    d.ser.baudrate = 115200


@pytest.mark.unix_pty
@pytest.mark.timeout(60)
def test_uart_def_sets_it_and_survives_a_reset(dut, vboard):
    d = dut
    try:
        assert d.cmd("AT+UART_DEF=460800,8,1,0,0") == b"\r\nOK\r\n"
        assert becomes(d.ser, termios.B460800)
        d.ser.baudrate = 460800
        d.reset(restore=False)
        assert becomes(d.ser, termios.B460800)  # applied again at boot
        assert d.cmd("AT+UART_CUR?") == b"AT+UART_CUR?\r\n+UART_CUR:460800,8,1,0,0\r\n\r\nOK\r\n"
    finally:
        d.cmd("AT+UART_DEF=115200,8,1,0,0")
        d.ser.baudrate = 115200


@pytest.mark.timeout(60)
def test_uart_cur_sets_the_twins_line_rate(dut, twin_only):
    """The OK comes at the old rate; from then on every character costs 10 bits
    at the new one: an exchange can be no faster than its wire time."""
    d = dut
    want = b"+UART_CUR:%d,8,1,0,0\r\n\r\nOK\r\n" % SLOW
    try:
        assert d.cmd("AT+UART_CUR=%d,8,1,0,0" % SLOW) == b"\r\nOK\r\n"
        time.sleep(0.05)  # a host switches its own UART after the OK (the ESP32 drops input meanwhile)
        took, chars = exchange(d, "AT+UART_CUR?", want)
        assert took >= 0.9 * wire_s(chars, SLOW), (took, chars)
    finally:
        assert d.cmd("AT+UART_CUR=115200,8,1,0,0", timeout=20) == b"\r\nOK\r\n"
        time.sleep(0.05)  # the host's own switch
    # back at 115200 the same exchange is 192 times shorter on the wire (4 ms)
    took, chars = exchange(d, "AT+UART_CUR?", b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
    assert took < 0.5 * wire_s(chars, SLOW), (took, chars)


@pytest.mark.timeout(90)
def test_uart_def_sets_the_twins_line_rate_and_survives_a_reset(dut, twin_only):
    d = dut
    try:
        assert d.cmd("AT+UART_DEF=%d,8,1,0,0" % SLOW) == b"\r\nOK\r\n"
        time.sleep(0.05)  # the host's own switch
        took, chars = exchange(d, "AT+UART_CUR?", b"+UART_CUR:%d,8,1,0,0\r\n\r\nOK\r\n" % SLOW)
        assert took >= 0.9 * wire_s(chars, SLOW), (took, chars)  # applied at once
        d.reset(restore=False, timeout=20)
        # applied again at boot (echo is on after the reset)
        took, chars = exchange(d, "AT+UART_CUR?", b"AT+UART_CUR?\r\n+UART_CUR:%d,8,1,0,0\r\n\r\nOK\r\n" % SLOW)
        assert took >= 0.9 * wire_s(chars, SLOW), (took, chars)
    finally:
        d.cmd("AT+UART_DEF=115200,8,1,0,0", timeout=20)
        time.sleep(0.05)  # the host's own switch
    took, chars = exchange(d, "AT+UART_CUR?", b"AT+UART_CUR?\r\n+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
    assert took < 0.5 * wire_s(chars, SLOW), (took, chars)
