"""Adafruit's CircuitPython ESP-AT driver, unmodified, with pyserial as its UART:
the driver's own start-up, Wi-Fi join, status and a TCP exchange through it."""
import pytest

import time

from peers import TcpServer


def slow_echo(c, srv):
    """Echo after a short pause, as a real server answers: the driver's
    socket_send() reads until SEND OK and would swallow an instant reply."""
    while True:
        d = c.recv(65536)
        if not d:
            return
        time.sleep(0.3)  # a server's think time (see above)
        c.sendall(d)

esp_mod = pytest.importorskip("adafruit_espatcontrol.adafruit_espatcontrol")


@pytest.fixture
def esp(dut, serial_port, opts):
    e = esp_mod.ESP_ATcontrol(serial_port, opts.baud, debug=False)
    e.begin()
    return e


def test_driver_begin_and_version(esp):
    assert esp._initialized
    assert esp.version.startswith("AT version:")
    assert esp.cipmux == 0


def test_driver_join_status_and_tcp(esp, opts, host_ip):
    assert not esp.is_connected
    esp.connect({"ssid": opts.ssid, "password": opts.password})
    assert esp.is_connected
    assert esp.status == esp.STATUS_APCONNECTED
    assert esp.local_ip == host_ip if opts.port is None else esp.local_ip
    # (remote_AP is not checked: driver 0.11.7 compares bytes with str there and raises)
    srv = TcpServer(host_ip, slow_echo)
    try:
        assert esp.socket_connect(esp.TYPE_TCP, host_ip, srv.port)
        assert esp.status == esp.STATUS_SOCKETOPEN
        assert esp.socket_send(b"GET / HTTP/1.0\r\n\r\n")
        got = esp.socket_receive(timeout=3)
        assert bytes(got) == b"GET / HTTP/1.0\r\n\r\n"
        esp.socket_disconnect()
        assert esp.status in (esp.STATUS_APCONNECTED, esp.STATUS_SOCKETCLOSED)
    finally:
        srv.close()


def test_driver_nslookup(esp, opts):
    esp.connect({"ssid": opts.ssid, "password": opts.password})
    assert esp.nslookup("localhost") == "127.0.0.1"
