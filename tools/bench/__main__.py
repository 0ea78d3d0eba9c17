"""Benchmarks: the firmware beside the ceiling this runtime allows, in one run.

    python tools/bench [--port PORT] [--only NAME,NAME] [--bytes N] [--reps N]
    python tools/bench --board esp32 [--mpy 1.27] [--bauds 115200,921600,3000000]

Without --port it starts its own virtual board (tools/vboard.py) on a scratch
flash directory. The ceilings come from tools/bench_baseline.py, a minimal
MicroPython program run under the same interpreter with the same pty technique
as the launcher (the pty master as its non-blocking stdin/stdout). Baseline and
firmware runs are interleaved (baseline, firmware, baseline, firmware ...) so
that a busy machine slows both alike, and every figure is printed beside its
ceiling with the ratio. Peers listen on 127.0.0.1 (or --host-ip for a real board).

Sections are plain functions in SECTIONS (below), one module of this package
each, run in order with one shared context (ctx.wire is the board's port,
ctx.row(...) records a figure, ctx.baseline(...) gives a running baseline
helper). To add one, write `def bench_x(ctx)` in tools/bench/x.py and append
("x", bench_x, True) to SECTIONS.

    latency      AT -> OK round trip
    cipsend      AT+CIPSEND 2048 and 8192 bytes (CIPMUX=0) into a TCP sink
    ipd          +IPD receive (CIPMUX=0) from a TCP source
    heap         free heap after boot and with 5 links open
    server       AT+CIPSERVER, 5 host clients: +IPD from all, CIPSEND=<id>,2048 round-robin
    passive      AT+CIPRECVTYPE=0,1 and AT+CIPRECVDATA=0,2048 reads of a TCP source
    sendl        AT+CIPSENDL of 16 MiB (AT+CIPSENDLCFG=1048576) into a TCP sink
    passthrough  AT+CIPMODE=1: both directions, 1-byte latency at AT+TRANSINTVL=0 and 20
    ssl          SSL links: GC heap of one (AT+SYSRAM?), CIPSTART "SSL" auth 0 / auth 2 (client_ca.0)
                 beside "TCP" and a minimal tls loop; CIPSENDL, CIPSEND 2048 and +IPD beside TCP
    dns          AT+CIPDOMAIN against a local dnslib server (AT+CIPDNS=1) beside an IP literal, a
                 host-side query and a minimal loop (binding UDP port 53 needs root)
    tcpv6        AT+CIPV6=1: +IPD and CIPSEND 2048 over TCPv6 (::1) beside TCPv4 (127.0.0.1)

With --board esp32 the virtual board is the ESP32 twin (tools/vboard.py --board esp32 --mpy M):
the firmware's ESP32 adapter over tools/twin/, its UART paced at the rate AT+UART_CUR sets. Its
ceiling is the line (an 8N1 line carries baud/10 bytes/s), so by default only these run there
(the sections above compare with the unix port's pty and are skipped; --only runs them anyway):

    twin_rate    passthrough UART->peer and peer->UART (and peer->UART with RTS/CTS), CIPSEND 2048
                 at each --bauds rate, as a fraction of the line rate
    twin_ipd     +IPD from 5 links at once (CIPMUX=1, 5 clients of AT+CIPSERVER sending)
    twin_flow    bytes lost at flow 0 and 3 (AT+UART_CUR's <flow_control>): CIPSENDL written flat
                 out; passthrough with a peer that stops reading; with a host that stops reading
    twin_loop    the twin's counters over all runs: how long UART.write() held the loop, bytes lost
"""
import pathlib
import sys

if __package__ in (None, ""):  # `python tools/bench`: the package's folder is sys.path[0]
    # Its modules (ssl_links.py, dns.py, ...) must not stand in for top-level ones: import
    # them as bench.* from tools/ instead.
    _here = pathlib.Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import os
import signal
import time
import traceback

