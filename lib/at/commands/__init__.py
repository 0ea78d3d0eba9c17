# Command groups, each a module with a COMMANDS list of rows, row(name, test=,
# query=, set=, execute=) like ESP-AT's esp_at_cmd_t, in ESP-AT's order.
#
# CORE groups are imported at boot: what a host uses at its peak (links, sends,
# passthrough) is there before the heap is in pieces (BENCHMARKS.md, "Heap": the
# sends imported at the peak needed more heap than at boot). The others are
# imported when one of their commands first arrives: ON_USE names their commands
# and the forms each has (bits for test, query, set, execute, as AT+CMD? shows
# them), so the table knows every command, in order, without their code in the
# heap. Constants only, flat: frozen, they stay in flash; from a .mpy file each
# string and tuple is an object in the heap (a pair per command cost 80 bytes).
# tests/test_static.py checks ON_USE against the modules.
#
# PASSING groups hold commands a host sends once, to set up (AT+GMR, AT+CWLAP,
# AT+UART_DEF ...): where their code takes heap (.mpy files on a board without
# PSRAM: `make deploy` on a WROOM) they are imported for one command and dropped
# after it, so the heap holds only what the links use. Frozen (or on a board
# with room) they stay, as the others. Their modules keep no state of their own
# (it is on the engine and in the settings) and leave nothing behind that runs
# later, or the next import would make a second copy of it.
#
# To add a group, add its module here (to CORE, or to ON_USE with its index); to
# add a command without touching the firmware, drop a user_commands.py with a
# COMMANDS list on the board (see README).
from at.engine import Later

CORE = ("basic", "wifi", "tcpip", "sendx")
TABLE = 96  # room in the command table, made at boot before the groups load (tests/test_static.py)
ON_USE = (
    ("system",
        "+GMR", 0b0001, "+CMD", 0b0100, "+RESTORE", 0b0001, "+SYSSTORE", 0b0110, "+SYSMSG", 0b0110,
        "+SYSLOG", 0b0110, "+SYSRAM", 0b0110),
    ("sysconf", "+RFPOWER", 0b0110, "+SYSTIMESTAMP", 0b0110, "+UART_CUR", 0b0110, "+UART_DEF", 0b0110),
    ("wificonf",
        "+CWRECONNCFG", 0b0110, "+CWDHCP", 0b0110, "+CWAUTOCONN", 0b0110, "+CIPSTAMAC", 0b0110,
        "+CWHOSTNAME", 0b0110, "+CWCOUNTRY", 0b0110, "+SLEEP", 0b0110, "+GSLP", 0b0010),
    ("wifiap",
        "+CWLAPOPT", 0b0010, "+CWLAP", 0b0011, "+CWSAP", 0b0110, "+CWLIF", 0b0001, "+CIPAPMAC", 0b0100,
        "+CIPAP", 0b0100),
    ("tcpconf",
        "+CIPDINFO", 0b0110, "+CIPV6", 0b0110, "+CIPCONNPERSIST", 0b0110, "+CIPSERVERMAXCONN", 0b0110,
        "+CIPSTO", 0b0110, "+CIPRECVTYPE", 0b0110, "+CIPTCPOPT", 0b0110),
    ("passthrough", "+TRANSINTVL", 0b0110, "+CIPRECONNINTV", 0b0110, "+SAVETRANSLINK", 0b0010),
    ("ssl",
        "+CIPSSLCCONF", 0b0110, "+CIPSSLCCIPHER", 0b0110, "+CIPSSLCCN", 0b0110, "+CIPSSLCSNI", 0b0110,
        "+CIPSSLCALPN", 0b0110, "+CIPSSLCPSK", 0b0110, "+CIPSSLCPSKHEX", 0b0110),
    ("mfg", "+SYSMFG", 0b0110),
    ("dns", "+CIPDNS", 0b0110, "+CIPDOMAIN", 0b0010),
    ("sntp", "+CIPSNTPCFG", 0b0110, "+CIPSNTPTIME", 0b0100, "+CIPSNTPINTV", 0b0110),
    ("ping", "+PING", 0b0010),
    ("mdns", "+MDNS", 0b0010),
    ("ota", "+CIUPDATESRV", 0b0110, "+CIPFWVER", 0b0100, "+CIUPDATE", 0b0111),
    ("nothere", "+CWSTARTSMART", 0b0011, "+CWSTOPSMART", 0b0001, "+WPS", 0b0010, "+CWJEAP", 0b0110),
)
PASSING = ("system", "sysconf", "wificonf", "wifiap", "tcpconf", "passthrough")


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
    """Forget a module once it is idle (at.ota, at.mdns, a passing group): its code
    and tables go back to the heap; the next use imports it again."""
    import sys
    import gc

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


def index_rows(later, entry):
    """The rows of an ON_USE entry, each form it has handled by `later`. Each row is
    made in one piece, with no temporary between two rows: they live for good, and
    a generator's garbage between them left the table in 208-byte holes (12 KB of
    them on a WROOM's heap at `ready`: BENCHMARKS.md, "Heap")."""
    rows: "list" = [None] * (len(entry) // 2)
    for i in range(len(rows)):
        f = entry[2 * i + 2]
        rows[i] = (entry[2 * i + 1], later if f & 8 else None, later if f & 4 else None,
                   later if f & 2 else None, later if f & 1 else None)
    return rows


def passed(eng, later):
    """A passing group's command is done: its index again in the table, its module out."""
    for entry in ON_USE:
        if entry[0] == later.name:
            eng.add(index_rows(later, entry))
    drop("at.commands." + later.name)


def load(eng):
    for name in CORE:
        group(eng, name)
    lean = eng.board.small_heap and code_in_heap()
    for entry in ON_USE:
        name = entry[0]
        eng.add(index_rows(Later(group, name, passed if lean and name in PASSING else None), entry))
    try:
        import user_commands
    except ImportError:
        return
    eng.add(user_commands.COMMANDS)
    if hasattr(user_commands, "init"):
        user_commands.init(eng)
