"""Section dns: AT+CIPDOMAIN against a local DNS server beside an IP literal, a host-side query
and a minimal loop."""
import re
import socket
import time

from dnslib import DNSRecord

from netpeers import DnsServer

from bench.baseline import BaseResponder, BaselineProc
from bench.common import ms_rows, round_trips, stats_ms


DNS_NAME = "bench.test"
DNS_BLOCK = 20  # lookups per block; blocks of each kind alternate


def py_lookup(server, name, want):
    """Seconds for a host-side lookup as the firmware makes it: a fresh UDP socket, a dnslib
    query, the answer parsed with dnslib."""
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2)
        q = DNSRecord.question(name)
        s.sendto(q.pack(), (server, 53))
        a = DNSRecord.parse(s.recv(1500))
        got = str(a.rr[0].rdata) if a.rr else None
    finally:
        s.close()
    t = time.perf_counter() - t0
    if a.header.id != q.header.id or got != want:
        raise AssertionError("host lookup of %s: %r" % (name, got))
    return t


class BaseDns(BaseResponder):
    """The least AT+CIPDOMAIN can cost (tools/bench_baseline.py dns SERVER)."""

    def __init__(self, server):
        self.bp = BaselineProc("dns", server)
        self.wire = self.bp.open()


def bench_dns(ctx):
    """AT+CIPDOMAIN against a local dnslib server (AT+CIPDNS=1); beside an IP literal, a host-side query, a minimal loop."""
    w = ctx.wire
    want = ctx.host
    try:
        srv = DnsServer({DNS_NAME: {"A": [want]}}, host=ctx.host if ctx.args.port else None)
    except OSError as e:
        print("  skipped: %s (binding port 53 needs root)" % e)
        return
    saved = w.ok("AT+CIPDNS?") if ctx.args.port else None
    base = None
    try:
        base = BaseDns(srv.host)
        bw = base.wire
        w.ok('AT+CIPDNS=1,"%s"' % srv.host)
        name_line = b'AT+CIPDOMAIN="%s"\r\n' % DNS_NAME.encode()
        lit = want  # the same address as an IP literal: no DNS traffic
        lit_line = b'AT+CIPDOMAIN="%s"\r\n' % lit.encode()
        for wire, tag in ((w, "firmware"), (bw, "minimal loop")):
            for line, ip in ((name_line, want), (lit_line, lit)):
                r = wire.cmd(line.strip().decode())
                if r != b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % ip.encode():
                    raise AssertionError("%s: %s -> %r" % (tag, line.strip().decode(), r))
        py_lookup(srv.host, DNS_NAME, want)
        fw_name, fw_lit, host, mini, mini_lit = [], [], [], [], []
        queries = 0
        for _ in range((ctx.args.lookups + DNS_BLOCK - 1) // DNS_BLOCK):
            c0 = len(srv.queries)
            fw_name += round_trips(w, DNS_BLOCK, name_line)
            queries += len(srv.queries) - c0
            c0 = len(srv.queries)
            fw_lit += round_trips(w, DNS_BLOCK, lit_line)
            if len(srv.queries) != c0:
                raise AssertionError("an IP literal in AT+CIPDOMAIN reached the DNS server")
            host += [py_lookup(srv.host, DNS_NAME, want) for _ in range(DNS_BLOCK)]
            mini += round_trips(bw, DNS_BLOCK, name_line)
            mini_lit += round_trips(bw, DNS_BLOCK, lit_line)
        k = len(fw_name)
        hmed, hp99 = stats_ms(host)
        ctx.row("baseline", "host Python DNS query, median", "%.3f ms" % hmed,
                note="(p99 %.3f ms; fresh UDP socket + dnslib packet, %d queries to the same server)" % (hp99, k))
        ctx.row("baseline", "minimal CIPDOMAIN loop, median", "%.3f ms" % stats_ms(mini)[0],
                note="(p99 %.3f ms; MicroPython, blocking UDP query; IP literal: median %.3f ms)" % (
                    stats_ms(mini)[1], stats_ms(mini_lit)[0]))
        med, _ = ms_rows(ctx, "dns", 'CIPDOMAIN "%s" (one A query to 127.0.0.x:53)' % DNS_NAME, fw_name, host,
                          "host Python query", "(%d lookups, %.2f queries each at the server)" % (k, queries / k))
        ctx.row("dns", "CIPDOMAIN name vs minimal loop", "%.3f ms" % med,
                "minimal CIPDOMAIN loop %.3f ms" % stats_ms(mini)[0], "%.1fx" % (med / stats_ms(mini)[0]))
        lmed, _ = ms_rows(ctx, "dns", 'CIPDOMAIN "%s" (IP literal, no DNS traffic)' % lit, fw_lit, mini_lit,
                           "minimal loop", "(%d lookups)" % len(fw_lit))
        ctx.row("dns", "CIPDOMAIN name minus IP literal (the resolver's share)", "%.3f ms" % (med - lmed),
                "host Python query %.3f ms" % hmed, "%.1fx" % ((med - lmed) / hmed))
    finally:
        if base is not None:
            base.close()
        srv.close()
        if saved is not None:
            m = re.search(rb"\+CIPDNS:(\d)((?:,\"[^\"]*\")*)", saved)
            if m and m.group(1) == b"1":
                w.ok("AT+CIPDNS=1%s" % m.group(2).decode())
            else:
                w.ok("AT+CIPDNS=0")
        else:
            w.ok("AT+CIPDNS=0")
