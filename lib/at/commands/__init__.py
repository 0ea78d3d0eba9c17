# Command groups, each a module with a COMMANDS list of rows, row(name, test=,
# query=, set=, execute=) like ESP-AT's esp_at_cmd_t, in ESP-AT's order.
#
# CORE groups are imported at boot: what a host uses at its peak (links, sends,
# passthrough) is there before the heap is in pieces (BENCHMARKS.md, "Heap": the
# sends imported at the peak needed more heap than at boot). The others are
# imported when one of their commands first arrives: INDEX names them, a line a
# group, each command with its forms as a hex digit (test 8, query 4, set 2,
# execute 1, as AT+CMD? shows them), so the board knows every command, in order,
# with neither their code nor a row of theirs in the heap. One string: frozen,
# it stays in flash; from a .mpy file it is one object (as tuples it was 3 KB,
# and their rows 2 KB more: BENCHMARKS.md, "A command index in one string").
# tests/test_static.py checks INDEX against the modules.
#
# PASSING groups hold commands a host sends once, to set up (AT+GMR, AT+CWLAP,
# AT+UART_DEF ...): where their code takes heap (.mpy files on a board without
# PSRAM: `make deploy` on a WROOM) they are imported for one command and dropped
# after it, so the heap holds only what the links use. Frozen (or on a board
# with room) they stay, as the others. Their modules keep no state of their own
# (it is on the engine and in the settings) and leave nothing behind that runs
# later, or the next import would make a second copy of it.
#
# To add a group, add its module here (to CORE, or to INDEX with its commands);
# to add a command without touching the firmware, drop a user_commands.py with a
# COMMANDS list on the board (see README).
from at.errors import ATError, code, OP_ERROR

CORE = ("basic", "wifi", "tcpip", "sendx")
# Room in the engine's table (every command, once used) and in its list of the
# core groups' rows and user_commands.py's, made at boot (tests/test_static.py)
TABLE = 96
LISTED = 36
INDEX = (
    "\nsystem +GMR 1 +CMD 4 +SYSSTORE 6 +SYSMSG 6 +SYSLOG 6 +SYSRAM 6"
    "\nsysconf +RFPOWER 6 +SYSTIMESTAMP 6 +UART_CUR 6 +UART_DEF 6"
    "\nwificonf +CWRECONNCFG 6 +CWDHCP 6 +CWAUTOCONN 6 +CIPSTAMAC 6 +CWHOSTNAME 6 +CWCOUNTRY 6 +SLEEP 6 +GSLP 2"
    "\nwifiap +CWLAPOPT 2 +CWLAP 3 +CWSAP 6 +CWLIF 1 +CIPAPMAC 4 +CIPAP 4"
    "\ntcpconf +CIPDINFO 6 +CIPV6 6 +CIPCONNPERSIST 6 +CIPSERVERMAXCONN 6 +CIPSTO 6 +CIPRECVTYPE 6 +CIPTCPOPT 6"
    "\npassthrough +TRANSINTVL 6 +CIPRECONNINTV 6 +SAVETRANSLINK 2"
    "\nssl +CIPSSLCCONF 6 +CIPSSLCCIPHER 6 +CIPSSLCCN 6 +CIPSSLCSNI 6 +CIPSSLCALPN 6 +CIPSSLCPSK 6 +CIPSSLCPSKHEX 6"
    "\nmfg +SYSMFG 6"
    "\ndns +CIPDNS 6 +CIPDOMAIN 2"
    "\nsntp +CIPSNTPCFG 6 +CIPSNTPTIME 4 +CIPSNTPINTV 6"
    "\nping +PING 2"
    "\nmdns +MDNS 2"
    "\nota +CIUPDATESRV 6 +CIPFWVER 4 +CIUPDATE 7"
    "\nnothere +CWSTARTSMART 3 +CWSTOPSMART 1 +WPS 2 +CWJEAP 6"
    "\n"
)
PASSING = ("system", "sysconf", "wificonf", "wifiap", "tcpconf", "passthrough")
LEAVES = ("at.version", "at.caps")  # modules only a passing group imports at boot: they go with it
core_rows = 0  # load(): how many rows the core groups put in eng.rows (AT+CMD? lists INDEX after them)
_lean = False  # load(): passing groups are dropped after their command


def find(name):
    """(group, forms) of a command in INDEX, or None. "+" starts each name and
    nothing else: a match that starts at a "+" and ends before a space is one
    whole name."""
    if name[:1] != "+":
        return None
    i = INDEX.find(name + " ")
    if i < 0 or " " in name:
        return None
    g = INDEX.rfind("\n", 0, i) + 1
    return INDEX[g:INDEX.find(" ", g)], int(INDEX[i + len(name) + 1], 16)


def on_use(eng, name, kind):
    """The engine's hook for a command not in its table: import its group and
    return its row; None if no group has it."""
    f = find(name)
    if f is None:
        return None
    if not 16 >> kind & f[1]:
        raise ATError(code(OP_ERROR))  # a form the command does not have: no import for it
    group(eng, f[0])
    if _lean and f[0] in PASSING:
        eng.passing = f[0]  # dropped once the command has finished (eng.unload: passed())
    return eng.table.get(name)


def group(eng, name):
    """Import a group and put its rows in the table; an on-use group's only where
    no row has the name (user_commands.py's may)."""
    mod = __import__("at.commands." + name, None, None, ("COMMANDS",))
    if hasattr(mod, "init"):
        mod.init(eng)
    if name in CORE:
        eng.add(mod.COMMANDS)
        return
    t = eng.table
    for r in mod.COMMANDS:
        if r[0] not in t:
            t[r[0]] = r


def row(name, test=None, query=None, set=None, execute=None):
    """One command's row, as ESP-AT's esp_at_cmd_t: its name and the handler of
    each form it has (AT+X=?, AT+X?, AT+X=..., AT+X)."""
    return (name, test, query, set, execute)


def drop(*modules):
    """Forget modules once they are idle (at.ota, at.mdns, a passing group): their
    code and tables go back to the heap (one collection for all of them); the
    next use imports them again. A module not loaded is skipped."""
    import sys
    import gc

    for module in modules:
        sys.modules.pop(module, None)
        parent, _, name = module.rpartition(".")
        try:
            delattr(sys.modules[parent], name)
        except (KeyError, AttributeError):
            pass
    gc.collect()


def code_in_heap():
    """Is our code in the heap? .mpy files on a filesystem are read into it; frozen
    code (__file__ "at/...py") and a ROMFS image ("/rom/...") run from flash."""
    f = __file__
    return f.endswith(".mpy") and not f.startswith("/rom")


def passed(eng, name):
    """A passing group's command is done: its rows out of the table (only its own:
    a user's row stays), its module (and LEAVES) out of the heap."""
    import sys

    mod = sys.modules.get("at.commands." + name)
    r = None
    if mod is not None:
        t = eng.table
        for r in mod.COMMANDS:
            if t.get(r[0]) is r:
                del t[r[0]]
    mod = r = None  # nothing of the module held here while drop() collects
    drop("at.commands." + name, *LEAVES)


def load(eng):
    global core_rows, _lean
    for name in CORE:
        group(eng, name)
    core_rows = len(eng.rows)
    _lean = eng.board.small_heap and code_in_heap()
    eng.on_use = on_use
    eng.unload = passed
    try:
        import user_commands
    except ImportError:
        return
    eng.add(user_commands.COMMANDS)
    if hasattr(user_commands, "init"):
        user_commands.init(eng)
