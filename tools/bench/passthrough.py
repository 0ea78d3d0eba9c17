"""Section passthrough: AT+CIPMODE=1 both ways and 1-byte latency beside the raw copy loop."""
import statistics

from bench.baseline import BaseCopy
from bench.common import JobPeer, base_row, latency_up, mib, pipe_down, pipe_up, plus, rate_note, stats_ms


BAUDS = (115200, 921600, 2000000)


def enter(w, ctx, port):
    r = w.cmd('AT+CIPSTART="TCP","%s",%d' % (ctx.host, port), 10)
    if r != b"CONNECT\r\n\r\nOK\r\n":
        raise AssertionError("AT+CIPSTART (passthrough) -> %r" % r)
    resume(w)


def resume(w):
    w.write(b"AT+CIPSEND\r\n")
    r = w.read_until(b">", 5)
    if r != b"\r\nOK\r\n\r\n>":
        raise AssertionError("AT+CIPSEND (passthrough) -> %r" % r)


def link_ready(w, ctx, peer):
    """Open the passthrough link to peer (AT+CIPMODE=1 set) and come back to command
    mode once the peer has accepted it."""
    enter(w, ctx, peer.port)
    try:
        peer.srv.wait_conn(5)
    finally:
        plus(w)


def leave(w, inside, settle=0.1):
    """End a section's passthrough: "+++" if the host is still inside, then command
    mode and link 0 closed (ERROR is fine there: the link may be gone already)."""
    if inside:
        plus(w)
    w.quiet(settle)
    w.ok("AT+CIPMODE=0")
    w.cmd("AT+CIPCLOSE", timeout=5)


def _tty_speed(w):
    """The pty's termios speed after pyserial opened it at --baud (None if unknown)."""
    try:
        import termios
        ispeed = termios.tcgetattr(w.fd)[5]
        names = {getattr(termios, "B%d" % b): b for b in (9600, 115200, 230400, 460800, 921600, 2000000)
                 if hasattr(termios, "B%d" % b)}
        return names.get(ispeed, ispeed)
    except Exception:  # noqa: BLE001
        return None


def bench_passthrough(ctx):
    """Passthrough (CIPMODE=1): throughput both ways, 1-byte latency at TRANSINTVL=0 and 20; ceiling: the raw copy loop."""
    w = ctx.wire
    n = ctx.args.bytes
    reps = ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    peer = JobPeer(ctx.host)
    inside = False
    w.ok("AT+CIPMUX=0")
    w.ok("AT+CIPMODE=1")
    try:
        w.ok("AT+TRANSINTVL=20")  # the default, for the throughput runs
        enter(w, ctx, peer.port)
        inside = True
        peer.srv.wait_conn(5)
        secs = ctx.run_s * 2
        # All but the last packet: the last (< 2,920 bytes) waits for the packing interval.
        mark = n - 2920
        b_up, f_up, b_dn, f_dn = [], [], [], []
        for _ in range(reps):
            b_up.append(copy.up(n))
            f_up.append(pipe_up(w, peer, n, secs, b"pt-up", mark))
        for _ in range(reps):
            b_dn.append(copy.down(n))
            f_dn.append(pipe_down(w, peer, n, secs, b"pt-down"))
        up = base_row(ctx, "raw copy pty->TCP (passthrough)", b_up, n)
        dn = base_row(ctx, "raw copy TCP->pty (passthrough)", b_dn, n)
        fu = statistics.median(r[0] for r in f_up)
        marks = [r[2] for r in f_up if r[2]]
        fm = statistics.median(marks) if len(marks) == len(f_up) else None
        note = rate_note(f_up, mib(n))
        if fm and abs(fm - fu) > 0.01 * fu:
            # The last packet may wait for the packing interval; show the rate without it too.
            note = note[:-1] + "; all but the last 2,920 B: %.2f MB/s)" % fm
        ctx.row("passthrough", "passthrough UART->peer", "%.2f MB/s" % fu, "raw copy %.1f MB/s" % up,
                "%.1f%%" % (100 * fu / up), note)
        fd = statistics.median(r[0] for r in f_dn)
        ctx.row("passthrough", "passthrough peer->UART", "%.2f MB/s" % fd, "raw copy %.1f MB/s" % dn,
                "%.1f%%" % (100 * fd / dn), rate_note(f_dn, mib(n)))
        plus(w)
        inside = False

        # Latency of one byte UART -> peer, blocks of 50 alternating with the baseline copy loop.
        block = 50
        every = []
        for intvl in (0, 20):
            # p99 of 200 is the third-worst sample: time five times as many where they are cheap.
            k = ctx.args.packets * (5 if intvl == 0 else 1)
            w.ok("AT+TRANSINTVL=%d" % intvl)
            resume(w)
            inside = True
            base, fw = [], []
            for _ in range((k + block - 1) // block):
                base += copy.latency(block)
                fw += latency_up(w, peer, block)
            plus(w)
            inside = False
            every += base
            med, p99 = stats_ms(fw)
            bmed, bp99 = stats_ms(base)
            ctx.row("passthrough", "passthrough 1 B UART->peer, TRANSINTVL=%d, median" % intvl, "%.3f ms" % med,
                    "copy loop %.3f ms" % bmed, "%.1fx" % (med / bmed),
                    "(%d packets%s)" % (len(fw), "; the packing interval dominates" if intvl else ""))
            ctx.row("passthrough", "passthrough 1 B UART->peer, TRANSINTVL=%d, p99" % intvl, "%.3f ms" % p99,
                    "copy loop %.3f ms" % bp99, "%.1fx" % (p99 / bp99))
        bmed, bp99 = stats_ms(every)
        ctx.row("baseline", "copy loop 1 B pty->TCP median", "%.3f ms" % bmed,
                note="(p99 %.3f ms, %d packets in blocks of %d alternating with the firmware's)" % (
                    bp99, len(every), block))
        w.ok("AT+TRANSINTVL=20")

        # A real ESP32's ceiling is the UART line: what the firmware sustains here, against line rates.
        for baud in BAUDS:
            line = baud / 10  # 8N1: 10 bits a byte
            ctx.row("passthrough", "passthrough up / down vs a %s-baud line (%s B/s)" % (
                    format(baud, ","), format(int(line), ",")),
                    "%.2f / %.2f MB/s" % (fu, fd), "line %.3f MB/s" % (line / 1e6),
                    "%sx / %sx the line" % (format(int(fu * 1e6 / line), ","), format(int(fd * 1e6 / line), ",")))
        speed = _tty_speed(w)
        if ctx.args.port:
            print("  (a real port at %d baud: the line rate bounds the throughput above)" % ctx.args.baud)
        else:
            print("  (virtual board: a pty ignores its baud rate. pyserial set it to %d baud%s, yet bytes move at"
                  " tens of MB/s: the throughput is what the firmware could sustain, not a UART's rate)"
                  % (ctx.args.baud, " (termios reads back B%s)" % speed if speed else ""))
    finally:
        try:
            leave(w, inside)
            w.ok("AT+TRANSINTVL=20")
        finally:
            w.quiet(0.1)
            peer.close()
