# The ceiling for tools/bench: the least a MicroPython program can do with
# the virtual board's UART (a pty handed over as non-blocking stdin/stdout, as
# tools/vboard.py does) and a TCP socket. A bench tool, not firmware.
#
#   micropython -X heapsize=110k tools/bench_baseline.py at
#       answers every line with "\r\nOK\r\n" (the AT -> OK round trip)
#   micropython -X heapsize=110k tools/bench_baseline.py copy HOST PORT
#       connects to HOST:PORT and copies pty -> socket and socket -> pty
#       (select.poll, readinto a 16 KiB buffer, write it out); tools/bench
#       also times single bytes through it (the passthrough latency ceiling).
#       HOST may be an IPv6 address (::1)
#   micropython -X heapsize=110k tools/bench_baseline.py cipsend HOST PORT
#       the least AT+CIPSEND can cost: connects to HOST:PORT, answers
#       "AT+CIPSEND=<n>" with OK and ">", streams the next n bytes into the
#       socket, then writes "Recv <n> bytes" and "SEND OK" in one piece; any other
#       line gets OK ("AT+CIPSEND=<id>,<n>" works too: the id is ignored)
#   micropython -X heapsize=110k tools/bench_baseline.py recvdata HOST PORT
#       the least AT+CIPRECVDATA can cost: connects to HOST:PORT, answers
#       "AT+CIPRECVDATA=[<id>,]<len>" with "+CIPRECVDATA:<k>,<data>\r\n\r\nOK\r\n"
#       in one write, reading up to <len> bytes from the socket straight after
#       the header (waiting up to 1 s for some); any other line gets OK
#   micropython -X heapsize=110k tools/bench_baseline.py tls [CAFILE]
#       the least AT+CIPSTART can cost, TCP and SSL: 'AT+CIPSTART="<type>","<host>",<port>'
#       connects a blocking socket; for "SSL" it builds a tls.SSLContext (auth 0:
#       CERT_NONE; after AT+CIPSSLCCONF=2: CERT_REQUIRED with the DER CA in CAFILE,
#       checked against <host>) and runs the handshake in wrap_socket; then
#       "CONNECT\r\n\r\nOK\r\n" in one write. AT+CIPCLOSE closes ("CLOSED" + OK).
#       AT+BLOCKING=0 hands the handshake a non-blocking socket, as the firmware
#       does (MicroPython's wrap_socket then waits 1 ms per WANT_READ); =1 (the
#       default) a blocking one. Any other line gets OK
#   micropython -X heapsize=110k tools/bench_baseline.py tlscopy HOST PORT
#       the copy loop over TLS: connects to HOST:PORT, handshakes (CERT_NONE), then
#       copies pty -> TLS and TLS -> pty like `copy` (reading the TLS socket until
#       it would block: mbedTLS may hold decrypted bytes no poll can see)
#   micropython -X heapsize=110k tools/bench_baseline.py dns SERVER
#       the least AT+CIPDOMAIN="<name>" can cost: one blocking UDP A query to
#       SERVER:53 per line (a fresh socket, as the firmware's resolver does),
#       the first address as '+CIPDOMAIN:"<ip>"' + OK in one write; an IPv4
#       literal is answered at once; any other line gets OK
#
# It exits when the host closes the socket (copy), when a write fails, or after
# 120 s with no input; tools/bench terminates it when done.
import os
import select
import socket
import sys
import time

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
IDLE_MS = 120000
BUF = 16384
EAGAIN = 11

uin = sys.stdin.buffer
uout = sys.stdout.buffer


def write_all(stream, mv, poll_out):
    """Write all of mv to a non-blocking stream, waiting for POLLOUT when it is full."""
    while mv:
        try:
            n = stream.write(mv)
        except OSError as e:  # EAGAIN on some builds; anything else ends the program
            if e.args[0] != EAGAIN:
                raise
            n = None
        if n:
            mv = mv[n:]
        else:
            poll_out.poll(1000)


def at_loop():
    buf = bytearray(256)
    ok = b"\r\nOK\r\n"
    p = select.poll()
    p.register(uin, POLLIN)
    pout = select.poll()
    pout.register(uout, POLLOUT)
    last = time.ticks_ms()
    while True:
        if not p.poll(1000):
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        try:
            n = uin.readinto(buf)
        except OSError:
            n = None
        if not n:
            continue
        last = time.ticks_ms()
        # One OK per line ending seen: a whole "AT\r\n" normally arrives at once.
        k = 0
        i = 0
        while True:
            i = buf.find(b"\n", i, n)
            if i < 0:
                break
            k += 1
            i += 1
        while k:
            write_all(uout, ok, pout)
            k -= 1


