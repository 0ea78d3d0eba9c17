# The ESP32 port's tls module at a release ($TWIN_MPY), over the unix port's
# (extmod/modtls_mbedtls.c, the same C on both ports). What differs on a
# released ESP32 image, and is reproduced here:
# - SSLSocket methods: v1.24.1 has read, readinto, readline, write, setblocking,
#   close, ioctl, getpeercert, cipher (ssl_socket_locals_dict_table); recv,
#   recv_into, send and sendall came with DTLS in v1.25.0.
# - No TLS-PSK: psk_identity/psk_key/server_psk_keys exist on MicroPython's master
#   after v1.28.0 only (ssl_context_attr knows verify_mode, verify_callback and
#   ecdsa_sign_callback up to v1.28.0): setting them raises AttributeError.
# - Certificate dates are checked against the board's clock
#   (CONFIG_MBEDTLS_HAVE_TIME_DATE=y, ports/esp32/boards/sdkconfig.base v1.27.0:62;
#   platform_mbedtls_time in ports/esp32/main.c v1.24.1:90-96 reads the system
#   clock, which starts at 2000-01-01): mbedTLS on this machine reads the host's
#   clock, so the twin looks at each certificate of the chain as mbedTLS verifies
#   it (SSLContext.verify_callback, ssl_sock_cert_verify at v1.24.1:223-231),
#   checks its validity against its own RTC, stops the handshake there, and fails
#   it the way ssl_socket_make_new does (a ValueError with
#   mbedtls_x509_crt_verify_info's text, the cleanup path at v1.27.0).
import os
import tls as _tls  # the unix port's (imported before run.py installs this module as "tls")
import time as twin_time
import socket as twin_socket

_RELEASE = tuple(int(x) for x in (os.getenv("TWIN_MPY") or "1.27").split(".")[:2])

PROTOCOL_TLS_CLIENT = _tls.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _tls.PROTOCOL_TLS_SERVER
PROTOCOL_DTLS_CLIENT = _tls.PROTOCOL_DTLS_CLIENT
PROTOCOL_DTLS_SERVER = _tls.PROTOCOL_DTLS_SERVER
CERT_NONE = _tls.CERT_NONE
CERT_OPTIONAL = _tls.CERT_OPTIONAL
CERT_REQUIRED = _tls.CERT_REQUIRED
MBEDTLS_VERSION = getattr(_tls, "MBEDTLS_VERSION", "")

_FUTURE = "The certificate validity starts in the future"
_EXPIRED = "The certificate validity has expired"
_VERIFY_FAILED = -0x2700  # MBEDTLS_ERR_X509_CERT_VERIFY_FAILED


# -- X.509 validity, just enough DER ------------------------------------------------------------
def _tlv(b, i):
    tag = b[i]
    n = b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    return tag, i, i + n


