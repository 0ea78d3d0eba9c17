"""The working set a WROOM must hold (issue 13's target for the frozen image):
five links at once, one of them SSL and one a client of the board's own server,
passive receive on every link with data waiting on all of them, and an AT+CIPSENDL
running on one while the others are read; then passthrough both ways. Every
byte arrives, in order, and the board still answers.

On the default boards it checks the behaviour. Given a MicroPython and a heap
(VBOARD_MICROPYTHON, VBOARD_HEAP, VBOARD_TARGET=wroom: tools/vboard.py), it is
how BENCHMARKS.md ("Heap") measures the smallest GC heap the firmware, frozen
into a 32-bit MicroPython, serves this in."""
import os
import pathlib
import re
import socket
import sys
import threading
import time

import pytest

from board import GC_HEAP_COMMAND, gc_heap, own_board
from conftest import board_args
from peers import TcpServer, echo, free_port, hold, sha, sink, wait_for
from tlspeers import Pki, TlsServer, tls_hold

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import romfs  # noqa: E402
import vboard  # noqa: E402

SIZE = 20000  # per passive link
SENDL = 200000  # through AT+CIPSENDL meanwhile
# The frozen WROOM's working set as CI holds it: the GC heap the five links (one SSL)
# take beyond `ready` (live bytes after a collection), on the 64-bit unix port running
# the firmware in place from a ROMFS image (tools/vboard.py --romfs, a frozen image's
# stand-in) with a WROOM's sizes, on each personality. The SSL link brings its group
# (at.sslconf, at.mfg) on first use, an SSLContext (3,048 bytes here, 1,728 on 32 bits)
# and its SSLSocket; mbedTLS's own buffers are outside the GC heap, as on a chip.
# Unix personality, 2026-12-07, latest: 18,528 bytes (17,600 before the SSL link read
# through at.sslconf.Records, its class and one per link, instead of recv(), which
# allocates each read; 17,024 before the SSL handshake's code moved from at/net.py, at
# boot, to at/sslconf.py, loaded with the SSL link; 16,192
# before at/nested.py, the handshakes' helper, came to load with the SSL code instead of
# at boot; 5,568 with five TCP links, before the SSL link joined the set); on the 32-bit
# frozen build with TLS the live walk reads +7,456 at the peak of the AT+CIPSENDL for
# four TCP links and the SSL one (BENCHMARKS.md "Heap"). Live bytes only: the heap a chip
# needs for it is larger by the holes and the garbage between collections (9,344 free at
# `ready` on the 32-bit frozen build, the smallest heap that served it).
WORKSET_ROMFS64 = 19264
# The ESP32 twin: its ESP32 adapter, with the twin's own stand-ins for lwIP's sockets
# in the same heap (a Python object per socket where the chip has a C one), so its
# figure is bigger than the firmware's share. 2026-12-07, latest: 19,296 bytes (18,240
# before at.sslconf.Records; 17,824 before the handshake's code loaded with the SSL link;
# 16,864 before at/nested.py loaded with the SSL code; 6,560 before the SSL link).
WORKSET_TWIN64 = 20224
# The budget is the firmware's objects: ROMFS .mpy files intern their names in the heap as
# they load (a frozen image has them in flash), and when the names overflow the qstr pool
# MicroPython allocates one twice the size: 14,541 bytes on the twin, whose stand-ins'
# names put that growth inside the window measured (qstr_info() there: 1,224 names in 6
# pools at `ready`, 1,269 in 7 at the peak). So the board of this test interns names at
# boot until the pool has grown once (a jump of kilobytes in the heap); the next growth,
# at twice as many names, is far off.
PUSH_QSTR_POOL = """
def _push_qstr_pool():
    o = object()
    gc.collect()
    a = gc.mem_alloc()
    for i in range(8000):
        hasattr(o, "_q%d" % i)  # hasattr interns the name (mp_obj_str_get_qstr)
        if i % 16 == 15:
            gc.collect()
            b = gc.mem_alloc()
            if b - a > 4096:
                return
            a = b


_push_qstr_pool()
"""


