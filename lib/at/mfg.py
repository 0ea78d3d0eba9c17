# The manufacturing store behind AT+SYSMFG: certificates, keys and CAs as files
# on the board's filesystem, one file per key:
#     mfg/<namespace>/<key>           e.g. mfg/client_cert/client_cert.0
# so `mpremote cp client.crt :mfg/client_cert/client_cert.0` provisions a board
# too. A key's NVS type (1-8) lives in mfg/<namespace>/.types; a file without
# one is binary (8). Every write goes to a temporary file and is renamed into
# place, so a power cut leaves the old value or the new one, never half of it.
import os
import json

ROOT = "mfg"
NAMESPACES = ("client_cert", "client_key", "client_ca", "server_cert", "server_key", "server_ca",
              "mqtt_cert", "mqtt_key", "mqtt_ca", "wpa2_cert", "wpa2_key", "wpa2_ca", "factory_param")
BINARY = 8
STRING = 7
_TYPES = ".types"


def _dir(ns):
    return ROOT + "/" + ns


def _mkdirs(ns):
    for d in (ROOT, _dir(ns)):
        try:
            os.mkdir(d)
        except OSError:
            pass  # exists


def _types(ns):
    try:
        with open(_dir(ns) + "/" + _TYPES) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _atomic(path, data, mode="wb"):
    tmp = path + ".tmp"
    with open(tmp, mode) as f:
        f.write(data)
    os.rename(tmp, path)


def keys(ns):
    try:
        names = os.listdir(_dir(ns))
    except OSError:
        return []
    return sorted(k for k in names if k != _TYPES and not k.endswith(".tmp"))


def namespaces():
    return [ns for ns in NAMESPACES if keys(ns)]


def type_of(ns, key):
    return _types(ns).get(key, BINARY)


def read(ns, key):
    """The value's bytes, or None."""
    try:
        with open(_dir(ns) + "/" + key, "rb") as f:
            return f.read()
    except OSError:
        return None


def write(ns, key, typ, data):
    _mkdirs(ns)
    _atomic(_dir(ns) + "/" + key, data)
    t = _types(ns)
    if t.get(key, BINARY) != typ:
        t[key] = typ
        _atomic(_dir(ns) + "/" + _TYPES, json.dumps(t), "w")


def erase(ns, key=None):
    """Erase one key, or every key of the namespace; False if there was nothing."""
    ks = keys(ns) if key is None else ([key] if read(ns, key) is not None else [])
    for k in ks:
        os.remove(_dir(ns) + "/" + k)
    t = _types(ns)
    if ks and any(k in t for k in ks):
        for k in ks:
            t.pop(k, None)
        _atomic(_dir(ns) + "/" + _TYPES, json.dumps(t), "w")
    return bool(ks)
