# The ESP32 port's esp32 module, for lib/at (the OTA code in lib/at/ota.py and
# lib/at/ports/esp32.py, main.py's loader) under MicroPython's unix port: the
# twin's and the unit tests'. esp32.Partition models ports/esp32/esp32_partition.c
# and the ESP-IDF calls behind it (docs/library/esp32.rst), not what would be
# convenient:
# - Partition(id, block_size=4096): id BOOT, RUNNING or a label; OSError(ENOENT)
#   for an unknown label. info() -> (type, subtype, addr, size, label, encrypted).
# - readblocks(n, buf[, off]); writeblocks(n, buf) erases the blocks first,
#   writeblocks(n, buf, off) does not (NOR flash: a write can only clear bits);
#   ioctl 4 (block count), 5 (block size), 6 (erase one block).
# - get_next_update(): esp_ota_get_next_update_partition(): the OTA slot after
#   the running one (ota_0 from factory), OSError(ENOENT) without OTA slots.
# - set_boot(): esp_ota_set_boot_partition() checks the image (magic byte 0xE9
#   here) and raises OSError(-0x1503) (ESP_ERR_OTA_VALIDATE_FAILED) if bad; the
#   image is then new, and boots as pending-verify.
# - mark_app_valid_cancel_rollback() (classmethod): the running app is valid.
# - the bootloader with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (sdkconfig.base):
#   runs when this module is first imported (= a boot). An app still
#   pending-verify at a boot is aborted and the last valid slot boots instead.
# The flash persists across processes in ./esp32_flash/ (one file per partition
# and otadata.json), so a new process is a reset. The test side: flash(),
# otadata(), and TABLE to change the layout before the first import.
# idf_heap_info(), HEAP_DATA, HEAP_EXEC: the IDF heap, below.
import os
import json
import sys

_DIR = "esp32_flash"
NATIVE = 4096
ENOENT = 2
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503
TYPE_APP = 0
TYPE_DATA = 1
# label, type, subtype, address, size (small: the tests write whole images)
TABLE = [
    ("nvs", 1, 2, 0x9000, 0x6000),
    ("otadata", 1, 0, 0xF000, 0x2000),
    ("factory", 0, 0x00, 0x10000, 64 * 1024),
    ("ota_0", 0, 0x10, 0x20000, 64 * 1024),
    ("ota_1", 0, 0x11, 0x30000, 64 * 1024),
    ("vfs", 1, 0x81, 0x40000, 64 * 1024),
]
if "esp32_table.json" in os.listdir():
    with open("esp32_table.json") as _f:
        TABLE = [tuple(r) for r in json.load(_f)]


def _path(label):
    return _DIR + "/" + label + ".bin"


def _row(label):
    for r in TABLE:
        if r[0] == label:
            return r
    return None


def otadata():
    try:
        with open(_DIR + "/otadata.json") as f:
            return json.load(f)
    except OSError:
        return {"boot": None, "states": {}, "running": None, "boots": 0}


def _save(d):
    with open(_DIR + "/otadata.json", "w") as f:
        json.dump(d, f)


def flash(label):
    """The bytes a partition holds (test side)."""
    with open(_path(label), "rb") as f:
        return f.read()


def _init():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass
    blk = None
    for r in TABLE:
        try:
            os.stat(_path(r[0]))
        except OSError:
            # Erased flash, written a block at a time: this runs at the firmware's
            # boot, in its heap, where a 64 KB string would be garbage that a
            # chip's C code never makes.
            blk = blk or b"\xff" * NATIVE
            with open(_path(r[0]), "wb") as f:
                for _ in range(r[4] // NATIVE):
                    f.write(blk)


def _ota_slots():
    return [r[0] for r in TABLE if r[1] == TYPE_APP and 0x10 <= r[2] < 0x20]


def _bootloader():
    """What the second-stage bootloader does at a reset."""
    d = otadata()
    sel = d.get("boot") or ("factory" if _row("factory") else _ota_slots()[0])
    st = d["states"]
    if st.get(sel) == "new":
        st[sel] = "pending"  # ESP_OTA_IMG_PENDING_VERIFY: this boot must confirm it
    elif st.get(sel) == "pending":
        st[sel] = "aborted"  # it never confirmed: roll back
        d["rolled_back"] = d.get("rolled_back", 0) + 1
        sel = d.get("last_valid") or "factory"
        d["boot"] = sel
    d["running"] = sel
    d["boots"] = d.get("boots", 0) + 1
    _save(d)
    return sel


_init()
_RUNNING = _bootloader()


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = TYPE_APP
    TYPE_DATA = TYPE_DATA

    def __init__(self, id, block_size=NATIVE):
        if id == Partition.BOOT:
            label = otadata().get("boot") or _RUNNING
        elif id == Partition.RUNNING:
            label = _RUNNING
        elif isinstance(id, int):
            raise ValueError
        else:
            label = id
        row = _row(label)
        if row is None:
            raise OSError(ENOENT)
        self._row = row
        self.block_size = block_size

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=NATIVE):
        return [Partition(r[0], block_size) for r in TABLE
                if r[1] == type and (subtype == 0xFF or r[2] == subtype) and (label is None or r[0] == label)]

    def info(self):
        r = self._row
        return (r[1], r[2], r[3], r[4], r[0], False)

    def __repr__(self):
        r = self._row
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            r[1], r[2], r[3], r[4], r[0])

    def _rw(self, off, n):
        if off < 0 or off + n > self._row[4]:
            raise OSError(-0x102)  # ESP_ERR_INVALID_ARG: out of the partition
        return open(_path(self._row[0]), "r+b")

    def readblocks(self, block_num, buf, offset=0):
        off = block_num * self.block_size + offset
        with self._rw(off, len(buf)) as f:
            f.seek(off)
            f.readinto(buf)

    def writeblocks(self, block_num, buf, offset=None):
        off = block_num * self.block_size + (offset or 0)
        n = len(buf)
        with self._rw(off, n) as f:
            f.seek(off)
            old = f.read(n)
            if offset is None:
                # A simple write: erase first (whole native blocks here).
                if off % NATIVE or n % NATIVE:
                    raise OSError(-0x102)
                old = b"\xff" * n
            f.seek(off)
            f.write(bytes(a & b for a, b in zip(old, bytes(buf))))

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):
            return 0
        if cmd == 4:
            return self._row[4] // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            off = arg * NATIVE
            with self._rw(off, NATIVE) as f:
                f.seek(off)
                f.write(b"\xff" * NATIVE)
            return 0
        return None

    def set_boot(self):
        r = self._row
        if r[1] != TYPE_APP:
            raise OSError(-0x102)
        with open(_path(r[0]), "rb") as f:
            magic = f.read(1)
        if magic != b"\xe9":
            raise OSError(-ESP_ERR_OTA_VALIDATE_FAILED)
        d = otadata()
        d["boot"] = r[0]
        if r[2] >= 0x10:
            d["states"][r[0]] = "new"
        if d["states"].get(_RUNNING) in (None, "valid"):
            d["last_valid"] = _RUNNING
        _save(d)

    def get_next_update(self):
        slots = _ota_slots()
        if not slots:
            raise OSError(ENOENT)
        cur = self._row[0]
        if cur in slots:
            return Partition(slots[(slots.index(cur) + 1) % len(slots)])
        return Partition(slots[0])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        d = otadata()
        d["states"][_RUNNING] = "valid"
        d["last_valid"] = _RUNNING
        _save(d)