def recv_lens(d):
    """AT+CIPRECVLEN?: the bytes each link holds for the host (-1: not open)."""
    r = d.cmd("AT+CIPRECVLEN?")
    return [max(0, int(x)) for x in re.search(rb"\+CIPRECVLEN:([-\d,]+)", r).group(1).split(b",")]


def read_round(d, want):
    """AT+CIPRECVDATA round the links until each has its `want[lid]` bytes."""
    got = {lid: bytearray() for lid in want}
    deadline = time.monotonic() + 60
    while any(len(got[lid]) < n for lid, n in want.items()):
        assert time.monotonic() < deadline, {lid: len(g) for lid, g in got.items()}
        for lid, n in want.items():
            if len(got[lid]) >= n:
                continue
            d.write(b"AT+CIPRECVDATA=%d,2048\r\n" % lid)
            r = d.read_until(re.compile(rb"\r\nERROR\r\n|\+CIPRECVDATA:\d+,"), timeout=20)
            if r.endswith(b"ERROR\r\n"):
                continue
            k = int(re.search(rb"\+CIPRECVDATA:(\d+),$", r).group(1))
            got[lid] += d.read_exactly(k)
            d.read_until(b"\r\nOK\r\n")
    return got


@pytest.mark.timeout(180)
def test_five_passive_links_server_and_sendl(joined, host_ip):
    five_links(joined, host_ip)


def test_five_tcp_links_server_and_sendl(joined, host_ip):
    """The core's working set (issue 13's `.mpy` WROOM target): the same, link 2 TCP."""
    five_links(joined, host_ip, ssl=False)


def five_links(d, host_ip, at_peak=None, ssl=True):
    """The working set's dialogue; at_peak(d) runs once the five links are open
    with data sent to four of them, before the AT+CIPSENDL, and again after it.
    Link 2 is an SSL link, or with ssl=False one more TCP link."""
    out = TcpServer(host_ip, hold)
    snk = TcpServer(host_ip, sink)
    # AT+CIPSSLCCONF 0: nothing checked
    tls = TlsServer(host_ip, Pki(host_ip).server_ctx(), tls_hold) if ssl else None
    try:
        d.ok("AT+CIPMUX=1")
        d.ok("AT+CIPRECVMODE=1")
        port = free_port(host_ip)
        d.ok("AT+CIPSERVER=1,%d" % port)
        peers = {}
        for lid in range(2 if ssl else 3):
            d.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, host_ip, out.port))
            # the peer's accept may come after the board's OK: wait for this link's
            assert wait_for(lambda: len(out.conns) == lid + 1)
            peers[lid] = out.conns[lid]
        if ssl:
            r = d.cmd('AT+CIPSTART=2,"SSL","%s",%d' % (host_ip, tls.port), timeout=30)
            assert r == b"2,CONNECT\r\n\r\nOK\r\n", (r, tls.errors)
            peers[2] = tls.wait_conn()
        d.ok('AT+CIPSTART=3,"TCP","%s",%d' % (host_ip, snk.port))
        client = socket.create_connection((host_ip, port), timeout=5)
        d.read_until(b"4,CONNECT\r\n")
        peers[4] = client
        data = {lid: os.urandom(SIZE) for lid in peers}
        senders = [threading.Thread(target=c.sendall, args=(data[lid],), daemon=True) for lid, c in peers.items()]
        for t in senders:
            t.start()
        if at_peak:
            # every byte is on its way (in the board's sockets) and a passive window holds some
            for t in senders:
                t.join(20)
            assert wait_for(lambda: sum(recv_lens(d)) > 0, 20)
            at_peak(d)
        # AT+CIPSENDL on link 3 while the four others hold data for the host
        blob = os.urandom(SENDL)
        d.write(b"AT+CIPSENDL=3,%d\r\n" % SENDL)
        d.read_until(b">")
        d.write(blob)
        d.read_until(b"SEND OK\r\n", timeout=60)
        if at_peak:
            at_peak(d)  # and once more with the send's data through
        got = read_round(d, {lid: SIZE for lid in peers})
        for lid in peers:
            assert sha(got[lid]) == sha(data[lid]), lid
        assert wait_for(lambda: len(snk.received) == SENDL, 20)
        assert sha(snk.received) == sha(blob)
        assert d.cmd("AT") == b"\r\nOK\r\n"
        d.ok("AT+CIPCLOSE=5")
        d.ok("AT+CIPSERVER=0")
    finally:
        out.close()
        snk.close()
        if tls:
            tls.close()


