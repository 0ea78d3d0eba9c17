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


# Extensions of EXEC_FAIL that several groups share
E_NOT_HERE = 0x57  # this runtime or board cannot do it (at/caps.py; ALPN; README "Supported targets")
E_CLOCK = 0x59  # the clock is not set, so certificate dates cannot be checked


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
