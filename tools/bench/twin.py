"""The ESP32 twin (`--board esp32`): line rates, the twin's counters (TwinMeter), the line's
settings, and section twin_loop (the counters over all the runs)."""
import hashlib
import os
import re
import threading
import time

from board import Timeout

from bench import ROOT
from bench.common import OK


# On `--board esp32` the board's UART is tools/twin/machine.py: bytes move at the rate AT+UART_CUR
# sets (start + 8 data + stop bits: an 8N1 line carries baud/10 bytes/s), through an RX ring of
# rxbuf (+128 FIFO) bytes that drops what overflows unless RTS is on, and a TX ring whose bytes are
# lost when the host's buffer (the pty, about 15 KB) is full, unless CTS is on. The host side of a
# pty ignores its own termios speed: the bench changes only the board's rate. Every figure below is
# one run, its bytes checked with SHA-256 at the receiving end, and the twin's counters
# (<flash>.stats.json) read before and after it.
TWIN_BAUDS = "115200,921600,3000000"
TWIN_SECTIONS = ("twin_rate", "twin_ipd", "twin_flow", "twin_loop")
TWIN_SECTION_S = 200.0  # a twin section runs every rate
STALL_RCVBUF = 4096  # the stalling peer's SO_RCVBUF (Linux doubles it): back-pressure reaches the board soon
QUIET_S = 1.0  # after a transfer, this long without a byte means nothing more is coming


def board_args(a):
    """tools/vboard.py's personality options for the bench's arguments."""
    return ["--board", a.board] + (["--mpy", a.mpy] if a.board == "esp32" else [])


def twin_bauds(a):
    return tuple(int(b) for b in str(a.bauds).split(",") if b.strip())


def line_rate(baud):
    """Bytes/s an 8N1 line carries: 10 bits a byte (start, 8 data, stop)."""
    return baud / 10.0


