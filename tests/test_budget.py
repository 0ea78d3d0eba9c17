"""The firmware's heap in the chip's units: a 32-bit MicroPython 1.27.0 (the
WebAssembly build from npm, run by tools/heap32/run.py) imports the firmware as
`make deploy` puts it on a board (.mpy files) and boots it to `ready` over
stand-ins. A change that takes more than the budget fails here, with the figure.

The budgets are ceilings held today, not yet the targets: an ESP32-WROOM-32
running the .mpy firmware should fit its core in one doubling of the GC heap
(100 KB at the peak, code included). README "Heap" has the figures and what is
left to reach it."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
KB = 1024
# 32-bit bytes of GC heap (gc.mem_alloc() after gc.collect()):
READY_MPY = 138 * KB  # at `ready`, lib/ as .mpy (2026-12-06: 135,840)
ALL_MPY = 205 * KB  # every group and service imported (2026-12-06: 202,176)


@pytest.fixture(scope="module")
def heap32():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "heap32" / "run.py"), "--json", "--no-64"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.timeout(300)
def test_heap_at_ready_within_budget(heap32):
    got = heap32["steps"]["boot"]["bytes32"]
    assert got <= READY_MPY, "the firmware takes %d bytes of 32-bit GC heap at ready (budget %d)" % (got, READY_MPY)


@pytest.mark.timeout(300)
def test_heap_with_everything_loaded_within_budget(heap32):
    got = heap32["steps"]["firmware"]["bytes32"]
    assert got <= ALL_MPY, "the whole firmware takes %d bytes of 32-bit GC heap (budget %d)" % (got, ALL_MPY)


@pytest.mark.timeout(300)
def test_groups_used_on_demand_are_not_loaded_at_boot(heap32):
    """The groups of lib/at/commands/__init__.py's ON_USE (and their services)
    are not imported at boot: their code costs heap only once used."""
    boot = {m["module"] for m in heap32["modules"] if m["boot"]}
    lazy = {"at.commands." + g for g in ("sendx", "passthrough", "ssl", "mfg", "dns", "sntp", "ping", "mdns",
                                         "ota", "nothere")}
    lazy |= {"at.passthrough", "at.pump", "at.guard", "at.sslconf", "at.mfg", "at.sntp", "at.mdns", "at.ota"}
    assert not boot & lazy, sorted(boot & lazy)