from bench.cipsend import bench_cipsend
from bench.common import Ctx, MiB, plus
from bench.dns import bench_dns
from bench.heap import bench_heap, bench_heap32
from bench.ipd import bench_ipd
from bench.latency import bench_latency
from bench.machine import bench_machine, bench_setup
from bench.passive import bench_passive
from bench.passthrough import bench_passthrough
from bench.sendl import bench_sendl
from bench.server import bench_server
from bench.ssl_links import bench_ssl
from bench.tcpv6 import bench_tcpv6
from bench.twin import TWIN_BAUDS, TWIN_SECTIONS, TWIN_SECTION_S, bench_twin_loop
from bench.twin_flow import bench_twin_flow
from bench.twin_ipd import bench_twin_ipd
from bench.twin_rate import bench_twin_rate
import vboard  # tools/vboard.py (the package puts tools/ on sys.path)


SECTION_S = 55.0  # a section that takes longer is reported
WATCHDOG_S = 480  # the whole run, whatever happens


class Abort(BaseException):
    """The watchdog fired: stop everything (cleanup still runs)."""


# (name, function, needs the board); the board's sections run after "setup".
SECTIONS = [
    ("machine", bench_machine, False),
    ("heap32", bench_heap32, False),
    ("setup", bench_setup, True),
    ("latency", bench_latency, True),
    ("cipsend", bench_cipsend, True),
    ("ipd", bench_ipd, True),
    ("heap", bench_heap, True),
    ("server", bench_server, True),
    ("passive", bench_passive, True),
    ("sendl", bench_sendl, True),
    ("passthrough", bench_passthrough, True),
    ("ssl", bench_ssl, True),
    ("dns", bench_dns, True),
    ("tcpv6", bench_tcpv6, True),
    ("twin_rate", bench_twin_rate, True),
    ("twin_ipd", bench_twin_ipd, True),
    ("twin_flow", bench_twin_flow, True),
    ("twin_loop", bench_twin_loop, True),
]