def twin_bytes(ctx, baud):
    """Bytes per run at this rate: about --line-seconds of the line, in whole 64 KiB."""
    return max(1, int(line_rate(baud) * ctx.args.line_seconds) // 65536) * 65536


def kb(rate_mbps):
    return "%.2f kB/s" % (rate_mbps * 1000)


def of_line(rate_mbps, baud):
    return "%.1f%% of the line" % (100 * rate_mbps * 1e6 / line_rate(baud))


def at_baud(baud):
    return "%s baud" % format(baud, ",")


def commas(n):
    return format(n, ",")


def twin_stats(ctx, fresh=True):
    """The twin's UART counters (VirtualBoard.stats(), <flash>.stats.json, saved about twice a
    second while the firmware runs). fresh: wait (at most 2 s) for a copy saved from now on."""
    if fresh:
        path = ctx.vb.stats_path
        t = time.time()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                if path.stat().st_mtime > t:
                    break
            except OSError:
                pass
            time.sleep(0.05)
    return ctx.vb.stats()


class TwinMeter:
    """The twin's counters between two takes: what a run lost on the line and how long
    UART.write() held the firmware's loop meanwhile."""

    KEYS = ("rx_lost", "tx_lost", "write_blocked_total_ms", "irq_events")

    def __init__(self, ctx):
        self.ctx = ctx
        self.first = self.last = twin_stats(ctx)
        self.log_pos = len(ctx.vb.log_text())
        self.runs = []  # (label, delta) of every run measured

    def take(self, label=None):
        now = twin_stats(self.ctx)
        d = {k: now.get(k, 0) - self.last.get(k, 0) for k in self.KEYS}
        d["restarted"] = any(v < 0 for v in d.values())  # a new firmware process counts from 0
        if d["restarted"]:
            d.update({k: now.get(k, 0) for k in self.KEYS})
        d["longest_ms"] = now.get("write_blocked_ms", 0)  # since the firmware started
        text = self.ctx.vb.log_text()
        new = text[self.log_pos:]
        d["errors"] = loop_errors(new)
        self.log_pos = len(text)
        if d["errors"]:
            # The first one in full (the bench's scratch flash and log are deleted at the end).
            first = "at: loop error:" + new.split("at: loop error:")[1].split("\nat:")[0]
            print("  the board's log (%s):\n    %s" % (label or "between runs", first.strip().replace("\n", "\n    ")))
        self.last = now
        if label:
            self.runs.append((label, d))
        return d


def loop_errors(log):
    """The firmware's "at: loop error" reports in a piece of its log (UART0), summarised:
    ["MemoryError: ... (lib/at/pump.py:59) x3", ...]."""
    found = {}
    for block in log.split("at: loop error:")[1:]:
        where = re.findall(r'File "([^"]+)", line (\d+)', block.split("\nat:")[0])
        what = re.search(r"^(\w+(?:Error|Exception)\b[^\n]*)", block, re.M)
        key = "%s (%s)" % (what.group(1) if what else "?", "%s:%s" % (
            os.path.relpath(where[-1][0], ROOT), where[-1][1]) if where else "?")
        key = re.sub(r"allocating \d+ bytes", "allocating N bytes", key)
        found[key] = found.get(key, 0) + 1
    return ["%s x%d" % (k, n) if n > 1 else k for k, n in found.items()]


def twin_meter(ctx):
    if getattr(ctx, "twin", None) is None:
        ctx.twin = TwinMeter(ctx)
    return ctx.twin


def twin_note(d):
    s = "rx_lost %d, tx_lost %d, UART.write() held the loop %d ms" % (
        d["rx_lost"], d["tx_lost"], d["write_blocked_total_ms"])
    if d["restarted"]:
        s += "; THE FIRMWARE RESTARTED during this run (counters since its start)"
    if d["errors"]:
        s += "; THE BOARD'S LOG: loop error %s" % "; ".join(d["errors"])
    return s


def twin_line(ctx, baud, flow=0):
    """AT+UART_CUR=<baud>,8,1,0,<flow> (0 none, 1 RTS, 2 CTS, 3 both): OK comes at the old rate,
    then the twin's line switches; the host's side of the pty needs nothing."""
    w = ctx.wire
    w.ok("AT+UART_CUR=%d,8,1,0,%d" % (baud, flow))
    for _ in range(5):
        time.sleep(0.05)
        w.quiet(0.05)
        try:
            w.ok("AT", 1.0)  # input sent during the switch may be dropped (the driver flushes it)
            return
        except (Timeout, AssertionError):
            pass
    raise Timeout("the board did not answer AT at %d baud, flow %d" % (baud, flow))


def twin_fail(ctx, section, figure, e):
    ctx.row(section, figure, "FAILED", note="%s: %s" % (type(e).__name__, e))
    ctx.failed.append("%s (%s)" % (section, figure))


class Stall:
    """A reader's pause: after `after` bytes it stops reading for `seconds`, once."""

    def __init__(self, after, seconds):
        self.after = after
        self.seconds = seconds
        self.over = threading.Event()

    def hold(self):
        time.sleep(self.seconds)
        self.over.set()


def host_write(w, data, until, piece=16384):
    """The host writes data flat out into the port. Returns (bytes the port took, the Timeout
    that stopped it or None); on a Timeout up to `piece` more bytes may have gone in."""
    mv = memoryview(data)
    done = 0
    try:
        while done < len(mv) and time.monotonic() < until:
            done += w.write(mv[done:done + piece], 10, until=until)
    except Timeout as e:
        return done, e
    return done, None


def settle(flow, want, quiet=QUIET_S, limit=20.0):
    """Wait until flow holds `want` bytes or none came for `quiet` seconds."""
    stop = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while flow.n < want and time.monotonic() < stop:
        if flow.n != last:
            last, since = flow.n, time.monotonic()
        elif time.monotonic() - since > quiet:
            break
        time.sleep(0.02)


def arrived(flow, data, want):
    """"SHA-256 ok" when all of data arrived intact; otherwise what the hash says."""
    if flow.n == len(data) and flow.digest() == want:
        return "SHA-256 ok"
    if flow.n <= len(data) and flow.digest() == hashlib.sha256(data[:flow.n]).hexdigest():
        return "SHA-256: the first %s B arrived intact, the rest did not arrive" % commas(flow.n)
    return "SHA-256 MISMATCH: bytes missing or changed inside the stream"


def bench_twin_loop(ctx):
    """ESP32 twin: how long UART.write() held the firmware's loop, and what the line lost, over all the runs above."""
    meter = twin_meter(ctx)
    st = twin_stats(ctx)
    runs = meter.runs
    held = [(lbl, d["write_blocked_total_ms"]) for lbl, d in runs if d["write_blocked_total_ms"]]
    ctx.row("twin_loop", "UART.write() held the loop, longest once", "%d ms" % st.get("write_blocked_ms", 0),
            note="(since the firmware started; the firmware is built never to wait in UART.write())")
    ctx.row("twin_loop", "UART.write() held the loop, in all", "%d ms" % st.get("write_blocked_total_ms", 0),
            note="(%d measured runs, %d with any wait%s)" % (
                len(runs), len(held), ": %s" % ", ".join("%s %d ms" % h for h in held[:5]) if held else ""))
    ctx.row("twin_loop", "bytes the line lost, RX / TX", "%s / %s B" % (
        commas(st.get("rx_lost", 0)), commas(st.get("tx_lost", 0))),
        note="(since the firmware started; flow 0 with a stalling peer or host loses by design: see twin_flow)")
    lost_fc = [(lbl, d) for lbl, d in runs if "RTS/CTS" in lbl and (d["rx_lost"] or d["tx_lost"] or d.get("lost"))]
    ctx.row("twin_loop", "runs with RTS/CTS on that lost bytes", "%d" % len(lost_fc),
            note="(%s)" % ("; ".join("%s: %s B lost, the line's counters rx %d, tx %d" % (
                lbl, commas(d.get("lost", 0)), d["rx_lost"], d["tx_lost"]) for lbl, d in lost_fc)
                if lost_fc else "the aim: none"))
    odd = [(lbl, d) for lbl, d in runs if d.get("lost", 0) > d["rx_lost"] + d["tx_lost"]]
    ctx.row("twin_loop", "runs that lost bytes not on the line", "%d" % len(odd),
            note="(%s)" % ("; ".join("%s: %s B" % (lbl, commas(d["lost"] - d["rx_lost"] - d["tx_lost"]))
                                     for lbl, d in odd) if odd else "none"))
    ctx.row("twin_loop", "UART RX events (irq) in all", commas(st.get("irq_events", 0)))
    try:
        ctx.wire.quiet(0.2)
        alive = "yes" if ctx.wire.cmd("AT", 3).endswith(OK) else "no"
    except Timeout:
        alive = "NO: no answer within 3 s"
    ctx.row("twin_loop", "the board answers AT after all the runs", alive)
    errs = [(lbl, d["errors"]) for lbl, d in runs if d["errors"]]
    ctx.row("twin_loop", "runs with a loop error in the board's log", "%d" % len(errs),
            note="(%s)" % ("; ".join("%s: %s" % (lbl, ", ".join(e)) for lbl, e in errs) if errs else "none"))
    if any(d["restarted"] for _, d in runs):
        ctx.row("twin_loop", "FIRMWARE RESTARTS during runs", ", ".join(lbl for lbl, d in runs if d["restarted"]))
