# What every socket user shares: errno values as this runtime numbers them
# (newlib's on the ESP32, Linux's on the unix port: never write them as literals),
# a non-blocking connect and its wait, and sends and receives that say "would
# block" the same way on both ports and every MicroPython release (a TLS socket
# has send()/recv() only from v1.25; write()/readinto() everywhere).
import errno

EAGAIN = errno.EAGAIN
EINPROGRESS = errno.EINPROGRESS
ETIMEDOUT = errno.ETIMEDOUT
ECONNREFUSED = errno.ECONNREFUSED
ECONNRESET = errno.ECONNRESET
ENOTCONN = errno.ENOTCONN
ENOMEM = errno.ENOMEM

_FAIL = 0x18  # POLLERR | POLLHUP, the same numbers on every port (modselect.c)


def errno_of(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


def start_connect(s, addr):
    """connect() on a non-blocking socket: EINPROGRESS is the normal answer."""
    try:
        s.connect(addr)
    except OSError as e:
        if errno_of(e) != EINPROGRESS:
            raise


def connected(eng, s, ms):
    """Generator: wait until the connect started on s is done; OSError if it failed
    (ETIMEDOUT after ms). lwIP marks a failed connect writable, so the error is in
    POLLHUP (the loop always asks for it) and in what recv() then raises."""
    ev = yield eng.writable(s, ms)
    if ev == 0:
        raise OSError(ETIMEDOUT)
    if ev & _FAIL:
        err = ECONNREFUSED
        try:
            s.recv(1)
        except OSError as e:
            err = errno_of(e) or err
        raise OSError(err)


def write(ss, mv):
    """Hand mv to a socket or TLS wrapper; the count taken, 0 when it would block."""
    try:
        return ss.write(mv) or 0
    except OSError as e:
        if errno_of(e) != EAGAIN:
            raise
        return 0


def read_into(ss, mv):
    """Fill mv from a socket or TLS wrapper: the count, 0 at the end of the
    stream, None when nothing is there yet."""
    try:
        return ss.readinto(mv)
    except OSError as e:
        if errno_of(e) != EAGAIN:
            raise
        return None


# The buffer of DNS and mDNS answers (parsed before their task yields), made on
# the first one and kept: a fresh block per packet may not exist in a heap that
# command groups loaded on first use have cut up (an mDNS query failed so). An
# answer longer than one Ethernet frame's payload is cut, as a short read cuts it.
_ANSWER = 1472
_answers: "list[memoryview]" = []


def datagram(s):
    """The next datagram on s, as a memoryview of the answer buffer (valid only
    until the next read: parse it before yielding), or None if none is there."""
    if not _answers:
        _answers.append(memoryview(bytearray(_ANSWER)))
    mv = _answers[0]
    n = read_into(s, mv)
    return None if n is None else mv[:n]
