# The ceiling for tools/bench.py: the least a MicroPython program can do with
# the virtual board's UART (a pty handed over as non-blocking stdin/stdout, as
# tools/vboard.py does) and a TCP socket. A bench tool, not firmware.
#
#   micropython -X heapsize=110k tools/bench_baseline.py at
#       answers every line with "\r\nOK\r\n" (the AT -> OK round trip)
#   micropython -X heapsize=110k tools/bench_baseline.py copy HOST PORT
#       connects to HOST:PORT and copies pty -> socket and socket -> pty
#       (select.poll, readinto a 16 KiB buffer, write it out)
#
# It exits when the host closes the socket (copy) or after 120 s with no input.
import select
import socket
import sys
import time

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
IDLE_MS = 120000
BUF = 16384

uin = sys.stdin.buffer
uout = sys.stdout.buffer


def write_all(stream, mv, poll_out):
    """Write all of mv to a non-blocking stream, waiting for POLLOUT when it is full."""
    while mv:
        try:
            n = stream.write(mv)
        except OSError:  # EAGAIN on some builds
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
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(socket.getaddrinfo(host, port)[0][-1])
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


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "at"
    if mode == "copy":
        copy_loop(sys.argv[2], int(sys.argv[3]))
    else:
        at_loop()


main()
