"""Section ssl: SSL links' heap, handshake times and throughput beside TCP and a minimal tls loop.
(Named ssl_links, not ssl: it must never stand in for the standard library's ssl.)"""
import os
import re
import socket
import ssl
import statistics
import tempfile
import time

from board import FINAL
from peers import TcpServer, sink
from tlspeers import Pki, TlsServer, erase, provision

from bench.baseline import BaseCopy, BaseResponder, BaselineProc
from bench.cipsend import cipsend_note, fw_cipsend
from bench.common import JobPeer, OK, Sink, Wire, base_row, mib, ms_rows, rate_note, spread, recv_flow, stats_ms, timed_out
from bench.heap import sysram
from bench.ipd import fw_ipd
from bench.sendl import fw_sendl


CONNECTED = b"CONNECT\r\n\r\nOK\r\n"


class BenchPki(Pki):
    """tests/tlspeers.py's test PKI, and what the bench needs besides: the CA as DER in a file
    (for tools/bench_baseline.py tls), a reference Python client, and its TLS peers."""

    def __init__(self, host_ip):
        super().__init__(host_ip)
        fd, self.ca_der = tempfile.mkstemp(prefix="bench-ca-", suffix=".der")
        with os.fdopen(fd, "wb") as f:
            f.write(ssl.PEM_cert_to_DER_cert(self.ca.cert_pem.bytes().decode()))
        # The board's mbedTLS speaks TLS 1.2: the Python client (a reference) does the same.
        self.reference_client = self.client_ctx()
        self.reference_client.maximum_version = ssl.TLSVersion.TLSv1_2

    def tls_server(self, host, handler):
        """A TlsServer (tests/tlspeers.py) with the host's certificate: handler(ssl socket, server)
        runs once the handshake is done. Sink, JobPeer and fw_ipd take it as their server."""
        return TlsServer(host, self.server_ctx(), handler)

    def close(self):
        try:
            os.unlink(self.ca_der)
        except OSError:
            pass


def get_pki(ctx):
    if getattr(ctx, "pki", None) is None:
        ctx.pki = BenchPki(ctx.host)
        ctx.at_exit(ctx.pki.close)
    return ctx.pki


class TlsJobPeer(JobPeer):
    """JobPeer over TLS ("recv" and "send" jobs), for the TLS copy loop."""

    def __init__(self, host, pki):
        super().__init__(host, pki.tls_server)

    def _handler(self, s, srv):
        s.settimeout(0.1)
        for job in self.next_jobs(srv):
            kind, until = job[0], job[-1]
            if kind == "recv":
                flow = job[1]
                if not recv_flow(s, lambda: flow,
                                 lambda: not flow.done.is_set() and time.monotonic() < until):
                    return
            elif kind == "send":
                job[2][0] = time.perf_counter()
                s.settimeout(max(0.1, until - time.monotonic()))
                try:
                    s.sendall(job[1])
                except OSError as e:
                    if not timed_out(e):
                        return
                finally:
                    s.settimeout(0.1)


class BaseTlsCopy(BaseCopy):
    """The bare copy loop over TLS (tools/bench_baseline.py tlscopy): the ceiling of an SSL link."""

    def __init__(self, ctx):
        self.peer = TlsJobPeer("127.0.0.1", get_pki(ctx))
        self.bp = BaselineProc("tlscopy", "127.0.0.1", self.peer.port)
        self.peer.srv.wait_conn(10)
        self.wire = Wire(self.bp.path)
        self.seconds = ctx.args.seconds


class BaseTls(BaseResponder):
    """The least AT+CIPSTART (TCP and SSL) can cost (tools/bench_baseline.py tls)."""

    def __init__(self, ctx):
        self.bp = BaselineProc("tls", get_pki(ctx).ca_der)
        self.wire = self.bp.open()


def connect_time(w, line, timeout=20.0):
    """Seconds from writing an AT+CIPSTART line to its CONNECT + OK; then AT+CIPCLOSE (untimed)."""
    t0 = time.perf_counter()
    w.write(line)
    r = w.read_until(FINAL, timeout)
    t = time.perf_counter() - t0
    if r != CONNECTED:
        raise AssertionError("%s -> %r" % (line.strip().decode(), r[-300:]))
    r = w.cmd("AT+CIPCLOSE", 10)
    if not r.endswith(OK):
        raise AssertionError("AT+CIPCLOSE -> %r" % r[-200:])
    return t


