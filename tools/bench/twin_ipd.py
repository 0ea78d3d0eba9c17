"""Section twin_ipd (ESP32 twin): +IPD from 5 links at once at each line rate."""
from peers import free_port

from bench.server import SERVER_CLIENTS, fw_server_rx, server_clients, server_off
from bench.twin import at_baud, commas, kb, line_rate, of_line, twin_bauds, twin_bytes, twin_fail, twin_line, twin_meter, twin_note


def bench_twin_ipd(ctx):
    """ESP32 twin: +IPD from 5 links at once (CIPMUX=1, 5 host clients of AT+CIPSERVER sending) at each line rate."""
    w = ctx.wire
    meter = twin_meter(ctx)
    k = SERVER_CLIENTS
    port = free_port(ctx.host)
    run_s = ctx.run_s
    opened = []
    S = "twin_ipd"
    w.ok("AT+CIPMUX=1")
    w.ok("AT+CIPSERVER=1,%d" % port)
    try:
        clients, opened = server_clients(ctx, ctx.host, port, k)
        for baud in twin_bauds(ctx.args):
            n = twin_bytes(ctx, baud)
            per = n // k
            ctx.run_s = 2 * n / line_rate(baud) + 3
            twin_line(ctx, baud, 0)
            fig = "+IPD, %d links at once @%s" % (k, at_baud(baud))
            meter.take()
            try:
                rate, whole, frames, junk, total = fw_server_rx(ctx, clients, per)
            except Exception as e:  # noqa: BLE001
                twin_fail(ctx, S, fig, e)
                meter.take(fig)
                continue
            dl = meter.take(fig)
            head = len(b"\r\n+IPD,0,2920:")
            what = ("%d x %s B, SHA-256 ok per link" % (k, commas(per)) if whole else
                    "TIME LIMIT HIT: %s of %s B arrived" % (commas(total), commas(per * k)))
            note = "(%s; %d frames, %.0f B/frame: the +IPD headers take ~%.1f%% of the line; %s)" % (
                what, frames, total / max(1, frames), 100.0 * head * frames / max(1, total + head * frames),
                twin_note(dl))
            if junk:
                note += " UNEXPECTED text between frames: %r" % junk[:3]
            ctx.row(S, fig, kb(rate), "line %s" % kb(line_rate(baud) / 1e6), of_line(rate, baud), note)
    finally:
        ctx.run_s = run_s
        try:
            server_off(w, opened)
        finally:
            twin_line(ctx, 115200, 0)