def summary(ctx):
    print("\n| figure | firmware | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    for section, figure, value, base, ratio in ctx.rows:
        if section != "baseline":
            print("| %s | %s | %s | %s |" % (figure, value, base or "-", ratio or "-"))
    if getattr(ctx, "target", None):
        print("\ntarget: " + ctx.target)
    if ctx.failed:
        print("\nFAILED sections: %s" % ", ".join(ctx.failed))


def _recover(ctx):
    """After a failed section: leave the board usable for the next one."""
    if ctx.wire is None:
        return
    try:
        w = ctx.wire
        w.quiet(0.5)
        plus(w)  # leaves passthrough or an AT+CIPSENDL; "\r\n" ends a stray partial line
        w.write(b"\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPMODE=0\r\nAT+CIPSERVER=0,1\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPCLOSE=5\r\nAT+CIPRECVTYPE=5,0\r\n")
        w.quiet(0.3)
        w.write(b"AT+CIPCLOSE\r\nAT+CIPMUX=0\r\nAT+TRANSINTVL=20\r\n"
                b"AT+CIPSENDLCFG=1024,2920\r\nAT+CIPV6=0\r\nAT+CIPDNS=0\r\n")
        w.quiet(0.3)
        if ctx.args.board == "esp32" and not ctx.args.port:
            w.write(b"AT+UART_CUR=115200,8,1,0,0\r\n")  # the twin's line back to its factory rate
            w.quiet(0.3)
    except Exception:
        pass


def _watchdog(signum, frame):
    raise Abort("the whole run took longer than %d s" % WATCHDOG_S)


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/bench", description=__doc__.split("\n")[0])
    p.add_argument("--port", default=None, help="serial port or pyserial URL of a real board")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--host-ip", default="127.0.0.1", help="this host's address as the board sees it")
    p.add_argument("--ssid", default="vboard")
    p.add_argument("--password", default="vboardpass")
    p.add_argument("--heap", default=None, help="the virtual board's heap (default: the launcher's)")
    p.add_argument("--count", type=int, default=1000, help="AT commands timed on each side (default 1000)")
    p.add_argument("--bytes", type=int, default=16 * MiB,
                   help="bytes per copy, +IPD, server receive (all clients), CIPSENDL and passthrough run "
                        "(default 16 MiB)")
    p.add_argument("--send-bytes", type=int, default=8 * MiB,
                   help="bytes per CIPSEND run (firmware and minimal loop), server send (all clients) "
                        "and passive run (default 8 MiB)")
    p.add_argument("--reps", type=int, default=5, help="runs per throughput figure; the median is shown")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="time limit of all the runs of one throughput figure on one side (default 10)")
    p.add_argument("--packets", type=int, default=200,
                   help="1-byte packets timed at AT+TRANSINTVL=20 (default 200; five times as many at 0)")
    p.add_argument("--handshakes", type=int, default=20,
                   help="AT+CIPSTART connects timed per kind (TCP, SSL auth 0, SSL auth 2; default 20)")
    p.add_argument("--lookups", type=int, default=200, help="AT+CIPDOMAIN lookups timed per kind (default 200)")
    p.add_argument("--host-ip6", default="::1", help="this host's IPv6 address as the board sees it (tcpv6)")
    p.add_argument("--only", default="", help="comma-separated section names (machine and setup always run)")
    p.add_argument("--board", choices=("unix", "esp32"), default=os.getenv("BOARD") or "unix",
                   help="the virtual board's personality (default unix, or $BOARD): esp32 is the ESP32 twin, "
                        "whose UART runs at the line rate; it runs the twin_* sections by default")
    p.add_argument("--mpy", default=os.getenv("MPY") or "1.27", choices=vboard.RELEASES,
                   help="the ESP32 twin's MicroPython release (default 1.27, or $MPY)")
    p.add_argument("--bauds", default=TWIN_BAUDS, help="line rates of the twin sections (default %s)" % TWIN_BAUDS)
    p.add_argument("--line-seconds", type=float, default=5.7,
                   help="twin sections: bytes per run = this many seconds of the line, in whole 64 KiB "
                        "(default 5.7: 64 KiB at 115200, 512 KiB at 921600, 1.6 MiB at 3000000)")
    args = p.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    names = [s[0] for s in SECTIONS]
    if only - set(names):
        p.error("unknown section(s) %s; known: %s" % (", ".join(sorted(only - set(names))), ", ".join(names)))
    twin = args.board == "esp32" and not args.port

    ctx = Ctx(args)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.alarm(WATCHDOG_S)
    have_board = True
    try:
        for name, fn, needs_board in SECTIONS:
            if only and name not in only and name not in ("machine", "setup"):
                continue
            if name in TWIN_SECTIONS and not twin:
                if only:
                    print("\n== %s: skipped (needs the ESP32 twin: --board esp32, no --port)" % name)
                continue
            if twin and not only and name not in TWIN_SECTIONS and name not in ("machine", "setup"):
                # Their ceilings are the unix port's pty copy loops and 16 MiB runs: name them in --only
                # to run them on the twin anyway.
                print("\n== %s: skipped on the ESP32 twin (unix personality: pty ceilings, heap)" % name)
                continue
            if needs_board and not have_board:
                print("\n== %s: skipped (no board)" % name)
                continue
            print("\n== %s: %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]), flush=True)
            t0 = time.monotonic()
            try:
                fn(ctx)
            except Exception as e:
                ctx.failed.append(name)
                print("  FAILED: %s: %s" % (type(e).__name__, e), flush=True)
                traceback.print_exc(limit=4)
                if ctx.vb is not None:
                    print("  (the board's log: %s)" % ctx.vb.log)
                if name == "setup":
                    have_board = False
                else:
                    _recover(ctx)
            dt = time.monotonic() - t0
            print("  (%.1f s)" % dt, flush=True)
            budget = TWIN_SECTION_S if name in TWIN_SECTIONS else SECTION_S
            if dt > budget:
                print("  WARNING: section %s took %.0f s (meant to take under %.0f s)" % (name, dt, budget))
        summary(ctx)
    except Abort as e:
        print("\nABORTED: %s" % e)
        ctx.failed.append("watchdog")
    finally:
        signal.alarm(0)
        ctx.close()
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())
