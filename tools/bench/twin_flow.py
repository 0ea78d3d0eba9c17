"""Section twin_flow (ESP32 twin): bytes lost without and with RTS/CTS at each line rate."""
import re
import socket
import threading
import time

from board import Timeout

from bench.common import Flow, JobPeer, Sink, mbps, payload, plus
from bench.passthrough import leave, link_ready, resume
from bench.twin import QUIET_S, STALL_RCVBUF, Stall, arrived, at_baud, commas, host_write, kb, line_rate, of_line, settle, twin_bauds, twin_bytes, twin_fail, twin_line, twin_meter, twin_note


def _loss_sendl(ctx, sink, n, limit):
    """AT+CIPSENDL=<n>; the host writes n bytes flat out while the sink reads as fast as it can.
    Returns (host wrote, arrived, integrity, how it ended, MB/s over what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-sendl")
    flow = sink.flow = Flow(n)
    w.ok('AT+CIPSTART="TCP","%s",%d' % (ctx.host, sink.port), timeout=20)
    w.write(b"AT+CIPSENDL=%d\r\n" % n)
    r = w.read_until(b">", 5)
    if r != b"\r\nOK\r\n\r\n>":
        raise AssertionError("AT+CIPSENDL -> %r" % r)
    out = [0, None]
    until = time.monotonic() + limit

    def writer():
        out[0], out[1] = host_write(w, data, until)

    t0 = time.perf_counter()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    end = re.compile(rb"\r\n(SEND OK|SEND FAIL|SEND CANCELLED)\r\n")
    try:
        r = w.read_until(end, limit + 1)
        how = "ended by itself: %s" % end.search(r).group(1).decode()
    except Timeout:
        t.join(12)
        plus(w)  # bytes are missing: the board still waits for them; "+++" ends the send
        try:
            r = w.read_until(end, 10)
            how = "no end after %.0f s, then +++: %s" % (limit + 1, end.search(r).group(1).decode())
        except Timeout:
            how = "no end after %.0f s, nor after +++" % (limit + 1)
    t.join(12)
    settle(flow, out[0])
    flow.done.set()
    rate = mbps(flow.n, (flow.t_last or time.perf_counter()) - t0)
    if out[1] is not None:
        how += "; the host's write stopped: %s" % out[1]
    w.quiet(0.1)
    w.cmd("AT+CIPCLOSE", timeout=5)
    w.quiet(0.05)
    return out[0], flow.n, arrived(flow, data, want), how, rate


def _loss_up(ctx, peer, n, stall_s, limit):
    """Passthrough: the host writes n bytes flat out; the peer stops reading for stall_s once n/8
    arrived. Returns (host wrote, arrived, integrity, seconds the host took to write, MB/s over
    what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-stall-up")
    flow = Flow(n)
    stall = Stall(n // 8, stall_s)
    until = time.monotonic() + limit + stall_s
    peer.jobs.put(("recv", flow, stall, until + 20))
    t0 = time.perf_counter()
    wrote, err = host_write(w, data, until)
    t_write = time.perf_counter() - t0
    stall.over.wait(max(0.0, until - time.monotonic()) + stall_s)
    settle(flow, wrote)
    flow.done.set()  # ends the peer's job
    rate = mbps(flow.n, (flow.t_last or time.perf_counter()) - t0)
    integrity = arrived(flow, data, want)
    if err is not None:
        integrity += "; the host's write stopped: %s" % err
    return wrote, flow.n, integrity, t_write, rate


def _loss_down(ctx, peer, n, stall_s, limit):
    """Passthrough: the peer sends n bytes; the host reads flat out but stops for stall_s once n/8
    arrived. Returns (arrived, integrity, MB/s over what arrived)."""
    w = ctx.wire
    data, want = payload(n, b"tw-stall-down")
    flow = Flow(n)
    started = [None]
    deadline = time.monotonic() + limit + stall_s
    peer.jobs.put(("send", data, started, deadline + 5))
    buf = w.buf
    while flow.n < n // 8 and time.monotonic() < deadline:
        if w.read_some(0.1):
            flow.add(bytes(buf))
            buf.clear()
    time.sleep(stall_s)  # the host reads nothing: its buffer (the pty) fills
    since = time.monotonic()
    while flow.n < n and time.monotonic() < deadline + 15:
        if w.read_some(0.1):
            flow.add(bytes(buf))
            buf.clear()
            since = time.monotonic()
        elif time.monotonic() - since > QUIET_S:
            break
    t_end = flow.t_last or time.perf_counter()
    return flow.n, arrived(flow, data, want), mbps(flow.n, t_end - (started[0] or t_end))


def _loss_row(ctx, section, fig, sent, got, dl, sender, receiver, detail):
    """One loss figure: what arrived of what was sent, and where the difference went (the twin's
    line counters; whatever they do not explain was lost elsewhere, e.g. inside the firmware)."""
    lost = sent - got
    dl["lost"] = lost
    line = dl["rx_lost"] + dl["tx_lost"]
    acc = "the line dropped %s B" % commas(line)
    if lost > line:
        acc += ", %s B LOST ELSEWHERE (not on the line)" % commas(lost - line)
    elif lost < line:
        acc += " (%s B more than went missing: counted in another run?)" % commas(line - lost)
    ctx.row(section, fig, "%s of %s B reached the %s" % (commas(got), commas(sent), receiver), "%s %s B" % (sender, commas(sent)),
            "%s lost" % commas(lost), "(%s; %s; %s)" % (detail, acc, twin_note(dl)))


def bench_twin_flow(ctx):
    """ESP32 twin: bytes lost without and with RTS/CTS (flow 0 / 3) at each line rate: CIPSENDL flat out, a stalling peer, a stalling host."""
    w = ctx.wire
    meter = twin_meter(ctx)
    bauds = twin_bauds(ctx.args)
    S = "twin_flow"
    names = {0: "flow 0 (none)", 3: "flow 3 (RTS/CTS)"}
    sink = Sink(ctx.host)
    peer = JobPeer(ctx.host)
    # A small receive window: when the peer stops reading, the board's socket fills within
    # ~20 KB and the back-pressure reaches the UART (a stand-in for any slow server).
    peer.srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
    inside = False
    try:
        w.ok("AT+CIPMUX=0")
        w.ok("AT+CIPMODE=0")
        w.ok("AT+CIPSENDLCFG=1048576")  # few reports: the data is the point
        # 1. AT+CIPSENDL, the host writing flat out, the peer keeping up.
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            limit = 2 * n / line_rate(baud) + 3
            for fc in (0, 3):
                twin_line(ctx, baud, fc)
                fig = "CIPSENDL flat out @%s, %s" % (at_baud(baud), names[fc])
                meter.take()
                try:
                    wrote, got, integrity, how, rate = _loss_sendl(ctx, sink, n, limit)
                except Exception as e:  # noqa: BLE001
                    twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                    continue
                dl = meter.take(fig)
                _loss_row(ctx, S, fig, wrote, got, dl, "host wrote", "peer", "%s; %s; %s = %s" % (
                    integrity, how, kb(rate), of_line(rate, baud)))
        w.ok("AT+CIPSENDLCFG=1024,2920")
        # 2, 3. Passthrough: a peer that stops reading for a while; a host that stops reading.
        w.ok("AT+CIPMODE=1")
        w.ok("AT+TRANSINTVL=20")
        twin_line(ctx, 115200, 0)
        link_ready(w, ctx, peer)
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            line_s = n / line_rate(baud)
            stall_s = line_s / 2  # half the transfer's line time: more than every buffer on the way holds
            limit = 2 * line_s + 3
            for fc in (0, 3):
                twin_line(ctx, baud, fc)
                resume(w)
                inside = True
                fig = "passthrough UART->peer @%s, %s, peer stalls" % (at_baud(baud), names[fc])
                meter.take()
                try:
                    wrote, got, integrity, t_write, rate = _loss_up(ctx, peer, n, stall_s, limit)
                    dl = meter.take(fig)
                    _loss_row(ctx, S, fig, wrote, got, dl, "host wrote", "peer",
                              "the peer stopped reading for %.1f s after %s B; %s; the host's writes took %.1f s "
                              "(%.1f s of line); %s over what arrived" % (
                                  stall_s, commas(n // 8), integrity, t_write, line_s, kb(rate)))
                except Exception as e:  # noqa: BLE001
                    twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                fig = "passthrough peer->UART @%s, %s, host stalls" % (at_baud(baud), names[fc])
                meter.take()
                try:
                    got, integrity, rate = _loss_down(ctx, peer, n, stall_s, limit)
                    dl = meter.take(fig)
                    _loss_row(ctx, S, fig, n, got, dl, "peer sent", "host",
                              "the host stopped reading for %.1f s after %s B; %s; %s over what arrived" % (
                                  stall_s, commas(n // 8), integrity, kb(rate)))
                except Exception as e:  # noqa: BLE001
                    twin_fail(ctx, S, fig, e)
                    meter.take(fig)
                plus(w)
                inside = False
                w.quiet(0.2)
    finally:
        try:
            leave(w, inside, 0.2)
            w.ok("AT+CIPSENDLCFG=1024,2920")
            twin_line(ctx, 115200, 0)
        finally:
            w.quiet(0.1)
            peer.close()
            sink.close()
