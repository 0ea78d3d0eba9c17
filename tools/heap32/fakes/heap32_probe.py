# The heap probe: runs inside MicroPython (the 32-bit webassembly port or the
# 64-bit unix port, the same code on both) and prints one line
#     HEAP32 {json}
# with gc.mem_alloc() figures taken after gc.collect(). tools/heap32/run.py starts
# it with a five-line stub (one statement a line there):
#     import gc; gc.collect(); _e = gc.mem_alloc()
#     import heap32_probe
#     heap32_probe.main(<mode>, _e)
# Modes:
#   discover  the order modules finish importing in (builtins.__import__ hooked),
#             through a boot to "ready" and then every other module of lib/at;
#             the other modes import in that order, so each import adds one module.
#   steps     empty -> runtime modules -> fakes -> ready (the board's boot) -> all
#             lib/at modules imported (on top of the state at "ready")
#   modules   the same, one module at a time: what each module's import costs
#   objects   a few data objects, for the 64/32-bit factor of data alone
# The list of modules comes from heap32_plan.txt beside this file (run.py writes it).
import gc
import sys

# The probe's own figures include its own module (imported by the stub after the
# "empty" figure) in "runtime", and the fakes in "fakes": the firmware's figures
# are the differences from "fakes" on.

# Modules of the runtime the firmware imports. On the ESP32 they are all built
# into the image (no heap); on the webassembly port some are frozen Python
# (time, os), so they are imported before the firmware's figures start.
RUNTIME = ("os", "time", "json", "struct", "hashlib", "binascii", "errno", "select", "micropython")
READY = b"\r\nready\r\n"


class _Ready(BaseException):
    pass


def used():
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


def qstr(label):
    """micropython.qstr_info()'s line (the interned strings' pools and text, all in
    the GC heap) after a "QSTR label" line: it only prints, run.py reads it."""
    import micropython
    print("QSTR " + label)
    micropython.qstr_info()


def _plan():
    boot, rest, cur = [], [], None
    with open(_here() + "heap32_plan.txt") as f:
        for line in f:
            line = line.strip()
            if line == "[boot]":
                cur = boot
            elif line == "[rest]":
                cur = rest
            elif line and cur is not None:
                cur.append(line)
    return boot, rest


def _here():
    f = __file__
    i = f.rfind("/")
    return f[:i + 1] if i >= 0 else ""


def _arm(at_ready):
    """Have the fake UART call at_ready() when the firmware writes "ready", then
    end the boot (run() would enter its loop next). Done before the "fakes"
    figure, so that these closures are not counted as the firmware's."""
    import heap32_fakes

    def on_write(data):
        if data == READY:
            heap32_fakes.UART.on_write = None
            at_ready()
            raise _Ready()

    heap32_fakes.UART.on_write = on_write


def _boot():
    """The board's boot as main.py does it (main() -> at.app.run) with the ESP32
    adapter, up to the write of "ready": at_ready() runs then, with run()'s frame
    and everything it built alive."""
    from at.ports.esp32 import Board
    from at import app
    board = Board()
    try:
        app.run(board)
    except _Ready:
        pass
    else:
        raise RuntimeError("at.app.run returned without writing ready")


# Figures go into lists allocated up front (small ints need no heap), so that
# keeping one figure costs nothing in the next.
EMPTY, RUNTIME_, FAKES, READY_, ALL, BOOT_IMPORTED = range(6)
NAMES = ("empty", "runtime", "fakes", "ready", "all", "boot_imported")


def _runtime(alloc, free, at_ready):
    for name in RUNTIME:
        __import__(name)
    alloc[RUNTIME_] = used()
    free[RUNTIME_] = gc.mem_free()
    qstr("runtime")
    import heap32_fakes
    heap32_fakes.install()
    if at_ready:
        _arm(at_ready)
    alloc[FAKES] = used()
    free[FAKES] = gc.mem_free()
    qstr("fakes")


def _mods():
    return [k for k in sys.modules]


def discover():
    import builtins
    order = []
    real = builtins.__import__

    def hook(name, *a):
        before = set(sys.modules)
        m = real(name, *a)
        # Everything that appeared during this call is complete now; what nested
        # calls recorded went first. A package comes before its submodules.
        new = [k for k in sys.modules if k not in before and k not in order]
        new.sort(key=lambda k: k.count("."))
        order.extend(new)
        return m

    boot_order = []

    def at_ready():
        boot_order.extend(order)
        for p in _plan()[1]:
            __import__(p)

    _runtime([0] * 6, [0] * 6, at_ready)
    builtins.__import__ = hook
    try:
        _boot()
    finally:
        builtins.__import__ = real
    rest_order = [k for k in order if k not in boot_order]
    return {"boot": boot_order, "rest": rest_order}


def _steps_out(alloc, free, which):
    return [(NAMES[i], alloc[i], free[i]) for i in which]


