# Firmware versions as files and names, shared by the OTA commands
# (at/commands/ota.py) and the update service (at/ota.py): what a version name
# may be, removing a version's folder, and +CIPUPDATE's states. Both are loaded
# on first use; at/fwstate.py (at every boot) has the state file.
import os
import binascii

VERSION_MAX = 64  # ESP-AT's ESP_AT_VERSION_LEN_MAX
_VCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._+-"

# +CIPUPDATE:<state>
IDLE, FOUND, CONNECTED, GOT_VERSION, DONE, FAILED = 0, 1, 2, 3, 4, -1


def rmtree(p):
    """Remove a file or a folder with everything in it; nothing if it is not there."""
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:  # S_IFDIR
        for n in os.listdir(p):
            rmtree(p + "/" + n)
        os.rmdir(p)
    else:
        os.remove(p)


def valid_version(v):
    if not v or len(v) > VERSION_MAX or v[0] == "." or ".." in v:
        return False
    for c in v:
        if c not in _VCHARS:
            return False
    return True


class Fail(Exception):
    """An OTA step failed: ext is its ERR CODE extension (at/errors.py E_OTA_*),
    msg the reason for the log port."""

    def __init__(self, ext, msg):
        self.ext = ext
        self.msg = msg


def hexdigest(h):
    return binascii.hexlify(h.digest()).decode()

