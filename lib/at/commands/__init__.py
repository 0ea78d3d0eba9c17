# Command groups, each a module with a COMMANDS list of rows
# (name, test, query, set, execute) like ESP-AT's esp_at_cmd_t. To add a group,
# add its module name here; to add a command without touching the firmware,
# drop a user_commands.py with a COMMANDS list on the board (see README).
GROUPS = ("basic", "wifi", "tcpip", "sendx", "passthrough", "ssl", "mfg", "dns", "sntp", "ping", "mdns", "ota")


def load(at):
    for name in GROUPS:
        mod = __import__("at.commands." + name, None, None, ("COMMANDS",))
        at.add(mod.COMMANDS)
        if hasattr(mod, "init"):
            mod.init(at)
    try:
        import user_commands
    except ImportError:
        return
    at.add(user_commands.COMMANDS)
    if hasattr(user_commands, "init"):
        user_commands.init(at)
