# Command groups, each a module with a COMMANDS list of rows, row(name, test=,
# query=, set=, execute=) like ESP-AT's esp_at_cmd_t, in ESP-AT's order.
#
# CORE groups are imported at boot: what a host uses at its peak (links, sends,
# passthrough) is there before the heap is in pieces (BENCHMARKS.md, "Heap": the
# sends imported at the peak needed more heap than at boot). The others are
# imported when one of their commands first arrives: ON_USE names their commands
# and which of the four forms each has ("1" or "0" for test, query, set,
# execute, as AT+CMD? shows them), so the table knows every command, in order,
# without their code in the heap. Constants only (in a frozen image they stay in flash: no string is made
# at boot). tests/test_static.py checks ON_USE against the modules.
#
# To add a group, add its module here (to CORE, or to ON_USE with its index); to
# add a command without touching the firmware, drop a user_commands.py with a
# COMMANDS list on the board (see README).
from at.engine import Later

CORE = ("basic", "wifi", "tcpip", "sendx", "passthrough")
TABLE = 96  # room in the command table, made at boot before the groups load (tests/test_static.py)
ON_USE = (
    ("ssl",
        ("+CIPSSLCCONF", "0110"), ("+CIPSSLCCIPHER", "0110"), ("+CIPSSLCCN", "0110"), ("+CIPSSLCSNI", "0110"),
        ("+CIPSSLCALPN", "0110"), ("+CIPSSLCPSK", "0110"), ("+CIPSSLCPSKHEX", "0110")),
    ("mfg", ("+SYSMFG", "0110")),
    ("dns", ("+CIPDNS", "0110"), ("+CIPDOMAIN", "0010")),
    ("sntp", ("+CIPSNTPCFG", "0110"), ("+CIPSNTPTIME", "0100"), ("+CIPSNTPINTV", "0110")),
    ("ping", ("+PING", "0010")),
    ("mdns", ("+MDNS", "0010")),
    ("ota", ("+CIUPDATESRV", "0110"), ("+CIPFWVER", "0100"), ("+CIUPDATE", "0111")),
    ("nothere", ("+CWSTARTSMART", "0011"), ("+CWSTOPSMART", "0001"), ("+WPS", "0010"), ("+CWJEAP", "0110")),
)


def group(eng, name):
    """Import a group and put its rows in the table (in place of its index's)."""
    mod = __import__("at.commands." + name, None, None, ("COMMANDS",))
    if hasattr(mod, "init"):
        mod.init(eng)
    eng.add(mod.COMMANDS)


def row(name, test=None, query=None, set=None, execute=None):
    """One command's row, as ESP-AT's esp_at_cmd_t: its name and the handler of
    each form it has (AT+X=?, AT+X?, AT+X=..., AT+X)."""
    return (name, test, query, set, execute)


def drop(module):
    """Forget a big service module once it is idle (at.ota, at.mdns): its code and
    tables go back to the heap; the next use imports it again."""
    import sys
    import gc
    import at

    sys.modules.pop(module, None)
    try:
        delattr(at, module.split(".")[-1])
    except AttributeError:
        pass
    gc.collect()


def index_rows(name, index):
    later = Later(group, name)
    return [(cmd,) + tuple(later if f == "1" else None for f in forms) for cmd, forms in index]


def load(eng):
    for name in CORE:
        group(eng, name)
    for entry in ON_USE:
        eng.add(index_rows(entry[0], entry[1:]))
    try:
        import user_commands
    except ImportError:
        return
    eng.add(user_commands.COMMANDS)
    if hasattr(user_commands, "init"):
        user_commands.init(eng)
