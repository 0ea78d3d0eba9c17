"""The custom-command story: a user_commands.py on the board's filesystem adds
commands without touching the firmware (the README's example, verbatim)."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_example():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```python\n(# user_commands\.py.*?)```", text, re.S)
    assert m, "README has no user_commands.py example"
    return m.group(1)


def test_user_command_from_readme(raw_dut, vboard):
    flash = pathlib.Path(vboard.log).parent / "flash"
    (flash / "user_commands.py").write_text(readme_example())
    try:
        d = raw_dut
        d.reset(restore=False)
        d.ok("ATE0")
        assert d.cmd("AT+HELLO?") == b'+HELLO:"world"\r\n\r\nOK\r\n'
        assert d.cmd('AT+HELLO="board"') == b"\r\nOK\r\n"
        assert d.cmd("AT+HELLO?") == b'+HELLO:"board"\r\n\r\nOK\r\n'
        assert d.cmd("AT+HELLO=1") == b"\r\nERROR\r\n"
        assert d.cmd("AT+HELLO") == b"\r\nERROR\r\n"
        assert b'"AT+HELLO",0,1,1,0' in d.cmd("AT+CMD?")
    finally:
        (flash / "user_commands.py").unlink()
        raw_dut.reset(restore=False)
