"""The bench: a fresh virtual board by default, or a real one with --port.

Peers listen on 127.0.0.1 for the virtual board, or on --host-ip for a real
board (which reaches the host over Wi-Fi). Tests that need what only the host
can give (killing the firmware, its flash directory, its log) use the
`vboard` fixture and skip on a real board.
"""
import os
import pathlib
import serial
import pytest

from board import Dut, Timeout, VirtualBoard
from peers import TcpServer, UdpEcho, echo, hold, sink


def pytest_addoption(parser):
    g = parser.getgroup("board")
    g.addoption("--port", default=None,
                help="serial port or pyserial URL of a real board; with pytest-xdist (-n N), a comma-separated "
                     "list: worker gwK takes the K-th board")
    g.addoption("--baud", type=int, default=115200)
    g.addoption("--host-ip", default="127.0.0.1", help="this host's address as the board sees it")
    g.addoption("--ssid", default="vboard", help="the AP the board joins")
    g.addoption("--password", default="vboardpass")
    g.addoption("--board", default=os.getenv("BOARD") or "unix", choices=("unix", "esp32"),
                help="the virtual board's personality: unix (the unix port adapter) or esp32 (the ESP32 twin)")
    g.addoption("--mpy", default=os.getenv("MPY") or "1.27",
                help="the ESP32 twin's MicroPython release (1.24 ... 1.28)")


@pytest.fixture(scope="session")
def opts(request):
    return request.config.option


def pytest_configure(config):
    for name, why in NOT_ON_ESP32.items():
        config.addinivalue_line("markers", "%s: skipped on an ESP32 (twin or real): %s" % (name, why))
    # Every virtual board a test starts (tools/vboard.py reads these) has the
    # personality under test, whether or not the test passes board_args().
    os.environ["BOARD"] = config.option.board
    os.environ["MPY"] = config.option.mpy


def board_args(opts):
    """vboard.py's options for the personality under test."""
    return ["--board", opts.board] + (["--mpy", opts.mpy] if opts.board == "esp32" else [])


@pytest.fixture(scope="session")
def twin(opts):
    """True on the ESP32 twin (lib/at/ports/esp32.py over tools/twin/)."""
    return opts.board == "esp32" and not opts.port


@pytest.fixture(scope="session")
def host_ip(opts):
    return opts.host_ip


@pytest.fixture(scope="session")
def vboard_proc(opts, tmp_path_factory):
    if opts.port:
        yield None
        return
    d = tmp_path_factory.mktemp("vboard")
    vb = VirtualBoard(d / "flash", d / "log.txt", extra=board_args(opts))
    yield vb
    vb.close()


def _worker_port(config, ports):
    """The board of this pytest-xdist worker (gw0 -> first), or the only one."""
    ports = ports.split(",")
    wid = getattr(config, "workerinput", {}).get("workerid", "gw0")
    return ports[int(wid[2:]) % len(ports)]


@pytest.fixture(scope="session")
def serial_port(request, opts, vboard_proc):
    path = _worker_port(request.config, opts.port) if opts.port else vboard_proc.path
    ser = serial.serial_for_url(path, opts.baud, timeout=0.1)
    yield ser
    ser.close()


@pytest.fixture
def vboard(vboard_proc):
    """The virtual board's process (its flash dir, its log); skips on a real board."""
    if vboard_proc is None:
        pytest.skip("needs the virtual board (host-only)")
    return vboard_proc


@pytest.fixture
def raw_dut(serial_port):
    """A board restored to factory settings, echo on."""
    d = Dut(serial_port)
    d.drain()
    d.reset()
    yield d


@pytest.fixture
def dut(raw_dut):
    """A board restored to factory settings, echo off."""
    raw_dut.ok("ATE0")
    return raw_dut