def copy_loop(host, port):
    s = _connect(host, port)
    buf = bytearray(BUF)
    mv = memoryview(buf)
    p = select.poll()
    p.register(uin, POLLIN)
    p.register(s, POLLIN)
    sout = select.poll()
    sout.register(s, POLLOUT)
    uoutp = select.poll()
    uoutp.register(uout, POLLOUT)
    last = time.ticks_ms()
    while True:
        ev = p.poll(1000)
        if not ev:
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        last = time.ticks_ms()
        for obj, e in ev:
            if obj is s:
                try:
                    n = s.readinto(buf)
                except OSError:
                    n = None
                if n == 0:
                    s.close()
                    return
                if n:
                    write_all(uout, mv[:n], uoutp)
            else:
                try:
                    n = uin.readinto(buf)
                except OSError:
                    n = None
                if n:
                    write_all(s, mv[:n], sout)


def _connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect(socket.getaddrinfo(host, port, fam)[0][-1])
    s.setblocking(False)
    return s


def cipsend_loop(host, port):
    s = _connect(host, port)
    buf = bytearray(BUF)
    mv = memoryview(buf)
    line = bytearray()
    p = select.poll()
    p.register(uin, POLLIN)
    sout = select.poll()
    sout.register(s, POLLOUT)
    uoutp = select.poll()
    uoutp.register(uout, POLLOUT)
    need = 0
    total = 0
    last = time.ticks_ms()
    while True:
        if not p.poll(1000):
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        try:
            n = uin.readinto(buf)
        except OSError:
            n = None
        if not n:
            continue
        last = time.ticks_ms()
        pos = 0
        while pos < n:
            if need:
                take = min(need, n - pos)
                write_all(s, mv[pos:pos + take], sout)
                need -= take
                pos += take
                if not need:
                    write_all(uout, b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % total, uoutp)
                continue
            i = buf.find(b"\n", pos, n)
            stop = n if i < 0 else i + 1
            line.extend(mv[pos:stop])
            pos = stop
            if i < 0:
                continue
            if line.startswith(b"AT+CIPSEND="):
                need = total = int(line[line.rfind(b",") + 1:] if b"," in line else line[11:])
                write_all(uout, b"\r\nOK\r\n\r\n>", uoutp)
            else:
                write_all(uout, b"\r\nOK\r\n", uoutp)
            line = bytearray()


def recvdata_loop(host, port):
    s = _connect(host, port)
    buf = bytearray(256)
    mv = memoryview(buf)
    data = bytearray(BUF + 64)
    dmv = memoryview(data)
    head = 32  # room for the header right before the data: one write per answer
    line = bytearray()
    p = select.poll()
    p.register(uin, POLLIN)
    sin = select.poll()
    sin.register(s, POLLIN)
    uoutp = select.poll()
    uoutp.register(uout, POLLOUT)
    last = time.ticks_ms()
    while True:
        if not p.poll(1000):
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        try:
            n = uin.readinto(buf)
        except OSError:
            n = None
        if not n:
            continue
        last = time.ticks_ms()
        pos = 0
        while pos < n:
            i = buf.find(b"\n", pos, n)
            stop = n if i < 0 else i + 1
            line.extend(mv[pos:stop])
            pos = stop
            if i < 0:
                continue
            if line.startswith(b"AT+CIPRECVDATA="):
                want = min(BUF, int(line[line.rfind(b",") + 1:] if b"," in line else line[15:]))
                k = None
                for _ in range(2):
                    try:
                        k = s.readinto(dmv[head:head + want])
                    except OSError:
                        k = None
                    if k is not None:
                        break
                    sin.poll(1000)
                if k:
                    hdr = b"+CIPRECVDATA:%d," % k
                    start = head - len(hdr)
                    data[start:head] = hdr
                    data[head + k:head + k + 8] = b"\r\n\r\nOK\r\n"
                    write_all(uout, dmv[start:head + k + 8], uoutp)
                else:
                    write_all(uout, b"\r\nERROR\r\n", uoutp)
            else:
                write_all(uout, b"\r\nOK\r\n", uoutp)
            line = bytearray()


def _lines(handle):
    """Read the pty line by line; handle(line) returns the bytes to answer."""
    buf = bytearray(512)
    mv = memoryview(buf)
    line = bytearray()
    p = select.poll()
    p.register(uin, POLLIN)
    uoutp = select.poll()
    uoutp.register(uout, POLLOUT)
    last = time.ticks_ms()
    while True:
        if not p.poll(1000):
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        try:
            n = uin.readinto(buf)
        except OSError:
            n = None
        if not n:
            continue
        last = time.ticks_ms()
        pos = 0
        while pos < n:
            i = buf.find(b"\n", pos, n)
            stop = n if i < 0 else i + 1
            line.extend(mv[pos:stop])
            pos = stop
            if i < 0:
                continue
            write_all(uout, handle(bytes(line)), uoutp)
            line = bytearray()