def py_handshake(pki, host, port):
    """Seconds for a CPython (OpenSSL) client to connect and handshake, checking the certificate."""
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    try:
        ss = pki.reference_client.wrap_socket(s, server_hostname=host)
        t = time.perf_counter() - t0
        ss.close()
    finally:
        s.close()
    return t


def mfg_read(w, ns, key):
    """The value of an AT+SYSMFG key, or None when it is not there."""
    w.write(b'AT+SYSMFG=1,"%s","%s"\r\n' % (ns.encode(), key.encode()))
    r = w.read_until(re.compile(rb'\+SYSMFG:"[^"]*","[^"]*",\d+,(\d+),|\r\nERROR\r\n'), 5)
    if r.endswith(b"\r\nERROR\r\n"):
        return None
    n = int(re.search(rb",(\d+),$", r).group(1))
    data = w.read_exactly(n, 5)
    w.read_until(OK, 5)
    return data


def fw_pid(ctx):
    """The pid of the virtual board's firmware process (the launcher's child), or None."""
    if ctx.vb is None:
        return None
    pid = ctx.vb.proc.pid
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return int(f.read().split()[-1])
    except (OSError, IndexError, ValueError):
        return None


def rss_anon(ctx):
    """RssAnon (bytes) of the virtual board's firmware process, or None (a real board, no /proc)."""
    pid = fw_pid(ctx)
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError, TypeError):
        pass
    return None


