# What this runtime can do, found by looking at it (probes and hasattr, never
# version strings), so a command whose feature is missing answers ERROR with
# ERR CODE 0x010a0057 ("not supported here") instead of failing half-way.
# README "Supported targets" says which MicroPython release and board has what.
import socket


def _ipv6():
    # The ESP32 port's getaddrinfo() gives None as the address of anything but
    # AF_INET (ports/esp32/modsocket.c), so its sockets cannot reach IPv6.
    try:
        return socket.getaddrinfo("::1", 1, socket.AF_INET6)[0][-1] is not None
    except (AttributeError, OSError, IndexError, ValueError):
        return False


IPV6 = _ipv6()
_psk: "list" = []


def psk():
    """TLS-PSK (SSLContext.psk_identity/psk_key): MicroPython's master after
    v1.28.0; no released ESP32 image has it. Probed once, on first use."""
    if not _psk:
        import tls
        try:
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.psk_identity = b"probe"  # type: ignore[attr-defined]  # not in the stubs
            _psk.append(True)
        except (AttributeError, TypeError, ValueError):
            _psk.append(False)
    return _psk[0]
