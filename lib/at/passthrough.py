# Passthrough (transparent) mode: AT+CIPMODE=1, then AT+CIPSEND with no
# arguments. Every UART byte goes to link 0 (packed by the Pump), every byte
# from the link goes to the UART raw; a lone "+++" ends it. When a client link
# breaks, it reconnects every AT+CIPRECONNINTV x 100 ms; meanwhile UART data
# waits in the Pump's buffer and then the UART is held back: nothing is lost.
from at.pump import Pump
from at.task import Task
from at.errors import ATError

PACK = 2920  # ESP-AT sends passthrough data in chunks of at most 2,920 bytes


class Passthrough(Pump):
    def __init__(self, eng, link):
        Pump.__init__(self, eng, link, PACK)
        self.spec = (link.type, link.host, link.port, link.lport if link.udp else 0, link.udp_mode)
        self.task = None
        self.retry = None
        eng.net.start_raw(self)

    def on_plus(self):
        self.quit()

    def on_fail(self, err):
        # A send failed: the reader reports the close; keep the data for later.
        if self.alive():
            self.net.close(self.link, self.sysmsg(4))

    def sysmsg(self, bit):
        return self.eng.cfg.get("sysmsg") & bit

    def link_closed(self):
        """Net calls this when link 0 goes away while we run."""
        self.waiting = False
        if self.link.server or self.link.udp:
            return
        self._schedule()

    def _schedule(self):
        ms = self.eng.cfg.get("cipreconnintv") * 100
        self.retry = self.eng.loop.later(ms, self._reconnect)

    def _reconnect(self):
        self.retry = None
        typ, host, port, lport, mode = self.spec
        net = self.net
        gen = net.open(0, typ, host, port, net.tcpopt[0][3], "", 0, lport, mode, announce=self.sysmsg(4))
        self.task = Task(self.eng.loop, gen, self._connected)

    def _connected(self, result, err):
        self.task = None
        if err is not None:
            self._schedule()
            return
        self.link = self.net.links[0]
        self.net.start_raw(self)
        self.flush()

    def quit(self):
        self.stop()
        if self.retry is not None:
            self.eng.loop.cancel(self.retry)
            self.retry = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.net.stop_raw()
        eng = self.eng
        eng.resume(b"+QUITT\r\n" if self.sysmsg(1) else b"")
        eng.unhold()


def run(eng, link, prompt=True):
    """The handler body of AT+CIPSEND in passthrough mode (a generator)."""
    pt = Passthrough(eng, link)
    return (yield eng.stream(pt.guard.sink, prompt))


def boot(eng):
    """At power-up: AT+SAVETRANSLINK's link, if one is saved (commands/tcpip.py's init)."""
    saved = eng.cfg.get("savetranslink")
    if saved:
        Task(eng.loop, _enter(eng, saved))


def _enter(eng, saved):
    """At power-up: wait for an address, connect (retrying), enter passthrough."""
    typ, host, port, extra = saved
    net = eng.net
    while not eng.wifi.has_ip():
        yield 100
    net.mode = 1
    net.mux = 0
    udp = typ[0] == "U"
    while True:
        try:
            yield from net.open(0, typ, host, port, 0 if udp else extra, "", 0,
                                extra if udp else 0, 0, announce=eng.cfg.get("sysmsg") & 4)
            break
        except ATError:
            yield eng.cfg.get("cipreconnintv") * 100
    while eng.task is not None:  # a command is running: enter when it is done
        yield 50
    eng.start(run(eng, net.links[0], prompt=False))
