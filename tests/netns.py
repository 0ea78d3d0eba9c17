"""A private network namespace for tests that need broadcast or multicast on
loopback: the virtual board runs inside it (`ip netns exec`), and the test makes
its peer sockets inside it from a thread that joined it with setns(2)."""
import ctypes
import os
import shutil
import subprocess
import threading

CLONE_NEWNET = 0x40000000


def available():
    return os.geteuid() == 0 and shutil.which("ip") is not None


class Netns:
    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        for c in ("ip link set lo up", "ip link set lo multicast on",
                  "ip route add 224.0.0.0/4 dev lo", "ip route add 255.255.255.255/32 dev lo"):
            subprocess.run(["ip", "netns", "exec", name] + c.split(), check=True)
        self.prefix = ["ip", "netns", "exec", name]

    def socket(self, *args):
        """A socket created inside the namespace (it stays there whatever thread uses it)."""
        out = {}

        def make():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/var/run/netns/" + self.name, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    out["err"] = OSError(ctypes.get_errno(), "setns")
                    return
            finally:
                os.close(fd)
            import socket
            out["sock"] = socket.socket(*args)

        t = threading.Thread(target=make)
        t.start()
        t.join()
        if "err" in out:
            raise out["err"]
        return out["sock"]

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)
