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
# What a command's passage may leave in the heap: nothing of its module, and its
# index rows made again at the same sizes. The slack is for the engine's own
# buffers (e.g. the line buffer keeps the longest line so far).
SLACK = 512
STAYS = 2048  # the smallest passing group takes more than this once imported (64-bit)


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


def _heap_around(d, cmd, timeout=10):
    """GC heap in use before `cmd`, after it, and after it again (the same answer, OK)."""
    before = gc_heap(d)[0]
    first = d.cmd(cmd, timeout=timeout)
    assert first.endswith(OK), first
    after = gc_heap(d)[0]
    assert d.cmd(cmd, timeout=timeout) == first
    return before, after, gc_heap(d)[0]


@pytest.mark.timeout(120)
def test_a_passing_group_leaves_the_heap_as_it_found_it(opts, tmp_path):
    """On a WROOM running .mpy files (the unix personality's --target wroom, or the
    twin) AT+GMR and AT+CWLAP take their modules' heap back once answered. A first
    use may leave a shared module it imported (AT+GMR: at/version.py); a second
    one leaves nothing."""
    if opts.port:
        pytest.skip("a virtual board's own heap")
    extra = board_args(opts) if opts.board == "esp32" else ["--board", "unix", "--target", "wroom"]
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "user_commands.py").write_text(GC_HEAP_COMMAND)  # AT+GCHEAP?
    with own_board(flash, tmp_path / "log.txt", heap=str(1 << 20), extra=extra) as d:
        d.reset()
        d.ok("ATE0")
        for cmd in ("AT+GMR", "AT+CWLAP"):
            before, first, second = _heap_around(d, cmd, 20)
            assert first - before < STAYS, "%s left %d bytes in the heap" % (cmd, first - before)
            assert abs(second - first) <= SLACK, "%s again left %d bytes in the heap" % (cmd, second - first)


@pytest.mark.timeout(120)
def test_a_passing_group_stays_where_code_is_not_in_the_heap(opts, tmp_path):
    """The same board running its code in place from a ROMFS image (a frozen
    image's stand-in), and on the unix personality a WROVER: the module stays."""
    if opts.port:
        pytest.skip("a virtual board's own heap")
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "user_commands.py").write_text(GC_HEAP_COMMAND)
    boards = [board_args(opts) + ["--romfs"] + (["--target", "wroom"] if opts.board == "unix" else [])]
    if opts.board == "unix":
        boards.append(["--board", "unix", "--target", "wrover"])
    for extra in boards:
        with own_board(flash, tmp_path / "log.txt", heap=str(1 << 20), extra=extra) as d:
            d.reset()
            d.ok("ATE0")
            before, first, second = _heap_around(d, "AT+GMR")
            assert first - before > (SLACK if "--romfs" in extra else STAYS), (extra, first - before)
            assert abs(second - first) <= SLACK, (extra, second - first)
