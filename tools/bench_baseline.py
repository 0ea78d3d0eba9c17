# The ceiling for tools/bench.py: the least a MicroPython program can do with
# the virtual board's UART (a pty handed over as non-blocking stdin/stdout, as
# tools/vboard.py does) and a TCP socket. A bench tool, not firmware.
#
#   micropython -X heapsize=110k tools/bench_baseline.py at
#       answers every line with "\r\nOK\r\n" (the AT -> OK round trip)
#   micropython -X heapsize=110k tools/bench_baseline.py copy HOST PORT
#       connects to HOST:PORT and copies pty -> socket and socket -> pty
#       (select.poll, readinto a 16 KiB buffer, write it out); tools/bench.py
#       also times single bytes through it (the passthrough latency ceiling)
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
#
# It exits when the host closes the socket (copy), when a write fails, or after
# 120 s with no input; tools/bench.py terminates it when done.
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
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(socket.getaddrinfo(host, port)[0][-1])
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


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "at"
    if mode == "copy":
        copy_loop(sys.argv[2], int(sys.argv[3]))
    elif mode == "cipsend":
        cipsend_loop(sys.argv[2], int(sys.argv[3]))
    elif mode == "recvdata":
        recvdata_loop(sys.argv[2], int(sys.argv[3]))
    else:
        at_loop()


main()
