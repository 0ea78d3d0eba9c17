"""The bench behind `make bench` (run it as `python tools/bench`; __main__.py
holds the command line, the section list and the report). One module a section
(latency.py, cipsend.py, ...), the shared measuring code in common.py and the
baseline programs' host side in baseline.py.

The test bench's helpers are imported from tests/ (board.py, peers.py,
tlspeers.py, netpeers.py), which is put on sys.path here, as is tools/ for
vboard.py."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
for _p in (ROOT / "tests", ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
