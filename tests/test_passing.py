"""Passing groups (lib/at/commands/__init__.py, PASSING): the commands a host sends
once, to set up (AT+GMR, AT+CWLAP, AT+CIPSTO, AT+UART_DEF ...). Where the firmware's
code takes heap (.mpy files on a board without PSRAM: `make deploy` on a WROOM, the
ESP32 twin, the unix personality with --target wroom) a command of one imports its
module and drops it once answered; what the command set stays. Where the code is
not in the heap (frozen, a ROMFS image) or the heap is big (PSRAM) the module stays,
as the other groups do."""
import re

import pytest

from board import GC_HEAP_COMMAND, gc_heap, own_board
from conftest import board_args

OK = b"\r\nOK\r\n"
# AT+MODS?: the command groups imported now (a test's own command, beside AT+GCHEAP?)
MODS_COMMAND = GC_HEAP_COMMAND + """
import sys


def q_mods(eng):
    eng.reply("+MODS:" + ",".join(sorted(m[12:] for m in sys.modules if m.startswith("at.commands."))))


COMMANDS.append(row("+MODS", query=q_mods))
"""
# What a command's passage may leave in the heap once it has run before: nothing of its
# module, and its index rows made again at the same sizes. A first use may leave more for
# good: names it interned (MicroPython never frees a qstr; when they overflow the pool, a
# new pool twice the size: 14 KB on the twin) and a shared module it imported
# (AT+GMR: at/version.py). The slack is for the engine's own buffers.
SLACK = 512


def test_settings_outlive_the_command_that_made_them(dut):
    """Each setting made by one command and read by another: on a lean board the
    group was dropped and imported again in between."""
    dut.ok("AT+CIPSTO=321")
    assert b"+CIPSTO:321\r\n" in dut.cmd("AT+CIPSTO?")
    dut.ok("AT+CIPDINFO=1")
    assert b"+CIPDINFO:true\r\n" in dut.cmd("AT+CIPDINFO?")
    dut.ok("AT+CWLAPOPT=0,2")  # <print mask> 2: the SSID alone
    r = dut.cmd("AT+CWLAP", timeout=20)
    assert r.endswith(OK), r
    lines = [ln for ln in r.split(b"\r\n") if ln.startswith(b"+CWLAP:")]
    assert lines and all(re.fullmatch(rb'\+CWLAP:\("[^"]*"\)', ln) for ln in lines), r
    dut.ok("AT+SYSLOG=1")  # the engine's: an error now says its code
    r = dut.cmd("AT+CIPSTO=99999")
    assert r.endswith(b"\r\nERROR\r\n") and b"ERR CODE:" in r, r
    assert dut.cmd("AT+GMR") == dut.cmd("AT+GMR")


def groups(d):
    r = d.cmd("AT+MODS?")
    return set(re.search(rb"\+MODS:([\w,]*)", r).group(1).decode().split(","))


def own(opts, tmp_path, extra):
    flash = tmp_path / "flash"
    flash.mkdir(exist_ok=True)
    (flash / "user_commands.py").write_text(MODS_COMMAND)
    return own_board(flash, tmp_path / "log.txt", heap=str(1 << 20), extra=extra)


@pytest.mark.timeout(120)
def test_a_passing_group_leaves_nothing_behind(opts, tmp_path):
    """On a WROOM running .mpy files (the unix personality's --target wroom, or the
    twin) AT+GMR's and AT+CWLAP's groups are gone once answered, and using them again
    and again takes nothing more from the heap."""
    if opts.port:
        pytest.skip("a virtual board's own heap")
    extra = board_args(opts) if opts.board == "esp32" else ["--board", "unix", "--target", "wroom"]
    with own(opts, tmp_path, extra) as d:
        d.reset()
        d.ok("ATE0")
        core = groups(d)
        assert "system" not in core and "wifiap" not in core, core
        for cmd, group in (("AT+GMR", "system"), ("AT+CWLAP", "wifiap")):
            first = d.cmd(cmd, timeout=20)
            assert first.endswith(OK), first
            assert groups(d) == core, (cmd, groups(d))
            before = gc_heap(d)[0]
            for _ in range(3):
                assert d.cmd(cmd, timeout=20) == first
            after = gc_heap(d)[0]
            assert groups(d) == core
            assert after - before <= SLACK, "%s, used three more times, took %d bytes" % (cmd, after - before)


@pytest.mark.timeout(120)
def test_a_passing_group_stays_where_code_is_not_in_the_heap(opts, tmp_path):
    """The same board running its code in place from a ROMFS image (a frozen
    image's stand-in), and on the unix personality a WROVER: the group stays."""
    if opts.port:
        pytest.skip("a virtual board's own heap")
    boards = [board_args(opts) + ["--romfs"] + (["--target", "wroom"] if opts.board == "unix" else [])]
    if opts.board == "unix":
        boards.append(["--board", "unix", "--target", "wrover"])
    for extra in boards:
        with own(opts, tmp_path, extra) as d:
            d.reset()
            d.ok("ATE0")
            assert "system" not in groups(d)
            first = d.cmd("AT+GMR")
            assert first.endswith(OK), first
            assert "system" in groups(d), extra
            assert d.cmd("AT+GMR") == first