def tls_loop(cafile):
    import tls
    ca = None
    if cafile:
        with open(cafile, "rb") as f:
            ca = f.read()
    st = {"auth": 0, "blocking": 1, "nodelay": 0, "s": None, "ss": None}

    def close():
        for k in ("ss", "s"):
            if st[k] is not None:
                try:
                    st[k].close()
                except OSError:
                    pass
                st[k] = None

    def handle(line):
        if line.startswith(b"AT+CIPSTART="):
            # AT+CIPSTART="<type>","<host>",<port>
            f = line[12:].strip().split(b",")
            typ, host, port = f[0].strip(b'"'), f[1].strip(b'"').decode(), int(f[2])
            close()
            try:
                s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
                st["s"] = s
                if st["nodelay"]:
                    s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
                s.connect(socket.getaddrinfo(host, port)[0][-1])
                if typ.startswith(b"SSL"):
                    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
                    if st["auth"] == 2:
                        ctx.load_verify_locations(ca)
                        ctx.verify_mode = tls.CERT_REQUIRED
                        name = host
                    else:
                        ctx.verify_mode = tls.CERT_NONE
                        name = None
                    if not st["blocking"]:
                        s.setblocking(False)
                    st["ss"] = ctx.wrap_socket(s, server_hostname=name)
            except (OSError, ValueError):
                close()
                return b"\r\nERROR\r\n"
            return b"CONNECT\r\n\r\nOK\r\n"
        if line.startswith(b"AT+CIPCLOSE"):
            had = st["s"] is not None
            close()
            return b"CLOSED\r\n\r\nOK\r\n" if had else b"\r\nERROR\r\n"
        if line.startswith(b"AT+CIPSSLCCONF="):
            st["auth"] = int(line[15:].split(b",")[0])
        elif line.startswith(b"AT+BLOCKING="):
            st["blocking"] = int(line[12:])
        elif line.startswith(b"AT+NODELAY="):
            st["nodelay"] = int(line[11:])
        return b"\r\nOK\r\n"

    _lines(handle)


def tlscopy_loop(host, port):
    import tls
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(socket.getaddrinfo(host, port)[0][-1])
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE
    ss = ctx.wrap_socket(s)
    s.setblocking(False)
    buf = bytearray(BUF)
    mv = memoryview(buf)
    p = select.poll()
    p.register(uin, POLLIN)
    p.register(s, POLLIN)
    sout = select.poll()
    sout.register(s, POLLOUT)
    uoutp = select.poll()
    uoutp.register(uout, POLLOUT)
    last = time.ticks_ms()
    while True:
        ev = p.poll(1000)
        if not ev:
            if time.ticks_diff(time.ticks_ms(), last) > IDLE_MS:
                return
            continue
        last = time.ticks_ms()
        for obj, e in ev:
            if obj is s:
                while True:  # until it would block: mbedTLS may hold decrypted bytes
                    try:
                        n = ss.readinto(buf)
                    except OSError:
                        n = None
                    if n == 0:
                        ss.close()
                        return
                    if not n:
                        break
                    write_all(uout, mv[:n], uoutp)
            else:
                try:
                    n = uin.readinto(buf)
                except OSError:
                    n = None
                if n:
                    write_all(ss, mv[:n], sout)


def dns_loop(server):
    addr = socket.getaddrinfo(server, 53)[0][-1]

    def handle(line):
        if not line.startswith(b"AT+CIPDOMAIN="):
            return b"\r\nOK\r\n"
        name = line[13:].strip().split(b",")[0].strip(b'"')
        if name.replace(b".", b"").isdigit():
            return b'+CIPDOMAIN:"%s"\r\n\r\nOK\r\n' % name
        qid = os.urandom(2)
        q = bytearray(qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        for label in name.split(b"."):
            q.append(len(label))
            q.extend(label)
        q.extend(b"\x00\x00\x01\x00\x01")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(q, addr)
            m = s.recv(1500)
        finally:
            s.close()
        # Skip the question (the query's bytes echoed), take the first A record.
        i = len(q)
        if m[:2] != qid or (m[3] & 15) or not (m[6] or m[7]):
            return b"\r\nERROR\r\n"
        while i < len(m):
            if m[i] & 0xC0 == 0xC0:
                i += 2
            else:
                while m[i]:
                    i += m[i] + 1
                i += 1
            typ = (m[i] << 8) | m[i + 1]
            rdlen = (m[i + 8] << 8) | m[i + 9]
            rd = m[i + 10:i + 10 + rdlen]
            i += 10 + rdlen
            if typ == 1 and rdlen == 4:
                return b'+CIPDOMAIN:"%d.%d.%d.%d"\r\n\r\nOK\r\n' % (rd[0], rd[1], rd[2], rd[3])
        return b"\r\nERROR\r\n"

    _lines(handle)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "at"
    if mode == "copy":
        copy_loop(sys.argv[2], int(sys.argv[3]))
    elif mode == "tls":
        tls_loop(sys.argv[2] if len(sys.argv) > 2 else None)
    elif mode == "tlscopy":
        tlscopy_loop(sys.argv[2], int(sys.argv[3]))
    elif mode == "dns":
        dns_loop(sys.argv[2])
    elif mode == "cipsend":
        cipsend_loop(sys.argv[2], int(sys.argv[3]))
    elif mode == "recvdata":
        recvdata_loop(sys.argv[2], int(sys.argv[3]))
    else:
        at_loop()


main()
