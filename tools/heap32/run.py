#!/usr/bin/env python3
"""Measure the firmware's GC heap on a 32-bit MicroPython and on the 64-bit unix port.

    python3 tools/heap32/run.py            # a table
    python3 tools/heap32/run.py --json     # the figures, machine-readable
    python3 tools/heap32/run.py --source   # lib/ as .py source instead of mpy-cross's .mpy

The 32-bit MicroPython is the webassembly port, npm's
@micropython/micropython-webassembly-pyscript 1.27.0 under Node (installed with
`npm ci --prefix tools/heap32` when missing); the 64-bit one is the project's
unix port, .venv/bin/micropython (`make setup`). Both run the same probe
(fakes/heap32_probe.py) over the same stand-ins (fakes/heap32_fakes.py); see
README.md here for what is measured. Stdlib only.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import romfs as romfs_tool  # noqa: E402  (tools/romfs.py: the image, with mpremote's writer)
from deploy import MPY_CROSS_FLAGS  # noqa: E402  (lib/ compiled as for a board)
LIB = ROOT / "lib"
FAKES = HERE / "fakes"
BUILD = ROOT / "build" / "heap32"
PKG = HERE / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
HOST_ONLY = ("at/ports/unix.py", "at/ports/air.py")  # as tools/deploy.py: never on a board
HEAP = 4 * 1024 * 1024  # big enough that neither port ever grows or runs short
STUB = "import gc\ngc.collect()\n_e = gc.mem_alloc()\nimport heap32_probe\nheap32_probe.main(%r, _e)\n"
MODES = ("steps", "modules", "objects")

# The steps, each the difference from the previous one.
STEPS = (
    ("empty", "empty interpreter (absolute: what it holds before the probe loads)"),
    ("runtime", "the probe module + the runtime modules the firmware imports"),
    ("fakes", "the stand-ins for machine, network, esp32, socket, tls, select"),
    ("ready", "the board's boot: at.ports.esp32 + at.app.run up to writing ready"),
    ("all", "every other module of lib/at imported on top"),
)


def log(msg):
    sys.stderr.write("heap32: %s\n" % msg)


def venv_tool(name):
    for d in (ROOT / ".venv" / "bin", pathlib.Path(sys.executable).parent):
        p = d / name
        if p.exists():
            return str(p)
    return shutil.which(name)


def board_modules():
    return [py for py in sorted(LIB.rglob("*.py")) if py.relative_to(LIB).as_posix() not in HOST_ONLY]


def module_name(rel):
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def build(source):
    """lib/ (without the host-only modules) and the probe with its fakes, compiled
    as tools/deploy.py compiles for a board, into build/heap32/<mpy|src>."""
    out = BUILD / ("src" if source else "mpy")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    mpy_cross = None if source else venv_tool("mpy-cross")
    if not source and not mpy_cross:
        raise SystemExit("heap32: no mpy-cross (make setup installs it); --source runs the .py files")
    files = [(py, py.relative_to(LIB)) for py in board_modules()]
    files += [(py, pathlib.Path(py.name)) for py in sorted(FAKES.glob("*.py"))]
    for py, rel in files:
        if source:
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(py, dst)
        else:
            dst = out / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([mpy_cross] + MPY_CROSS_FLAGS + ["-s", rel.as_posix(), "-o", str(dst), str(py)], check=True)
    version = None
    if mpy_cross:
        version = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True).stdout.strip()
    names = [module_name(py.relative_to(LIB)) for py in board_modules()]
    return out, names, version


def write_plan(out, boot, rest):
    (out / "heap32_plan.txt").write_text("[boot]\n%s\n[rest]\n%s\n" % ("\n".join(boot), "\n".join(rest)))


def plan(out, names, discover):
    """The import order: each module after the modules it imports, found by a run
    (discover(out) -> the probe's "discover" figures) with __import__ hooked; each
    later import then adds that one module. Modules no boot imports come last."""
    write_plan(out, [], names)
    order = discover(out)
    missing = [n for n in names if n not in order["boot"] + order["rest"]]
    write_plan(out, order["boot"], order["rest"] + missing)


def parse(text):
    """The probe's HEAP32 lines (one per mode), with the qstr_info lines folded in."""
    runs, qstrs, seq, label = [], {}, [], None
    for line in text.splitlines():
        if line.startswith("QSTR "):
            label = line[5:].strip()
        elif line.startswith("qstr pool:") and label:
            qstrs[label] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
            seq.append((label, qstrs[label]["n_total_bytes"]))
            label = None
        elif line.startswith("HEAP32 "):
            r = json.loads(line[7:])
            r["qstr"] = qstrs
            r["qstr_seq"] = seq
            runs.append(r)
            qstrs, seq = {}, []
    return {r["mode"]: r for r in runs}


def run_unix(exe, out, modes, path=None, stub=""):
    env = dict(os.environ, MICROPYPATH=path or str(out))
    text = ""
    for mode in modes:
        p = subprocess.run([exe, "-X", "heapsize=%d" % HEAP, "-c", stub + STUB % mode], env=env,
                           capture_output=True, text=True, cwd=str(BUILD))
        if p.returncode:
            raise SystemExit("heap32: the unix port's probe (%s) failed:\n%s%s" % (mode, p.stdout, p.stderr))
        text += p.stdout
    return parse(text)


def ensure_npm():
    if PKG.exists():
        return
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("heap32: npm is needed for the 32-bit MicroPython (Node 20)")
    log("installing @micropython/micropython-webassembly-pyscript (npm ci --prefix tools/heap32)")
    subprocess.run([npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"], check=True,
                   stdout=sys.stderr)


def run_wasm(out, modes):
    node = shutil.which("node")
    if not node:
        raise SystemExit("heap32: node is needed for the 32-bit MicroPython")
    cmd = [node, str(HERE / "measure.mjs"), "--lib", str(out), "--heap", str(HEAP)]
    for m in modes:
        cmd += ["--mode", m]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(BUILD))
    if p.returncode:
        raise SystemExit("heap32: the webassembly probe failed:\n%s%s" % (p.stdout, p.stderr))
    return parse(p.stdout)


def ratio(a, b):
    return round(a / b, 3) if b else None


def figures(r32, r64):
    """The report: per step, per module, per object kind; 32-bit, 64-bit, factor."""
    def steps(r):
        s = {e[0]: e[1] for e in r["steps"]["steps"]}
        q = r["steps"]["qstr"]
        rows, prev = {}, None
        for name, _ in STEPS:
            abs_ = s[name]
            d = abs_ if prev is None else abs_ - s[prev]
            qb = q.get(name, {}).get("n_total_bytes")
            qp = q.get(prev, {}).get("n_total_bytes") if prev else None
            rows[name] = {"abs": abs_, "delta": d,
                          "qstr_delta": (qb - qp) if qb is not None and qp is not None else None}
            prev = name
        rows["firmware"] = {"abs": None, "delta": s["all"] - s["fakes"],
                            "qstr_delta": q["all"]["n_total_bytes"] - q["fakes"]["n_total_bytes"]}
        rows["boot"] = {"abs": None, "delta": s["ready"] - s["fakes"],
                        "qstr_delta": q["ready"]["n_total_bytes"] - q["fakes"]["n_total_bytes"]}
        return rows

    out = {"steps": {}, "modules": [], "objects": [], "impl": {}, "qstr": {}}
    for bits, r in (("32", r32), ("64", r64)):
        if r:
            out["impl"][bits] = r["steps"]["impl"]
            out["qstr"][bits] = r["steps"]["qstr"]
    s32 = steps(r32)
    s64 = steps(r64) if r64 else None
    for name in [n for n, _ in STEPS] + ["boot", "firmware"]:
        a = s32[name]
        b = s64[name] if s64 else None
        row = {"step": name, "bytes32": a["delta"], "bytes64": b and b["delta"],
               "factor": ratio(b["delta"], a["delta"]) if b else None,
               "qstr32": a["qstr_delta"], "qstr64": b and b["qstr_delta"]}
        if b and a["qstr_delta"] is not None and b["qstr_delta"] is not None:
            row["factor_without_qstr"] = ratio(b["delta"] - b["qstr_delta"], a["delta"] - a["qstr_delta"])
        out["steps"][name] = row
    out["ready_modules"] = r32["steps"]["ready_modules"]
    def qstr_per_module(r):
        q, prev = {}, None
        for label, total in r["modules"]["qstr_seq"]:
            if label.startswith("m ") and prev is not None:
                q[label[2:]] = total - prev
            prev = total
        return q

    m64 = {m[0]: m[1] for m in r64["modules"]["modules"]} if r64 else {}
    q32 = qstr_per_module(r32)
    q64 = qstr_per_module(r64) if r64 else {}
    for name, n, new in r32["modules"]["modules"]:
        row = {"module": name, "bytes32": n, "bytes64": m64.get(name),
               "factor": ratio(m64[name], n) if name in m64 else None,
               "qstr32": q32.get(name), "qstr64": q64.get(name),
               "boot": name in out["ready_modules"], "also_loaded": [k for k in new if k != name]}
        if name in m64 and name in q64 and name in q32:
            row["factor_without_qstr"] = ratio(m64[name] - q64[name], n - q32[name])
        out["modules"].append(row)
    out["free"] = {bits: {e[0]: e[2] for e in r["steps"]["steps"]} for bits, r in (("32", r32), ("64", r64)) if r}
    for bits, r in (("32", r32), ("64", r64)):
        if r:
            mk = r["modules"]["marks"]
            imported = sum(m[1] for m in r["modules"]["modules"] if m[0] in out["ready_modules"])
            out.setdefault("boot_split", {})[bits] = {
                "modules": imported, "objects_built": mk["ready"] - mk["boot_imported"]}
    o64 = {o[0]: o for o in r64["objects"]["objects"]} if r64 else {}
    for name, n, total, net, what in r32["objects"]["objects"]:
        b = o64.get(name)
        out["objects"].append({"kind": name, "n": n, "what": what, "bytes32": net, "bytes64": b and b[3],
                               "each32": net / n, "each64": b and b[3] / n,
                               "factor": ratio(b[3], net) if b else None})
    return out


def table(f, took):
    w = sys.stdout.write
    i32, i64 = f["impl"].get("32"), f["impl"].get("64")
    one = "%d-bit" % f.get("bits", 32)  # --romfs runs one unix port, 32- or 64-bit, in the first column
    two = "64-bit" if i64 else "-"
    w("%s: MicroPython %s %s (%s)\n" % (one, ".".join(map(str, i32[1])), i32[3], i32[4]))
    if i64:
        w("64-bit: MicroPython %s %s (%s)\n" % (".".join(map(str, i64[1])), i64[3], i64[4]))
    w("firmware: %s; GC heap from gc.mem_alloc() after gc.collect(), bytes\n\n" % f["form"])
    w("%-10s %9s %9s %7s %8s %8s %7s  %s\n" % ("step", one, two, "factor", "qstr" + one[:2], "qstr64",
                                             "f-qstr", "what"))
    what = dict(STEPS)
    what["boot"] = "= ready - fakes: the firmware at ready"
    what["firmware"] = "= all - fakes: the whole firmware imported, at ready"
    for name in [n for n, _ in STEPS] + ["boot", "firmware"]:
        r = f["steps"][name]
        w("%-10s %9d %9s %7s %8s %8s %7s  %s\n" % (
            name, r["bytes32"], r["bytes64"] if r["bytes64"] is not None else "-", r["factor"] or "-",
            r["qstr32"] if r["qstr32"] is not None else "-", r["qstr64"] if r["qstr64"] is not None else "-",
            r.get("factor_without_qstr") or "-", what[name]))
    for bits, s in sorted(f.get("boot_split", {}).items()):
        w("  %s boot split: the modules' imports %d, the objects run() builds up to ready %d\n"
          % (one if bits == "32" else "64-bit", s["modules"], s["objects_built"]))
    w("\n%-24s %8s %8s %7s %7s %7s %7s\n" % ("module (import order)", one, two, "factor", "qstr" + one[:2],
                                            "qstr64", "f-qstr"))
    t32 = t64 = q32 = q64 = 0
    for m in f["modules"]:
        t32 += m["bytes32"]
        t64 += m["bytes64"] or 0
        q32 += m["qstr32"] or 0
        q64 += m["qstr64"] or 0
        w("%-24s %8d %8s %7s %7s %7s %7s%s%s\n" % (
            m["module"], m["bytes32"], m["bytes64"] if m["bytes64"] is not None else "-", m["factor"] or "-",
            m["qstr32"], m["qstr64"], m.get("factor_without_qstr") or "-", "" if m["boot"] else "  (not at boot)",
            "  +" + ",".join(m["also_loaded"]) if m["also_loaded"] else ""))
    w("%-24s %8d %8d %7s %7d %7d %7s\n" % ("sum", t32, t64, ratio(t64, t32) if t64 else "-", q32, q64,
                                         ratio(t64 - q64, t32 - q32) if t64 else "-"))
    w("\n%-14s %5s %9s %9s %8s %8s %7s  %s\n" % ("object", "n", "32-bit", "64-bit", "each32", "each64",
                                               "factor", "what (n of them, in a list not counted)"))
    for o in f["objects"]:
        w("%-14s %5d %9d %9s %8g %8s %7s  %s\n" % (o["kind"], o["n"], o["bytes32"], o["bytes64"],
                                                  o["each32"], "%g" % o["each64"] if o["each64"] is not None
                                                  else "-", o["factor"] or "-", o["what"]))
    w("\nqstr32/qstr64: of the step, the growth of the interned-string pools and text"
      " (micropython.qstr_info() n_total_bytes);\nf-qstr: the factor without them. %.1f s\n" % took)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--source", action="store_true", help="load lib/ as .py source, not as .mpy")
    p.add_argument("--no-64", action="store_true", help="only the 32-bit figures")
    p.add_argument("--frozen", metavar="MICROPYTHON",
                   help="a 32-bit unix MicroPython with lib/at frozen into it (BENCHMARKS.md, "
                        "\"Heap\", says how it is built): the firmware as a frozen image")
    p.add_argument("--romfs", metavar="MICROPYTHON", nargs="?", const="",
                   help="the .mpy files in a ROMFS image (vfs.VfsRom), run in place as frozen code is: on "
                        "the given unix MicroPython, .venv/bin/micropython (64-bit) by default")
    args = p.parse_args(argv)
    t0 = time.time()
    if args.frozen:
        return frozen(args)
    if args.romfs is not None:
        return romfs(args)
    ensure_npm()
    out, names, mpy_cross = build(args.source)
    exe = None if args.no_64 else venv_tool("micropython")
    if not args.no_64 and not exe:
        log("no .venv/bin/micropython (make setup): 32-bit figures only")
    if exe:
        plan(out, names, lambda d: run_unix(exe, d, ["discover"])["discover"])
    else:
        plan(out, names, lambda d: run_wasm(d, ["discover"])["discover"])
    r32 = run_wasm(out, MODES)
    r64 = run_unix(exe, out, MODES) if exe else None
    f = figures(r32, r64)
    f["form"] = "lib/ as .py source" if args.source else "lib/ as .mpy (%s)" % mpy_cross
    f["heapsize"] = HEAP
    f["date"] = time.strftime("%Y-%m-%d")
    f["host"] = " ".join(os.uname()[i] for i in (0, 2, 4))
    f["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    took = time.time() - t0
    f["seconds"] = round(took, 1)
    if args.json:
        json.dump(f, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        table(f, took)


def frozen(args):
    """The same probe on a 32-bit unix MicroPython whose image holds lib/at frozen
    (bytecode, constants and qstrs in the image, as on a board built with
    firmware/manifest.py): only the fakes and the probe are files, so every `at`
    import comes from the image."""
    t0 = time.time()
    out, names, _ = build(False)
    fdir = BUILD / "frozen"
    shutil.rmtree(fdir, ignore_errors=True)
    shutil.copytree(out, fdir, ignore=shutil.ignore_patterns("at"))
    exe = str(pathlib.Path(args.frozen).resolve())
    check = subprocess.run([exe, "-c", "import sys, at.engine; print(sys.maxsize)"], capture_output=True,
                           text=True, env=dict(os.environ, MICROPYPATH=".frozen"))
    if check.returncode or check.stdout.strip() != "2147483647":
        raise SystemExit("heap32: %s is not a 32-bit MicroPython with `at` frozen: %r" % (exe, check.stdout
                                                                                       + check.stderr))
    path = ".frozen:" + str(fdir)  # a MICROPYPATH replaces the default, ".frozen" included
    plan(fdir, names, lambda d: run_unix(exe, d, ["discover"], path)["discover"])
    f = figures(run_unix(exe, fdir, MODES, path), None)
    f["form"] = "lib/at frozen into %s" % exe
    report(f, args, t0)


def report(f, args, t0):
    """One unix run's figures (--frozen, --romfs): as JSON or as the table."""
    f["heapsize"] = HEAP
    f["date"] = time.strftime("%Y-%m-%d")
    if args.json:
        json.dump(f, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        table(f, time.time() - t0)


def romfs(args):
    """The .mpy build in a ROMFS image, mounted with vfs.VfsRom: the loader keeps
    bytecode, string constants and qstr text in the image (py/persistentcode.c,
    mp_reader_try_read_rom; v1.25+ with MICROPY_VFS_ROM, which the unix port has),
    so what the GC heap holds is close to a frozen image's: the modules' objects,
    their qstr entries and the raw-code records. Runs on the 64-bit unix port,
    which CI has, where a frozen build needs MicroPython's source."""
    t0 = time.time()
    out, names, _ = build(False)
    rdir = BUILD / "romfs"
    shutil.rmtree(rdir, ignore_errors=True)
    shutil.copytree(out, rdir, ignore=shutil.ignore_patterns("at"))
    image = romfs_tool.image(out, rdir / "at.romfs")
    exe = str(pathlib.Path(args.romfs).resolve()) if args.romfs else venv_tool("micropython")
    if not exe:
        raise SystemExit("heap32: no .venv/bin/micropython (make setup)")
    # Mounted before the first figure (neither the image's bytes nor the mount count);
    # a MICROPYPATH without .frozen puts /rom first: an image with `at` frozen in must not serve it.
    stub = romfs_tool.mount(image)
    plan(rdir, names, lambda d: run_unix(exe, d, ["discover"], stub=stub)["discover"])
    r = run_unix(exe, rdir, MODES, stub=stub)
    f = figures(r, None)
    f["bits"] = 64 if r["steps"]["impl"][2] else 32  # the probe's sys.maxsize > 2 ** 32
    f["form"] = "lib/ as .mpy in a ROMFS image, on %s (%d-bit)" % (exe, f["bits"])
    report(f, args, t0)


def locked(fn):
    """Run fn with build/heap32 to ourselves: every run rebuilds it in place, so two
    at once (pytest -n, a bench beside the tests) would pull it from under each
    other. The second waits for the first."""
    import fcntl
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return fn()


if __name__ == "__main__":
    locked(main)
