"""AT+UART_CUR / AT+UART_DEF on the virtual board's pty: the firmware answers at
the old rate, then sets the line's termios speed, which the host side reads back
(a pty moves bytes at memory speed whatever the rate says)."""
import termios

import pytest

from peers import wait_for


def speed(ser):
    return termios.tcgetattr(ser.fd)[4]


def becomes(ser, want):
    """The switch comes right after OK has been written: give it a moment."""
    return wait_for(lambda: speed(ser) == want, 2)


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