@pytest.fixture
def joined(dut, opts):
    """A board joined to the AP (the host's network)."""
    r = dut.cmd('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
    assert r.endswith(b"\r\nOK\r\n"), r
    return dut


# -- peers on the host address, closed when the test ends --------------------------------
@pytest.fixture
def echo_srv(host_ip):
    s = TcpServer(host_ip, echo)
    yield s
    s.close()


@pytest.fixture
def sink_srv(host_ip):
    s = TcpServer(host_ip, sink)
    yield s
    s.close()


@pytest.fixture
def hold_srv(host_ip):
    s = TcpServer(host_ip, hold)
    yield s
    s.close()


@pytest.fixture
def udp_echo(host_ip):
    u = UdpEcho(host_ip)
    yield u
    u.close()


# -- what differs between personalities ---------------------------------------------------------------
# A test that needs what the ESP32 port at a release does not have carries a
# marker, and skips there with the reason; tests/test_chip.py checks that the
# board answers ERROR "not supported here" instead.
NOT_ON_ESP32 = {
    "ipv6": "the ESP32 port's sockets are IPv4-only (AT+CIPV6=1 answers ERROR 0x010a0057: test_chip.py)",
    "psk": "no released MicroPython has TLS-PSK (AT+CIPSSLCPSK answers ERROR 0x010a0057: test_chip.py)",
    "unix_pty": "the unix personality's pty (the ESP32 twin paces a wire of its own)",
}


def pytest_collection_modifyitems(config, items):
    esp32 = config.option.board == "esp32" or bool(config.option.port)
    for item in items:
        for name, why in NOT_ON_ESP32.items():
            if item.get_closest_marker(name) is not None and esp32:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def bulk(dut, twin):
    """A line fit for megabytes: on the ESP32 twin the UART runs at 5 Mbaud (the
    ESP32's top rate) with RTS/CTS, as a bench host wired for throughput would
    run it (at 115200 baud 10 MB take 15 minutes, and without flow control a host
    that pauses loses bytes, as on any UART). Elsewhere the line stays as it is."""
    if twin:
        dut.ok("AT+UART_CUR=5000000,8,1,0,3")
        # The board re-inits its UART once the OK has left the wire, and what arrives
        # meanwhile is lost (uart_flush_input, as on a chip): the first command after
        # the switch is an AT, repeated until it is answered.
        for _ in range(20):
            try:
                if dut.cmd("AT", timeout=0.5) == b"\r\nOK\r\n":
                    break
            except Timeout:
                pass
        else:
            raise AssertionError("no answer at 5 Mbaud")
        dut.quiet(0.1)
    yield dut
    if twin:
        dut.quiet(0.2)
        dut.cmd("AT+UART_CUR=115200,8,1,0,0", timeout=30)


@pytest.fixture
def clock(dut, twin):
    """A board whose clock is set, as certificate checks need on an ESP32 (its
    RTC reads 2000-01-01 until SNTP sets it): on the twin, from an SNTP server on
    a spare loopback address. Elsewhere nothing to do."""
    if not twin:
        yield dut
        return
    import time as _time
    from netpeers import SntpServer, NoSpareAddress
    try:
        srv = SntpServer(_time.time())
    except NoSpareAddress as e:
        pytest.skip("no loopback address for the SNTP server the ESP32's clock needs: %s" % e)
    try:
        dut.ok('AT+CIPSNTPCFG=1,0,"%s"' % srv.host)
        dut.read_until(b"+TIME_UPDATED\r\n", timeout=20)
        yield dut
    finally:
        dut.cmd("AT+CIPSNTPCFG=0")
        srv.close()


# -- what the ESP32 twin's UART saw over the whole run -------------------------------------------------------
def _twin_stats(config):
    """Every twin board's counters (tools/twin/machine.py Stats, kept across
    resets), read from the <flash>.stats.json files this run left."""
    import json
    try:
        base = config._tmp_path_factory.getbasetemp()
    except AttributeError:
        return []
    out = []
    for p in base.rglob("*.stats.json"):
        try:
            out.append((p, json.loads(p.read_text())))
        except (OSError, ValueError):
            pass
    return out


def pytest_sessionfinish(session, exitstatus):
    """The README's promise that UART.write() never holds the loop (the firmware
    hands the UART only what fits): a wait seen on any twin board fails the run."""
    stats = _twin_stats(session.config)
    session.config._twin_stats = stats
    if any(s.get("write_blocked_ms", 0) for _, s in stats) and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = getattr(config, "_twin_stats", [])
    if not stats:
        return
    tr = terminalreporter
    worst = lambda k: max(stats, key=lambda x: x[1].get(k, 0))  # noqa: E731
    tr.section("ESP32 twin: the loop, over %d boards" % len(stats))
    p, s = worst("write_blocked_ms")
    tr.write_line("longest UART.write() wait: %d ms (%s)%s" % (
        s.get("write_blocked_ms", 0), p.parent.name,
        "" if not s.get("write_blocked_ms") else "  FAIL: the firmware must never wait in UART.write()"))
    p, s = worst("turn_max_ms")
    tr.write_line("longest loop turn (between two polls): %d ms (%s); turns over 100 ms, all boards: %d" % (
        s.get("turn_max_ms", 0), p.parent.name, sum(x.get("turns_over_100ms", 0) for _, x in stats)))