def cpu_s(pid):
    """CPU time (seconds, ns resolution) a process has run, from /proc/<pid>/schedstat; 0 if unknown."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def _ssl_heap(ctx, tsrv, psrv):
    """AT+SYSRAM? with CIPMUX=1: no link; 5 TCP links; no link again; one SSL link; one SSL + four
    TCP links; all closed. Every figure of this section is taken minutes apart from none of the others."""
    w = ctx.wire
    w.ok("AT+CIPMUX=1")
    try:
        w.ok("AT+CIPSSLCCONF=0,0,0,0")
        for lid in range(5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, ctx.host, psrv.port), timeout=10)
        free_t5, _ = sysram(w)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        free0, _ = sysram(w)
        rss0 = rss_anon(ctx)
        r = w.cmd('AT+CIPSTART=0,"SSL","%s",%d' % (ctx.host, tsrv.port), 20)
        if r != b"0," + CONNECTED:
            raise AssertionError("AT+CIPSTART=0,\"SSL\" -> %r" % r)
        free1, _ = sysram(w)
        rss1 = rss_anon(ctx)
        for lid in range(1, 5):
            w.ok('AT+CIPSTART=%d,"TCP","%s",%d' % (lid, ctx.host, psrv.port), timeout=10)
        free2, _ = sysram(w)
        w.ok("AT+CIPCLOSE=5", timeout=10)
        w.quiet(0.2)
        free3, _ = sysram(w)
    finally:
        w.ok("AT+CIPMUX=0")
    ssl_cost = free0 - free1
    ctx.base["ssl_link_heap"] = ssl_cost
    ctx.row("baseline", "free heap, CIPMUX=1, no link (ssl)", "%d B" % free0,
            note="(5 TCP links open a moment before: %d B, %.0f B per link)" % (free_t5, (free0 - free_t5) / 5))
    note = "(the first SSL link since boot"
    if free3 < free0:
        note += "; %d B of it stay allocated after AT+CIPCLOSE, so a link costs %s B once SSL has been used" % (
            free0 - free3, format(free3 - free1, ","))
    if rss0 is not None and rss1 is not None:
        note += "; the firmware process's RssAnon grew %+d KB: mbedTLS's own state is malloc'd outside the GC " \
                "heap on this port" % ((rss1 - rss0) // 1024)
    note += ")"
    ctx.row("ssl", "free heap, one SSL link open (CIPMUX=1)", "%d B" % free1, "no link %d B" % free0,
            "an SSL link takes %s B of GC heap" % format(ssl_cost, ","), note)
    ctx.row("ssl", "free heap, 1 SSL + 4 TCP links open", "%d B" % free2, "5 TCP links %d B" % free_t5,
            "%s B more than 5 TCP links" % format(free_t5 - free2, ","),
            "(4 TCP links beside the SSL one: %.0f B each; after AT+CIPCLOSE=5: %d B free)" % (
                (free1 - free2) / 4, free3))


def _ssl_handshakes(ctx, tsrv, psrv, seen):
    """AT+CIPSTART "TCP" and "SSL" (auth 0, auth 2) connect times, firmware and minimal loop alternating."""
    w = ctx.wire
    pki = get_pki(ctx)
    bw = ctx.baseline(BaseTls).wire
    host = ctx.host
    lines = {"TCP": b'AT+CIPSTART="TCP","%s",%d\r\n' % (host.encode(), psrv.port),
             "SSL": b'AT+CIPSTART="SSL","%s",%d\r\n' % (host.encode(), tsrv.port)}
    kinds = ("TCP", "SSL0", "SSL2")
    fw = {k: [] for k in kinds}
    blk = {k: [] for k in kinds}  # the minimal loop, blocking handshake
    nbl = {k: [] for k in kinds[1:]}  # the minimal loop, non-blocking socket (as the firmware)
    ndl = {k: [] for k in kinds[1:]}  # the minimal loop, blocking, TCP_NODELAY set before the handshake
    py = []
    cpu_fw = {k: [] for k in kinds}  # CPU seconds of the firmware process per connect (+ close)
    cpu_bl = {k: [] for k in kinds}  # of the minimal loop (blocking)
    fpid = fw_pid(ctx)
    bpid = ctx.baseline(BaseTls).bp.proc.pid
    auth = None
    # One of each first, untimed: the first SSL link imports at/sslconf.py and reads the mfg store.
    for k in kinds + kinds:
        a = k[3:] or "0"
        w.ok("AT+CIPSSLCCONF=%s,0,0" % a)
        connect_time(w, lines[k[:3]])
    for _ in range(ctx.args.handshakes):
        for k in kinds:
            line = lines[k[:3]]
            if k != "TCP":
                if auth != k[3]:
                    auth = k[3]
                    w.ok("AT+CIPSSLCCONF=%s,0,0" % auth)
                    bw.ok("AT+CIPSSLCCONF=%s,0,0" % auth)
                bw.ok("AT+BLOCKING=0")
                nbl[k].append(connect_time(bw, line))
                bw.ok("AT+BLOCKING=1")
                bw.ok("AT+NODELAY=1")
                ndl[k].append(connect_time(bw, line))
                bw.ok("AT+NODELAY=0")
            c0 = cpu_s(bpid)
            blk[k].append(connect_time(bw, line))
            cpu_bl[k].append(cpu_s(bpid) - c0)
            c0 = cpu_s(fpid)
            fw[k].append(connect_time(w, line))
            cpu_fw[k].append(cpu_s(fpid) - c0)
            if k == "SSL2":
                py.append(py_handshake(pki, host, tsrv.port))
    n = len(fw["TCP"])
    ver = sorted(set(seen))
    proto = "; ".join("%s %s" % v for v in ver[:2])
    ctx.row("baseline", "minimal CIPSTART TCP, median", "%.3f ms" % stats_ms(blk["TCP"])[0],
            note="(p99 %.3f ms; blocking connect, %d connects)" % (stats_ms(blk["TCP"])[1], n))
    for k in kinds[1:]:
        ctx.row("baseline", "minimal CIPSTART SSL auth %s, median" % k[3], "%.3f ms" % stats_ms(blk[k])[0],
                note="(p99 %.3f ms; tls.SSLContext + wrap_socket, blocking; with a non-blocking socket as the "
                     "firmware: median %.3f ms, p99 %.3f ms; blocking with TCP_NODELAY: median %.3f ms, p99 %.3f ms)"
                     % (stats_ms(blk[k])[1], stats_ms(nbl[k])[0], stats_ms(nbl[k])[1], stats_ms(ndl[k])[0],
                        stats_ms(ndl[k])[1]))
    pmed, pp99 = stats_ms(py)
    ctx.row("baseline", "CPython (OpenSSL) client handshake, same server", "%.3f ms" % pmed,
            note="(p99 %.3f ms; connect + handshake, CA checked; the server's share of every handshake is at most this)"
            % pp99)
    tmed, _ = ms_rows(ctx, "ssl", "CIPSTART TCP (connect)", fw["TCP"], blk["TCP"], "minimal loop",
                       "(%d connects; p99 of %d is the slowest)" % (n, n) if n < 51 else "(%d connects)" % n)
    for k, what in (("SSL0", "CIPSTART SSL, auth 0 (no verification)"),
                    ("SSL2", "CIPSTART SSL, auth 2 (server checked against client_ca.0)")):
        med, bmed = ms_rows(ctx, "ssl", what, fw[k], blk[k], "minimal loop",
                             "(%d handshakes; peer: Python ssl, %s; non-blocking minimal loop %.3f ms)"
                             % (n, proto, stats_ms(nbl[k])[0]))
        ctx.row("ssl", "CIPSTART SSL auth %s vs CIPSTART TCP" % k[3], "%.3f ms" % med,
                "TCP connect %.3f ms" % tmed, "+%.1f ms (%.0fx)" % (med - tmed, med / tmed))
        dmed = stats_ms(ndl[k])[0]
        ctx.row("ssl", "CIPSTART SSL auth %s vs minimal loop with TCP_NODELAY" % k[3], "%.3f ms" % med,
                "minimal loop, TCP_NODELAY %.3f ms" % dmed, "%.1fx" % (med / dmed),
                "(the difference is Nagle holding the client's last flight until the server's delayed ACK)")
        if fpid and any(cpu_fw[k]):
            cf = statistics.median(cpu_fw[k]) * 1000
            cb = statistics.median(cpu_bl[k]) * 1000
            ctx.row("ssl", "CPU per SSL auth %s connect (firmware process)" % k[3], "%.1f ms" % cf,
                    "minimal loop %.1f ms" % cb, "%.0f%% of the median connect time" % (100 * cf / med),
                    "(median over %d connects, from /proc/<pid>/schedstat; incl. AT+CIPCLOSE)" % n)


def _ssl_throughput(ctx):
    """SSL vs TCP, both directions, firmware and baselines alternating run by run."""
    w = ctx.wire
    pki = get_pki(ctx)
    n = ctx.args.bytes
    m = ctx.args.send_bytes // 2
    reps = ctx.args.reps
    copy = ctx.baseline(BaseCopy)
    tcopy = ctx.baseline(BaseTlsCopy)
    sink = Sink(ctx.host)
    tsink = Sink(ctx.host, pki.tls_server)
    w.ok("AT+CIPSSLCCONF=0,0,0")
    w.ok("AT+CIPSENDLCFG=1048576")
    try:
        r_up, t_up, f_up, s_up = [], [], [], []
        for _ in range(reps):
            r_up.append(copy.up(n))
            t_up.append(tcopy.up(n))
            f_up.append(fw_sendl(ctx, sink, n))
            s_up.append(fw_sendl(ctx, tsink, n, "SSL"))
        f_cs, s_cs = [], []
        for _ in range(reps):
            f_cs.append(fw_cipsend(ctx, sink, 2048, m))
            s_cs.append(fw_cipsend(ctx, tsink, 2048, m, "SSL"))
        r_dn, t_dn, f_dn, s_dn = [], [], [], []
        for _ in range(reps):
            r_dn.append(copy.down(n))
            t_dn.append(tcopy.down(n))
            f_dn.append(fw_ipd(ctx, n))
            s_dn.append(fw_ipd(ctx, n, "SSL", server=pki.tls_server))
    finally:
        sink.close()
        tsink.close()
        w.ok("AT+CIPSENDLCFG=1024,2920")
    up = base_row(ctx, "raw copy pty->TCP (ssl)", r_up, n)
    tup = base_row(ctx, "TLS copy loop pty->TLS", t_up, n)
    dn = base_row(ctx, "raw copy TCP->pty (ssl)", r_dn, n)
    tdn = base_row(ctx, "TLS copy loop TLS->pty", t_dn, n)
    fu = statistics.median(r[0] for r in f_up)
    su = statistics.median(r[0] for r in s_up)
    ctx.row("ssl", "SSL CIPSENDL board->peer", "%.2f MB/s" % su, "TCP CIPSENDL %.2f MB/s" % fu,
            "%.0f%%" % (100 * su / fu), rate_note(s_up, mib(n))[:-1] + "; TCP: %s)" % spread(
                [r[0] for r in f_up], "%.2f"))
    ctx.row("ssl", "SSL CIPSENDL vs the copy loops", "%.2f MB/s" % su,
            "TLS copy %.1f MB/s, raw copy %.1f MB/s" % (tup, up), "%.1f%% / %.1f%%" % (100 * su / tup, 100 * su / up))
    fc = statistics.median(r[0] for r in f_cs)
    sc = statistics.median(r[0] for r in s_cs)
    ctx.row("ssl", "SSL CIPSEND 2048B board->peer", "%.2f MB/s" % sc, "TCP CIPSEND 2048B %.2f MB/s" % fc,
            "%.0f%%" % (100 * sc / fc), cipsend_note(s_cs, m))
    fd = statistics.median(r[0] for r in f_dn)
    # A run that stalls short of the end (a firmware bug, see BENCHMARKS.md) counts to its last byte;
    # the stall is reported beside the rate.
    sd = statistics.median(r[5] for r in s_dn)
    frames = s_dn[-1][2]
    short = [n - r[4] for r in s_dn if not r[1]]
    if short:
        note = "(%s; %d of %d runs STALLED short of the end: %s B never arrived within the run's %.0f s limit; " \
               "their rate is to the last byte that did)" % (spread([r[5] for r in s_dn], "%.2f"), len(short),
                                                              len(s_dn), "/".join(format(x, ",") for x in short),
                                                              ctx.run_s)
    else:
        note = rate_note(s_dn, mib(n))
    note = note[:-1] + "; %.0f B/frame; TCP: %s)" % (n / max(1, frames), spread([r[0] for r in f_dn], "%.2f"))
    if not all(r[1] for r in f_dn):
        note += " TCP: time limit hit in some runs"
    junk = [j for r in s_dn + f_dn for j in r[3]]
    if junk:
        note += " UNEXPECTED text between frames: %r" % junk[:3]
    ctx.row("ssl", "SSL +IPD peer->board", "%.2f MB/s" % sd, "TCP +IPD %.2f MB/s" % fd, "%.0f%%" % (100 * sd / fd),
            note)
    ctx.row("ssl", "SSL +IPD vs the copy loops", "%.2f MB/s" % sd,
            "TLS copy %.1f MB/s, raw copy %.1f MB/s" % (tdn, dn), "%.1f%% / %.1f%%" % (100 * sd / tdn, 100 * sd / dn))


def bench_ssl(ctx):
    """SSL links: heap of one link, CIPSTART "SSL" (auth 0 and 2) beside "TCP", throughput both ways beside TCP."""
    w = ctx.wire
    pki = get_pki(ctx)
    seen = []

    def tls_hold(s, srv):
        seen.append((s.version(), s.cipher()[0]))
        sink(s, srv)

    tsrv = pki.tls_server(ctx.host, tls_hold)
    psrv = TcpServer(ctx.host, sink)
    w.ok("AT+CIPMUX=0")
    saved = None
    if ctx.args.port:  # a real board: put its CA and SSL settings back afterwards
        m = re.search(rb"\+CIPSSLCCONF:\d+,(\d+),(\d+),(\d+)", w.ok("AT+CIPSSLCCONF?"))
        saved = (mfg_read(w, "client_ca", "client_ca.0"), m.groups() if m else (b"0", b"0", b"0"))
    try:
        provision(w, "client_ca", "client_ca.0", pki.ca.cert_pem.bytes())
        _ssl_heap(ctx, tsrv, psrv)
        _ssl_handshakes(ctx, tsrv, psrv, seen)
        _ssl_throughput(ctx)
    finally:
        tsrv.close()
        psrv.close()
        w.quiet(0.1)
        if saved is not None:
            ca, conf = saved
            if ca is None:
                erase(w, "client_ca", "client_ca.0")
            else:
                provision(w, "client_ca", "client_ca.0", ca)
            w.ok("AT+CIPSSLCCONF=%s" % b",".join(conf).decode())
        else:
            w.ok("AT+CIPSSLCCONF=0,0,0")
