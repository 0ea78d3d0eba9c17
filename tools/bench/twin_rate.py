"""Section twin_rate (ESP32 twin): passthrough and CIPSEND 2048 at each line rate."""
from bench.cipsend import fw_cipsend
from bench.common import JobPeer, SEND_OK, Sink, pipe_down, pipe_up, plus, round_trips, stats_ms
from bench.passthrough import leave, link_ready, resume
from bench.twin import at_baud, commas, kb, line_rate, of_line, twin_bauds, twin_bytes, twin_fail, twin_line, twin_meter, twin_note


def bench_twin_rate(ctx):
    """ESP32 twin: passthrough both ways and CIPSEND 2048 at each line rate, as a fraction of the line (baud/10 B/s)."""
    w = ctx.wire
    meter = twin_meter(ctx)
    bauds = twin_bauds(ctx.args)
    peer = JobPeer(ctx.host)
    sink = Sink(ctx.host)
    run_s = ctx.run_s
    inside = False
    S = "twin_rate"
    try:
        w.ok("AT+CIPMUX=0")
        w.ok("AT+CIPMODE=1")
        w.ok("AT+TRANSINTVL=20")
        link_ready(w, ctx, peer)  # one passthrough link for every rate: a JobPeer serves one connection
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            limit = 2 * n / line_rate(baud) + 3
            for flow_ctl, dirs in ((0, ("up", "down")), (3, ("down",))):
                twin_line(ctx, baud, flow_ctl)
                resume(w)
                inside = True
                for d in dirs:
                    fig = "passthrough %s @%s%s" % ("UART->peer" if d == "up" else "peer->UART", at_baud(baud),
                                                    ", RTS/CTS" if flow_ctl else "")
                    meter.take()
                    try:
                        if d == "up":
                            rate, whole, _ = pipe_up(w, peer, n, limit, b"tw-up")
                        else:
                            rate, whole = pipe_down(w, peer, n, limit, b"tw-down")
                    except Exception as e:  # noqa: BLE001  (reported as a failure line)
                        twin_fail(ctx, S, fig, e)
                        meter.take(fig)
                        continue
                    dl = meter.take(fig)
                    what = "%s B, SHA-256 ok" % commas(n) if whole else "TIME LIMIT HIT (%.0f s): rate over what arrived" % limit
                    ctx.row(S, fig, kb(rate), "line %s" % kb(line_rate(baud) / 1e6), of_line(rate, baud),
                            "(%s; %s)" % (what, twin_note(dl)))
                plus(w)
                inside = False
        w.quiet(0.1)
        w.ok("AT+CIPMODE=0")
        w.ok("AT+CIPCLOSE", timeout=5)
        # AT+CIPSEND=2048 / ">" / data / SEND OK: what the wire allows at best is the share of the
        # data in the bytes both ways (the host waits for ">" and for SEND OK each time).
        size = 2048
        over = len(b"AT+CIPSEND=%d\r\n" % size) + len(b"\r\nOK\r\n\r\n>") + len(
            b"\r\nRecv %d bytes\r\n" % size) + len(SEND_OK)
        bound = 100.0 * size / (size + over)
        for baud in bauds:
            n = twin_bytes(ctx, baud)
            ctx.run_s = 2 * n / line_rate(baud) + 3
            twin_line(ctx, baud, 0)
            # The round trip a CIPSEND pays twice: AT -> OK, 10 bytes of line.
            med, p99 = stats_ms(round_trips(w, 200))
            ctx.row(S, "AT->OK median @%s" % at_baud(baud), "%.3f ms" % med,
                    "10 B of line %.3f ms" % (10 * 1000 / line_rate(baud)), "",
                    "(200 commands, echo off; p99 %.3f ms)" % p99)
            fig = "CIPSEND %dB @%s" % (size, at_baud(baud))
            meter.take()
            try:
                rate, whole, s1, s2 = fw_cipsend(ctx, sink, size, n)
            except Exception as e:  # noqa: BLE001
                twin_fail(ctx, S, fig, e)
                meter.take(fig)
                continue
            dl = meter.take(fig)
            what = "%s B, SHA-256 ok" % commas(n) if whole else "TIME LIMIT HIT: rate over what was acknowledged"
            ctx.row(S, fig, kb(rate), "line %s" % kb(line_rate(baud) / 1e6), of_line(rate, baud),
                    "(%s; the protocol's bytes allow %.1f%%; per send %.2f ms command->'>' + %.2f ms data->SEND OK; %s)"
                    % (what, bound, s1, s2, twin_note(dl)))
    finally:
        ctx.run_s = run_s
        try:
            leave(w, inside)
            twin_line(ctx, 115200, 0)
        finally:
            w.quiet(0.1)
            peer.close()
            sink.close()