# -- the IDF heap --------------------------------------------------------------------------
# idf_heap_info(capabilities) (ports/esp32/modesp32.c v1.27.0:253-273, v1.24.1:194-214,
# the same at v1.28.0): one 4-tuple per registered IDF heap region whose
# capabilities include all of `capabilities` (heap_caps_match): (total bytes, free
# bytes, largest free block, minimum free seen). HEAP_DATA is MALLOC_CAP_8BIT and
# HEAP_EXEC MALLOC_CAP_EXEC (modesp32.c v1.27.0:362-363, v1.24.1:243-244; ESP-IDF
# esp_heap_caps.h: EXEC bit 0, 32BIT bit 1, 8BIT bit 2, DMA bit 3, INTERNAL bit 11,
# DEFAULT bit 12).
# The regions are an ESP32-WROOM without PSRAM: the totals of the example in
# docs/library/esp32.rst (v1.27.0:82-84), then an IRAM region (exec only). The free
# figures are plausible, not measured: ~100 KB of DRAM free at boot with the GC heap
# at its initial 56 KB in the last D/IRAM region; Wi-Fi takes ~30 KB once started
# and lwIP ~5 KB per open socket (the NOTES' figures), taken from the largest
# regions. The GC heap's growth into the IDF heap and TLS buffers are not counted.
# The minimum is a running one, sampled at each call.
HEAP_DATA = 4  # MALLOC_CAP_8BIT
HEAP_EXEC = 1  # MALLOC_CAP_EXEC
_DRAM = 0x2 | 0x4 | 0x8 | 0x800 | 0x1000  # 32BIT 8BIT DMA INTERNAL DEFAULT
_DIRAM = _DRAM | 0x1  # D/IRAM: executable through its IRAM alias
_IRAM = 0x1 | 0x2 | 0x800  # EXEC 32BIT INTERNAL
# caps, total, free at boot
_REGIONS = [
    (_DRAM, 240, 0),
    (_DRAM, 7288, 0),
    (_DRAM, 16648, 4),
    (_DRAM, 79912, 44000),
    (_DIRAM, 15072, 15036),
    (_DIRAM, 113840, 41000),
    (_IRAM, 19456, 3120),
]
WIFI_BYTES = 30 * 1024
SOCKET_BYTES = 5 * 1024
_min = [free for _, _, free in _REGIONS]


def _used():
    """IDF heap the radio and lwIP take now (the twin's network and socket modules)."""
    used = 0
    net = sys.modules.get("network")
    act = getattr(net, "_active", None)
    if act and (act.get(0) or act.get(1)):
        used += WIFI_BYTES
    sock = sys.modules.get("socket")
    used += SOCKET_BYTES * len(getattr(sock, "_all", ()))
    return used


def idf_heap_info(capabilities):
    cap = int(capabilities)
    used = _used()
    out = []
    # what is used comes out of the biggest free regions first
    order = sorted(range(len(_REGIONS)), key=lambda i: -_REGIONS[i][2])
    free = [r[2] for r in _REGIONS]
    for i in order:
        if _REGIONS[i][0] & 0x4:
            take = min(used, free[i])
            free[i] -= take
            used -= take
    for i, (caps, total, _) in enumerate(_REGIONS):
        if _min[i] > free[i]:
            _min[i] = free[i]
        if caps & cap == cap:
            largest = free[i] - 200 if free[i] > 4096 else free[i]  # some fragmentation
            out.append((total, free[i], largest, _min[i]))
    return out