@pytest.mark.timeout(180)
def test_working_set_heap_within_budget(opts, host_ip, tmp_path):
    """The working set's GC heap beyond `ready`, in the units CI has (above), on this
    run's personality."""
    if opts.port:
        pytest.skip("a virtual board's own heap")
    # The project's 64-bit unix port and a heap of plenty, whatever VBOARD_MICROPYTHON
    # and VBOARD_HEAP ask of the other boards (live bytes do not depend on the heap).
    mp = pathlib.Path(sys.executable).parent / "micropython"
    extra = ["--board", opts.board, "--romfs", "--micropython", str(mp)]
    if opts.board == "unix":
        extra += ["--target", "wroom"]  # the twin is a WROOM already
    budget = WORKSET_TWIN64 if opts.board == "esp32" else WORKSET_ROMFS64
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "user_commands.py").write_text(GC_HEAP_COMMAND + PUSH_QSTR_POOL)  # AT+GCHEAP?
    with own_board(flash, tmp_path / "log.txt", heap=str(1 << 20), extra=extra) as d:
        d.reset()
        d.ok("ATE0")
        ready = gc_heap(d)[0]
        d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
        peak = []
        five_links(d, host_ip, at_peak=lambda d: peak.append(gc_heap(d)[0]))
        grew = max(peak) - ready
        print("working set: %d bytes of 64-bit GC heap beyond ready (%s personality)" % (grew, opts.board))
        assert grew <= budget, (
            "the working set takes %d bytes of 64-bit GC heap beyond ready on the %s personality (budget %d)" % (
                grew, opts.board, budget))


@pytest.mark.timeout(180)
def test_passthrough_both_ways(joined, echo_srv, host_ip):
    """Passthrough (AT+CIPMODE=1): 200 KB up and the same 200 KB echoed back."""
    passthrough_both_ways(joined, host_ip, echo_srv.port)


def passthrough_both_ways(d, host_ip, port, n=SENDL):
    """n random bytes up through passthrough and echoed back by the peer at port, then +++."""
    d.ok("AT+CIPMUX=0")
    d.ok('AT+CIPSTART="TCP","%s",%d' % (host_ip, port))
    d.ok("AT+CIPMODE=1")
    d.write(b"AT+CIPSEND\r\n")
    d.read_until(b">")
    blob = os.urandom(n)
    back = bytearray()
    for i in range(0, n, 4096):
        d.ser.write(blob[i:i + 4096])
        back += d.ser.read(65536)
    deadline = time.monotonic() + 30
    while len(back) < n:
        assert time.monotonic() < deadline, len(back)
        back += d.ser.read(65536)
    assert sha(back) == sha(blob)
    d.quiet(1.1)
    d.write(b"+++")
    d.quiet(1.1)
    d.ok("AT+CIPMODE=0")
    d.ok("AT+CIPCLOSE")


# The working set in a heap cut to a WROOM's measure, in CI's units (the 64-bit port, the
# firmware in place from a ROMFS image, unix personality with a WROOM's sizes): the heap
# beyond the image's bytes (one block of it). 2026-12-07, latest (the commands of the
# groups imported on first use found in one index string, not table rows; SSL reads
# through at.sslconf.Records): passes from 117 KB (two runs each at 114-117; 116 fails in
# the dialogue, 115 and below at boot; 116 passed before Records). Before that
# from 126 KB (four runs; at 125 three runs of four failed), and before the passing
# groups and the heap kept in one piece from 140 KB, 139 KB failing on the SSL link's
# SSLContext. So this holds a boot, and a working set, that must not come to need 8 KB
# more (7 KB), nor depend on where blocks land (BENCHMARKS.md: the boots that failed so).
WROOM_HEAP_ROMFS64 = 124 * 1024
# The twin: the same with its stand-ins in the heap (Python objects where a chip has C:
# the network, the sockets, the UART; 73,600 bytes more than the unix personality's at
# `ready` from ROMFS, and its SSL link's sockets weigh more again). 2026-12-07, latest:
# passes from 207 KB beyond the image (205 and 203 failed, the SSL group's import): the
# unix figure plus 92 KB leaves it 9 KB to spare.
WROOM_HEAP_ROMFS_TWIN64 = WROOM_HEAP_ROMFS64 + 92 * 1024


