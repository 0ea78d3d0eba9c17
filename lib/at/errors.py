# ERR CODE values, laid out as in esp_at_core.h: 0x01 <sub:8> <extension:16>.
# Plain ints (no micropython.const) so this module also imports under CPython.

COMMON = 0x01
NO_TERMINATOR = 0x02
NO_AT = 0x03
PARA_LENGTH = 0x04
PARA_TYPE = 0x05
PARA_NUM = 0x06
PARA_INVALID = 0x07
PARA_PARSE = 0x08
UNSUPPORTED = 0x09
EXEC_FAIL = 0x0A
PROCESSING = 0x0B
OP_ERROR = 0x0C


# Our extensions of EXEC_FAIL (ERR CODE:0x010a00xx), every one of them here, so a
# value means one thing (README, "Compatibility", lists them).
# SSL links (at/sslconf.py, at/net.py)
E_SSL_HANDSHAKE = 0x50  # the peer or the protocol failed the handshake
E_SSL_UNTRUSTED = 0x51  # the server's chain does not lead to the loaded CA
E_SSL_NAME = 0x52  # the certificate is not for this name
E_SSL_EXPIRED = 0x53  # the certificate is out of its validity period
E_SSL_NO_CERT = 0x54  # a certificate, key or CA the mode needs is not provisioned
E_SSL_BAD_CERT = 0x55  # a provisioned certificate or key does not parse
E_SSL_TIMEOUT = 0x56  # the handshake took too long
E_NOT_HERE = 0x57  # this runtime or board cannot do it (at/caps.py; ALPN; README "Supported targets")
E_SSL_CIPHER = 0x58  # no cipher suite in common with the settings
E_CLOCK = 0x59  # the clock is not set, so certificate dates cannot be checked
# names (at/dns.py), AT+MDNS, AT+PING
E_DNS_NOT_FOUND = 0x60  # the name did not resolve
E_MDNS_NO_RESULT = 0x61  # a query found nothing before its timeout
E_PING_NO_ICMP = 0x70  # no ICMP socket can be opened here
# OTA (at/commands/ota.py, at/ota.py)
E_OTA_NO_SERVER = 0x80  # no AT+CIUPDATESRV (or no <ssl port> for HTTPS)
E_OTA_CONNECT = 0x81  # the connection failed or broke
E_OTA_HTTP = 0x82  # the server answered something else than a 200 with Content-Length
E_OTA_VERSION = 0x83  # no such version (or nothing in it for that firmware name)
E_OTA_MANIFEST = 0x84  # the manifest is malformed or not for this board
E_OTA_HASH = 0x85  # a file is not the one the manifest describes
E_OTA_TIMEOUT = 0x86  # the 3-minute timeout
E_OTA_FLASH = 0x87  # writing the filesystem failed
E_OTA_TLS = 0x88  # HTTPS: no CA in client_ca.0, or the handshake failed
E_OTA_DOWNGRADE = 0x89  # the newest version is older than this one (ask for it by name)
E_OTA_IMAGE = 0x8A  # the MicroPython image could not be written or booted
# the board
E_NO_HEAP = 0x90  # no heap for a send's data buffer (larger than a small-heap board keeps)


def code(sub, ext=0):
    return 0x01000000 | (sub << 16) | (ext & 0xFFFF)


class ATError(Exception):
    """Raised by a handler to answer ERROR.

    `code` becomes `ERR CODE:0x...` when AT+SYSLOG=1; `lines` are printed before
    ERROR whatever SYSLOG says (e.g. "ALREADY CONNECTED", "+CWJAP:3");
    `errno` adds "+ERRNO:<n>" when AT+SYSLOG=1, as ESP-AT does for socket failures.
    """

    def __init__(self, code=0x010A0000, lines=None, errno=0):
        self.code = code
        self.lines = lines
        self.errno = errno


def fail(sub=EXEC_FAIL, ext=0, lines=None, errno=0):
    return ATError(code(sub, ext), lines, errno)


def not_here():
    """ERROR for a feature this runtime or board does not have."""
    return ATError(code(EXEC_FAIL, E_NOT_HERE))