def _time(tag, s):
    s = s.decode()
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        y = int(s[0:2])
        y += 2000 if y < 50 else 1900
        s = s[2:]
    else:  # GeneralizedTime YYYYMMDDHHMMSSZ
        y = int(s[0:4])
        s = s[4:]
    return twin_time.mktime((y, int(s[0:2]), int(s[2:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), 0, 0))


def validity(der):
    """(not_before, not_after) of a DER certificate, in the twin's seconds (2000)."""
    b = bytes(der)
    _, i, _ = _tlv(b, 0)  # Certificate
    _, i, _ = _tlv(b, i)  # tbsCertificate
    if b[i] == 0xA0:  # [0] version
        i = _tlv(b, i)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _tlv(b, i)[2]
    _, i, _ = _tlv(b, i)  # validity
    t1, s1, e1 = _tlv(b, i)
    t2, s2, e2 = _tlv(b, e1)
    return _time(t1, b[s1:e1]), _time(t2, b[s2:e2])


def _why(der):
    now = twin_time.time()
    try:
        nb, na = validity(der)
    except (IndexError, ValueError):
        return None
    if now < nb:
        return _FUTURE
    if now > na:
        return _EXPIRED
    return None


# -- SSLSocket ---------------------------------------------------------------------------------------
def _err(e):
    return twin_socket._oserror(e) if isinstance(e, OSError) else e


class SSLSocket:
    def __init__(self, real):
        self._r = real

    def read(self, n=-1):
        try:
            return self._r.read(n) if n >= 0 else self._r.read()
        except OSError as e:
            raise _err(e)

    def readinto(self, buf, n=None):
        try:
            return self._r.readinto(buf) if n is None else self._r.readinto(buf, n)
        except OSError as e:
            raise _err(e)

    def readline(self):
        return self._r.readline()

    def write(self, data):
        try:
            return self._r.write(data)
        except OSError as e:
            raise _err(e)

    def setblocking(self, flag):
        self._r.setblocking(flag)

    def close(self):
        try:
            self._r.close()
        except OSError:
            pass

    def getpeercert(self, binary_form=False):
        return self._r.getpeercert(binary_form)

    def cipher(self):
        return self._r.cipher()

    def _poll(self, ev):
        # socket_ioctl: mbedTLS's buffered bytes count as readable, then the socket
        return 1 if ev & 1 and self._pending() else 0

    def _pending(self):
        return False


class SSLSocketDTLS(SSLSocket):
    """v1.25.0 and later: recv/recv_into/send/sendall (read1/readinto/write1/write)."""

    def recv(self, n):
        try:
            return self._r.recv(n)
        except OSError as e:
            raise _err(e)

    def recv_into(self, buf, n=None):
        return self.readinto(buf, n)

    def send(self, data):
        try:
            return self._r.send(data)
        except OSError as e:
            raise _err(e)

    def sendall(self, data):
        return self.write(data)


_SSLSocket = SSLSocketDTLS if _RELEASE >= (1, 25) else SSLSocket


# -- SSLContext ---------------------------------------------------------------------------------------
class SSLContext:
    def __init__(self, protocol):
        c = _tls.SSLContext(protocol)
        object.__setattr__(self, "_c", c)
        object.__setattr__(self, "_verify", CERT_NONE if protocol == PROTOCOL_TLS_SERVER else CERT_REQUIRED)
        object.__setattr__(self, "_user_cb", None)
        object.__setattr__(self, "_why", [])
        c.verify_callback = self._check

    def _check(self, cert, depth):
        """Each certificate of the chain, as mbedTLS verifies it: its dates
        against the board's clock (then whatever the firmware's callback says)."""
        why = _why(cert)
        if why:
            self._why.append(why)
            return _VERIFY_FAILED
        cb = self._user_cb
        return cb(cert, depth) if cb is not None else 0

    def __setattr__(self, name, value):
        if name == "verify_mode":
            self._c.verify_mode = value
            object.__setattr__(self, "_verify", value)
        elif name == "verify_callback":
            object.__setattr__(self, "_user_cb", value)
        else:
            raise AttributeError("'SSLContext' object has no attribute '%s'" % name)

    def __getattr__(self, name):
        if name == "verify_mode":
            return self._verify
        if name == "verify_callback":
            return self._user_cb
        raise AttributeError("'SSLContext' object has no attribute '%s'" % name)

    def get_ciphers(self):
        return self._c.get_ciphers()

    def set_ciphers(self, ciphers):
        self._c.set_ciphers(ciphers)

    def load_cert_chain(self, cert, key):
        self._c.load_cert_chain(cert, key)

    def load_verify_locations(self, cafile=None, cadata=None):
        self._c.load_verify_locations(cadata if cadata is not None else cafile)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        real = sock._s if isinstance(sock, twin_socket.Socket) else sock
        del self._why[:]
        try:
            ss = self._c.wrap_socket(real, server_side=server_side,
                                     do_handshake_on_connect=do_handshake_on_connect,
                                     server_hostname=server_hostname)
        except OSError as e:
            if self._why:
                raise ValueError("\n%s\n" % self._why[0])
            raise _err(e)
        return _SSLSocket(ss)
