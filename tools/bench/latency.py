"""Section latency: AT -> OK round trips beside the bare responder."""
from bench.baseline import BaseResponder
from bench.common import round_trips, stats_ms


def bench_latency(ctx):
    """AT -> OK round trip, echo off: blocks of 100 commands, baseline and firmware alternating."""
    base = ctx.baseline(BaseResponder).wire
    w = ctx.wire
    round_trips(base, 100)  # warm up
    round_trips(w, 100)
    b_rt, f_rt = [], []
    block = 100
    for _ in range((ctx.args.count + block - 1) // block):
        b_rt += round_trips(base, block)
        f_rt += round_trips(w, block)
    b_med, b_p99 = stats_ms(b_rt)
    f_med, f_p99 = stats_ms(f_rt)
    ctx.base["at_med"] = b_med
    ctx.row("baseline", "AT->OK median", "%.3f ms" % b_med, note="(bare responder, %d commands)" % len(b_rt))
    ctx.row("baseline", "AT->OK p99", "%.3f ms" % b_p99)
    ctx.row("latency", "AT->OK median", "%.3f ms" % f_med, "%.3f ms" % b_med, "%.1fx" % (f_med / b_med),
            note="(%d commands)" % len(f_rt))
    ctx.row("latency", "AT->OK p99", "%.3f ms" % f_p99, "%.3f ms" % b_p99, "%.1fx" % (f_p99 / b_p99))
    r = f_med / b_med
    ctx.target = "AT->OK median within 4x of the baseline: %s (%.1fx)" % ("met" if r <= 4 else "NOT met", r)
    print("  target: " + ctx.target)
