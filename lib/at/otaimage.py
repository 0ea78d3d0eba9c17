# A MicroPython image written by the OTA (ESP32): into the next OTA app partition
# in 4 KB blocks, its SHA-256 checked on what the flash holds before it may boot.
import hashlib
from at.errors import E_OTA_HASH, E_OTA_IMAGE
from at.fwfiles import Fail, hexdigest

BLOCK = 4096  # esp32.Partition's block


def running_image(board):
    """The label of the running app partition, or None where the port has none
    (the port owns esp32.Partition: lib/at/ports/esp32.py)."""
    f = getattr(board, "image_running", None)
    return f() if f else None


class Image:
    """The firmware image into the next OTA app partition (the port's
    board.image_next(): esp32.Partition, docs/library/esp32.rst) in 4 KB blocks;
    writeblocks(n, buf) erases and writes. Its SHA-256 is checked on what the
    flash holds before set_boot()."""

    def __init__(self, e, board):
        self.running = board.image_running()
        try:
            self.part = board.image_next()
        except OSError:
            raise Fail(E_OTA_IMAGE, "this board has no OTA app partition (flash an OTA build first)")
        info = self.part.info()
        self.label = info[4]
        self.size = e["size"]
        self.sha = e["sha256"]
        if self.size > info[3]:
            raise Fail(E_OTA_IMAGE, "image of %d bytes does not fit %s (%d)" % (self.size, self.label, info[3]))
        self.buf = bytearray(BLOCK)
        self.n = 0
        self.blk = 0

    def write(self, mv):
        while mv:
            k = min(BLOCK - self.n, len(mv))
            self.buf[self.n:self.n + k] = mv[:k]
            self.n += k
            mv = mv[k:]
            if self.n == BLOCK:
                self._flush()

    def _flush(self):
        if self.n < BLOCK:
            self.buf[self.n:] = b"\xff" * (BLOCK - self.n)  # erased flash
        try:
            self.part.writeblocks(self.blk, self.buf)
        except OSError as e:
            raise Fail(E_OTA_IMAGE, "writing %s block %d: %r" % (self.label, self.blk, e))
        self.blk += 1
        self.n = 0

    def finish(self):
        """Generator: write the last block, then hash what the partition holds."""
        if self.n:
            self._flush()
        h = hashlib.sha256()
        left = self.size
        for b in range(self.blk):
            self.part.readblocks(b, self.buf)
            k = min(BLOCK, left)
            h.update(memoryview(self.buf)[:k])
            left -= k
            if b & 15 == 15:
                yield 0
        if hexdigest(h) != self.sha:
            raise Fail(E_OTA_HASH, "the image in %s does not match its SHA-256" % self.label)

    def boot(self):
        try:
            self.part.set_boot()  # ESP-IDF checks the image too
        except OSError as e:
            raise Fail(E_OTA_IMAGE, "%s refused as boot partition: %r" % (self.label, e))
