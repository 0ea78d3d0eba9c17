# Entry point on every board: pick the port, then run the AT firmware.
import sys

if sys.platform == "linux":
    from at.ports.unix import Board
else:
    from at.ports.esp32 import Board

from at import app

app.run(Board())