@pytest.mark.timeout(240)
def test_working_set_in_a_wroom_sized_heap(opts, host_ip, tmp_path):
    if opts.port:
        pytest.skip("a virtual board's own heap")
    lib = ROOT / "build" / "vboard" / "lib"
    vboard.compile_lib(lib)
    size = romfs.image(lib, tmp_path / "at.romfs").stat().st_size
    mp = pathlib.Path(sys.executable).parent / "micropython"
    extra = board_args(opts) + ["--romfs", "--micropython", str(mp)]
    if opts.board == "esp32":
        heap = WROOM_HEAP_ROMFS_TWIN64
    else:
        extra, heap = extra + ["--target", "wroom"], WROOM_HEAP_ROMFS64
    set_and_passthrough_in_own_board(opts, host_ip, tmp_path, extra, size + heap)


def set_and_passthrough_in_own_board(opts, host_ip, tmp_path, extra, heap, ssl=True):
    """The working set's dialogue (ssl: link 2 SSL), then passthrough both ways, on a
    board of the test's own started with `extra` and this heap, joined to the AP."""
    echo_srv = TcpServer(host_ip, echo)
    try:
        with own_board(tmp_path / "flash", tmp_path / "log.txt", heap=str(heap), extra=extra) as d:
            d.reset()
            d.ok("ATE0")
            d.ok('AT+CWJAP="%s","%s"' % (opts.ssid, opts.password), timeout=30)
            five_links(d, host_ip, ssl=ssl)
            passthrough_both_ways(d, host_ip, echo_srv.port)
    finally:
        echo_srv.close()


# The `.mpy` WROOM target (`make deploy` on a stock image: the modules read into the heap,
# issue 13): the core's working set (five TCP links, one a client of the board's server,
# passive receive on all, an AT+CIPSENDL, then passthrough) in at most 100 KB of GC heap,
# inside a WROOM's one doubling (112 KB on the chip). On the 32-bit unix MicroPython 1.27.0
# built here (make bench, HEAP32_MPY) the smallest heap that serves it is 102,400 bytes,
# 100 KB (2026-12-07, late; 108,544 before the index string); the same search on this
# 64-bit port gives 145,408 (157,696 before): 1.42 times (pointers, and the loader's
# records of each function, are twice as wide). So 152 KB here: the 100 KB target in
# these units (142 KB) and 10 KB to spare, which a core grown by a few KB uses up.
# The twin's heap also holds its stand-ins (Python objects where the chip has C: the
# network, the sockets, the UART) and the ESP32 adapter, 75,680 bytes more than the unix
# personality's at `ready`: the same budget plus those. Its own smallest heap is 224,256
# (235,520 before).
WROOM_MPY64 = 152 * 1024
WROOM_MPY_TWIN64 = WROOM_MPY64 + 74 * 1024


@pytest.mark.timeout(240)
def test_core_from_mpy_files_in_a_wroom_sized_heap(opts, host_ip, tmp_path):
    if opts.port:
        pytest.skip("a virtual board's own heap")
    extra = board_args(opts) + ["--micropython", str(pathlib.Path(sys.executable).parent / "micropython")]
    if opts.board == "esp32":
        heap = WROOM_MPY_TWIN64
    else:
        extra, heap = extra + ["--target", "wroom"], WROOM_MPY64
    set_and_passthrough_in_own_board(opts, host_ip, tmp_path, extra, heap, ssl=False)
