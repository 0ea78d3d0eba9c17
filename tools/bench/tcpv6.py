"""Section tcpv6: +IPD and CIPSEND 2048 over TCPv6 (::1) beside TCPv4 (127.0.0.1)."""
import re
import statistics

from bench.baseline import BaseCopy
from bench.cipsend import cipsend_note, fw_cipsend
from bench.common import Sink, base_row, mib, rate_note, spread
from bench.ipd import fw_ipd


class BaseCopy6(BaseCopy):
    """The bare copy loop over TCPv6 (::1)."""
    host = "::1"


def bench_tcpv6(ctx):
    """TCPv6 (AT+CIPV6=1, peers on ::1) beside TCPv4 (127.0.0.1): +IPD receive and CIPSEND 2048, alternating."""
    w = ctx.wire
    if ctx.args.port and ctx.host6 == "::1":
        print("  skipped: a real board needs --host-ip6 (this host's IPv6 address on the board's network)")
        return
    n = ctx.args.bytes
    m = ctx.args.send_bytes // 2
    reps = ctx.args.reps
    h6 = ctx.host6
    copy4 = ctx.baseline(BaseCopy)
    copy6 = ctx.baseline(BaseCopy6)
    saved = re.search(rb"\+CIPV6:(\d)", w.ok("AT+CIPV6?"))
    w.ok("AT+CIPMUX=0")
    w.ok("AT+CIPV6=1")
    sink4 = Sink(ctx.host)
    sink6 = Sink(h6)
    try:
        i4, i6, b4, b6 = [], [], [], []
        # Alternating, and which family goes first alternates too.
        for i in range(reps):
            for fam in ((4, 6) if i % 2 == 0 else (6, 4)):
                if fam == 4:
                    b4.append(copy4.down(n))
                    i4.append(fw_ipd(ctx, n))
                else:
                    b6.append(copy6.down(n))
                    i6.append(fw_ipd(ctx, n, "TCPv6", h6))
        c4, c6 = [], []
        for i in range(reps):
            for fam in ((4, 6) if i % 2 == 0 else (6, 4)):
                if fam == 4:
                    c4.append(fw_cipsend(ctx, sink4, 2048, m))
                else:
                    c6.append(fw_cipsend(ctx, sink6, 2048, m, "TCPv6", h6))
    finally:
        sink4.close()
        sink6.close()
        w.ok("AT+CIPV6=%s" % (saved.group(1).decode() if saved else "0"))
    d4 = base_row(ctx, "raw copy TCP->pty (tcpv6 section, 127.0.0.1)", b4, n)
    d6 = base_row(ctx, "raw copy TCPv6->pty (::1)", b6, n)
    r4 = statistics.median(r[0] for r in i4)
    r6 = statistics.median(r[0] for r in i6)
    junk = [j for r in i4 + i6 for j in r[3]]
    note = rate_note(i6, mib(n))[:-1] + "; %.0f B/frame; TCPv4: %s)" % (
        n / max(1, i6[-1][2]), spread([r[0] for r in i4], "%.2f"))
    if junk:
        note += " UNEXPECTED text between frames: %r" % junk[:3]
    ctx.row("tcpv6", "+IPD receive, TCPv6 (%s)" % h6, "%.2f MB/s" % r6, "TCPv4 (%s) %.2f MB/s" % (ctx.host, r4),
            "%.0f%%" % (100 * r6 / r4), note)
    ctx.row("tcpv6", "the raw copy loop, IPv6 vs IPv4 (same runs)", "%.1f MB/s" % d6, "IPv4 %.1f MB/s" % d4,
            "%.0f%%" % (100 * d6 / d4), "(+IPD against its own family's copy: v6 %.1f%%, v4 %.1f%%)" % (
                100 * r6 / d6, 100 * r4 / d4))
    s4 = statistics.median(r[0] for r in c4)
    s6 = statistics.median(r[0] for r in c6)
    ctx.row("tcpv6", "CIPSEND 2048B, TCPv6 (%s)" % h6, "%.2f MB/s" % s6, "TCPv4 %.2f MB/s" % s4,
            "%.0f%%" % (100 * s6 / s4), cipsend_note(c6, m)[:-1] + "; TCPv4: %s)" % spread(
                [r[0] for r in c4], "%.2f"))