def steps(empty):
    alloc, free = [0] * 6, [0] * 6
    alloc[EMPTY] = empty
    boot, rest = _plan()
    res = [None, 0]

    def at_ready():
        alloc[READY_] = used()
        free[READY_] = gc.mem_free()
        qstr("ready")
        res[0] = sorted(k for k in _mods() if k.startswith("at"))
        extra = used() - alloc[READY_]  # that list is the probe's, not the firmware's
        for p in boot:
            __import__(p)  # all there already, unless the boot skipped one
        for p in rest:
            __import__(p)
        alloc[ALL] = used() - extra
        free[ALL] = gc.mem_free() + extra
        qstr("all")
        res[1] = len([k for k in _mods() if k.startswith("at")])

    _runtime(alloc, free, at_ready)
    _boot()
    return {"steps": _steps_out(alloc, free, (EMPTY, RUNTIME_, FAKES, READY_, ALL)),
            "ready_modules": res[0], "all_modules": res[1]}


def modules(empty):
    alloc, free = [0] * 6, [0] * 6
    alloc[EMPTY] = empty
    boot, rest = _plan()
    names = boot + rest
    cost = [0] * len(names)
    new = [None] * len(names)  # only when an import brought more than its module

    def one(i):
        name = names[i]
        n = len(sys.modules)
        a = used()
        __import__(name)
        b = used()
        cost[i] = b - a
        qstr("m " + name)
        if len(sys.modules) != n + 1:
            new[i] = [k for k in sys.modules if k.startswith("at") and k not in names[:i + 1]]

    def at_ready():
        alloc[READY_] = used()
        qstr("ready")
        for i in range(len(boot), len(names)):
            one(i)
        alloc[ALL] = used()

    _runtime(alloc, free, at_ready)
    for i in range(len(boot)):
        one(i)
    alloc[BOOT_IMPORTED] = used()
    qstr("boot_imported")
    n = len(sys.modules)
    _boot()
    return {"steps": _steps_out(alloc, free, (EMPTY, RUNTIME_, FAKES)),
            "modules": [(names[i], cost[i], new[i] or []) for i in range(len(names))],
            "marks": {NAMES[i]: alloc[i] for i in (BOOT_IMPORTED, READY_, ALL)},
            "boot_new_modules": len(sys.modules) - n}


class _C10:
    def __init__(self):
        self.a0 = self.a1 = self.a2 = self.a3 = self.a4 = 0
        self.a5 = self.a6 = self.a7 = self.a8 = self.a9 = 0


def _fn():
    def f(a, b):
        return a + b
    return f


def _closure():
    x = 0

    def f(a):
        return a + x
    return f


def _gen():
    yield 1


# name, n, what one of them is, a function making one. The probe keeps n of them
# in a list and subtracts what the list alone costs.
KINDS = (
    ("bytes8", 1000, "bytes of 8 bytes", lambda i: bytes(8)),
    ("str10", 1000, "str of 10 chars, not interned", lambda i: "%010d" % i),
    ("tuple3", 1000, "3-tuple of small ints", lambda i: (i, i, i)),
    ("dict100", 10, "dict of 100 small-int keys and values", lambda i: {k: k for k in range(100)}),
    ("instance10", 100, "class instance with 10 attributes (class exists)", lambda i: _C10()),
    ("bytearray4096", 10, "bytearray(4096)", lambda i: bytearray(4096)),
    ("function", 100, "function object (its code loaded already)", lambda i: _fn()),
    ("closure", 100, "closure over one variable (function + cell)", lambda i: _closure()),
    ("generator", 100, "generator object", lambda i: _gen()),
    ("float", 100, "float", lambda i: i + 0.5),
    ("bigint", 100, "int of 100 bits", lambda i: (1 << 100) + i),
)


def _many(make, n):
    keep = [None] * n
    for i in range(n):
        keep[i] = make(i)
    return keep


def _cost(make, n):
    # Twice, the smaller figure: a stale pointer on the C stack (the GC is
    # conservative there) can keep one block of a previous round alive.
    best = None
    for _ in range(2):
        a = used()
        keep = _many(make, n)
        b = used()
        keep = None  # noqa: F841
        if best is None or b - a < best:
            best = b - a
    return best


def objects(empty):
    alloc, free = [0] * 6, [0] * 6
    alloc[EMPTY] = empty
    _runtime(alloc, free, None)
    out = _steps_out(alloc, free, (EMPTY, RUNTIME_, FAKES))
    rows = []
    lists = {}
    for name, n, what, make in KINDS:
        if n not in lists:
            lists[n] = _cost(lambda i: None, n)
        total = _cost(make, n)
        rows.append((name, n, total, total - lists[n], what))
    return {"steps": out, "objects": rows, "lists": sorted(lists.items())}


def main(mode, empty):
    import json
    r = {"discover": lambda: discover(), "steps": lambda: steps(empty),
         "modules": lambda: modules(empty), "objects": lambda: objects(empty)}[mode]()
    r["mode"] = mode
    r["impl"] = [sys.implementation.name, list(sys.implementation.version[:3]), sys.maxsize > 2 ** 32,
                 getattr(sys.implementation, "_build", ""), getattr(sys.implementation, "_machine", "")]
    print("HEAP32 " + json.dumps(r))
