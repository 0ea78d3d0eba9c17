"""A ROMFS image of compiled modules, for a MicroPython that runs .mpy files in
place from one (vfs.VfsRom, MICROPY_VFS_ROM: the unix port since v1.25.0).

From a ROMFS image the loader leaves bytecode, string constants and qstr text
in the image instead of copying them into the GC heap (py/persistentcode.c,
mp_reader_try_read_rom), as a frozen image leaves them in flash. No stock ESP32
image enables it (no board of ports/esp32 sets MICROPY_VFS_ROM, v1.25.0-v1.28.0),
so on this machine it stands in for the frozen image (firmware/) where a frozen
build cannot be made: tools/heap32/run.py --romfs, tools/vboard.py --romfs.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Run by the unix port: mount the image at /rom and put /rom where ".frozen" is on
# sys.path (a frozen image's place), or first. The image's bytes are one block of
# the GC heap, taken before anything else.
MOUNT = ("import sys, vfs\n"
         "vfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')\n"
         "sys.path.insert(sys.path.index('.frozen') if '.frozen' in sys.path else 0, '/rom')\n")
# ... then run the script as `micropython <script> <args>` would (with -c).
BOOT = (MOUNT +
        "sys.argv.clear()\n"
        "sys.argv.extend(%r)\n"
        "sys.path[0] = sys.argv[0].rpartition('/')[0]\n"
        "execfile(sys.argv[0])\n")


def writer():
    try:
        from mpremote.romfs import VfsRomWriter
    except ImportError:  # run by the system's python3: mpremote is in the project's venv
        sys.path[:0] = [str(p) for p in (ROOT / ".venv" / "lib").glob("python3*/site-packages")]
        from mpremote.romfs import VfsRomWriter
    return VfsRomWriter()


def image(src, dst, top="at"):
    """src/<top>/** (compiled .mpy files) into a ROMFS image at dst, with mpremote's
    writer (the format `mpremote romfs deploy` writes). Returns dst."""
    w = writer()

    def add(d):
        for e in sorted(d.iterdir()):
            if e.is_dir():
                w.opendir(e.name)
                add(e)
                w.closedir()
            else:
                w.mkfile(e.name, e.read_bytes())
    w.opendir(top)
    add(pathlib.Path(src) / top)
    w.closedir()
    dst = pathlib.Path(dst)
    dst.write_bytes(w.finalise())
    return dst


def mount(img):
    """The program that mounts img (run before another in the same -c)."""
    return MOUNT % str(img)


def boot(img, argv):
    """The -c program that runs argv (a script and its arguments) with img mounted."""
    return BOOT % (str(img), [str(a) for a in argv])
