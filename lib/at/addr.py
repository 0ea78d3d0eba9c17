# Addresses as text: is it an IPv4 or IPv6 literal, or a name for the resolver?
# Apart from at/dns.py so that links to addresses never import the resolver (a
# WROOM running .mpy files counts its 3 KB).
import socket

A = 1  # the DNS record types, and the families a lookup wants (dns.lookup)
AAAA = 28


def is_ipv4(s):
    p = s.split(".")
    if len(p) != 4:
        return False
    for x in p:
        if not x or len(x) > 3 or not x.isdigit() or int(x) > 255:
            return False
    return True


def is_ipv6(s):
    if ":" not in s:
        return False
    pton = getattr(socket, "inet_pton", None)  # the unix port has it, the ESP32 not
    if pton is None:
        return all(c in "0123456789abcdefABCDEF:." for c in s) and s.count("::") <= 1
    try:
        pton(socket.AF_INET6, s)
        return True
    except (OSError, ValueError):
        return False


def literal(name, want):
    """[name] if it is an address of a wanted family, [] if it is of the other one, None for a name."""
    if is_ipv4(name):
        return [name] if want != AAAA else []
    if is_ipv6(name):
        return [name] if want != A else []
    if name == "localhost":
        return ["::1"] if want == AAAA else ["127.0.0.1"]
    return None
