"""tools/deploy.py without a board: the mpremote commands it would run, and
that every module of lib/ compiles with mpy-cross (as deploy does)."""
import pathlib
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import deploy  # noqa: E402

LIB = ROOT / "lib"
MODULES = sorted(p.relative_to(LIB).as_posix() for p in LIB.rglob("*.py"))
# What a real board gets: not the virtual board's adapter nor the simulated air.
HOST_ONLY = ["at/ports/air.py", "at/ports/unix.py"]
BOARD_MODULES = [m for m in MODULES if m not in HOST_ONLY]


def dry_run(*args):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "deploy.py"), "--dry-run", *args],
                       capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    return [ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")], r.stdout


def test_dry_run_prints_the_mpremote_commands():
    lines, out = dry_run("--port", "/dev/ttyUSB0")
    cmds = [shlex.split(ln) for ln in lines]
    assert all(c[:3] == ["mpremote", "connect", "/dev/ttyUSB0"] for c in cmds), lines
    rest = [c[3:] for c in cmds]
    assert rest[0] == ["fs", "mkdir", ":lib"]
    assert rest[1] == ["fs", "cp", "-r", str(ROOT / "build" / "esp32" / "lib" / "at"), ":lib"]
    assert rest[2] == ["fs", "cp", str(ROOT / "boot.py"), str(ROOT / "main.py"), ":"]
    assert rest[3] == ["fs", "rm", ":fw/state.json"]  # deployed lib/ wins over an OTA-installed version
    assert rest[4] == ["reset"]
    assert len(rest) == 5
    assert "compile %d modules" % len(BOARD_MODULES) in out


def test_dry_run_clean_and_at_port():
    lines, out = dry_run("--port", "/dev/ttyACM0", "--clean", "--at-port", "/dev/ttyUSB1", "--at-baud", "921600")
    assert shlex.split(lines[1])[3:] == ["fs", "rm", "-r", ":lib/at"]
    assert 'wait for "ready" on /dev/ttyUSB1 at 921600 baud' in out


def test_dry_run_changes_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(deploy.subprocess, "run", lambda *a, **k: calls.append(a))
    assert deploy.main(["--dry-run", "--port", "/dev/ttyUSB0"]) == 0
    assert calls == []


def test_port_required_without_dry_run(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    with pytest.raises(SystemExit) as e:
        deploy.main([])
    assert e.value.code == 2


def test_mkdir_of_an_existing_lib_is_tolerated(monkeypatch, capsys):
    class R:
        returncode = 1
        stdout = ""
        stderr = "mpremote: mkdir: lib: File exists.\n"

    monkeypatch.setattr(deploy.subprocess, "run", lambda *a, **k: R)
    argv, tolerated = deploy.mpremote_steps("/dev/ttyUSB0")[0]
    deploy.run_step(argv, tolerated)  # no SystemExit
    R.stderr = "mpremote: failed to access /dev/ttyUSB0 (it may be in use by another program)\n"
    with pytest.raises(SystemExit):
        deploy.run_step(argv, tolerated)


def test_host_only_modules_never_reach_a_board(tmp_path):
    """lib/at/ports/unix.py and air.py are the virtual board's: deploy neither
    compiles them nor leaves an old .mpy of them in the tree it copies."""
    assert sorted(deploy.HOST_ONLY) == HOST_ONLY and all((LIB / m).exists() for m in HOST_ONLY)
    assert [p.relative_to(LIB).as_posix() for p in deploy.board_modules()] == BOARD_MODULES
    src, out = tmp_path / "src", tmp_path / "out"
    for m in ("at/__init__.py", "at/ports/__init__.py", "at/ports/esp32.py") + tuple(HOST_ONLY):
        (src / m).parent.mkdir(parents=True, exist_ok=True)
        (src / m).write_text("X = 1\n")
    (out / "at" / "ports").mkdir(parents=True)
    (out / "at" / "ports" / "unix.mpy").write_bytes(b"M")  # left by an older deploy
    deploy.compile_lib(src, out)
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mpy"))
    assert got == ["at/__init__.mpy", "at/ports/__init__.mpy", "at/ports/esp32.mpy"], got


def test_every_lib_module_compiles_with_mpy_cross(tmp_path):
    out = tmp_path / "lib"
    mpys = deploy.compile_lib(LIB, out, skip=())  # the host-only modules too: the virtual board runs them
    assert sorted(p.relative_to(out).with_suffix(".py").as_posix() for p in mpys) == MODULES
    for m in mpys:
        data = m.read_bytes()
        assert data[:1] == b"M" and data[1] == 6, m  # .mpy version 6 (MicroPython >= 1.23)
    assert (out / "at" / "ports" / "esp32.mpy").exists()


def test_compiled_tree_imports_under_micropython(tmp_path):
    """The .mpy tree (not the sources) loads: the ESP32 port on the twin's stand-ins
    (tools/twin), from bytecode, without the host-only modules."""
    out = tmp_path / "lib"
    deploy.compile_lib(LIB, out)
    mp = ROOT / ".venv" / "bin" / "micropython"
    code = ("import sys; sys.path[:0] = [%r, %r]; "
            "import at.ports.esp32 as e, at.app; print(e.__file__)") % (str(ROOT / "tools" / "twin"), str(out))
    r = subprocess.run([str(mp), "-c", code], capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip().endswith("esp32.mpy"), r.stdout + r.stderr


def test_wait_ready_on_a_serial_port():
    """The last step, against a pseudo-terminal standing in for the AT UART adapter."""
    import os
    import threading
    import time
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        t = threading.Timer(0.3, lambda: os.write(master, b"\x00garbage\r\nready\r\n"))
        t.start()
        assert deploy.wait_ready(path, 115200, 5.0) is True
        t.join()
        start = time.monotonic()
        assert deploy.wait_ready(path, 115200, 0.5) is False
        assert time.monotonic() - start < 3
    finally:
        os.close(master)
        os.close(slave)
