"""For `watch`: every QEMU's connections on the migration ports, whichever guest it runs, so that
each migration seen during the window is reported on its own (Pacemaker moves several at once).

Each sample lists the sockets on the watched ports (kernel-filtered sock_diag), or after a
wake-up that names the new connections only their sockets (one hash lookup each), and looks up
the owner of any inode not seen before with one walk over /proc; a QEMU owner names its guest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from verifier import sockdiag
from verifier.model import Endpoints, OwnedFlow
from verifier.owners.pacing import Pacer
from verifier.owners.processes import LIBVIRT_DAEMONS, PROC, OwnerFinder, PortRanges, Process, netns_of
from verifier.sockdiag import ListSockets


class DomainsSampler:
    def __init__(
        self,
        ports: PortRanges,
        list_sockets: ListSockets | None = None,
        proc: Path = PROC,
        interval: float = 0.05,
        idle_interval: float = 1.0,
    ) -> None:
        self._ports = tuple(ports)
        self._list = sockdiag.ThreadLister(list_sockets)  # opened and closed in the sampling thread
        self._netns = netns_of(proc, "self")
        self._pacer = Pacer(interval, idle_interval)
        self._thread: threading.Thread | None = None
        self._known: dict[int, Process | None] = {}
        self._owners = OwnerFinder(proc, self._netns)
        self._flows: dict[tuple[str, int, str, int], OwnedFlow] = {}
        self.problem: str | None = None

    def start(self, woken: bool = False) -> None:
        """WOKEN: the capture calls wake() on new connections; between them one dump per
        `idle_interval` (after a wake-up, every `interval` for FAST_FOR seconds). Else every `interval`."""
        self._pacer.woken_mode = woken
        self._thread = threading.Thread(target=self._run, name="owners-watch", daemon=True)
        self._thread.start()

    def wake(self, conns: Sequence[Endpoints] = ()) -> None:
        """New connections on the ports: look now (at CONNS' sockets alone when named)."""
        self._pacer.wake(conns)

    def stop(self) -> tuple[OwnedFlow, ...]:
        """Every connection seen; the last look happens in the thread, which owns the lister."""
        if self._thread is not None:
            self._pacer.stop()
            self._thread.join()
            self._thread = None
        else:
            self._finish()
        return tuple(self._flows.values())

    def _run(self) -> None:
        self._pacer.run(lambda _woken, named: self._sample(named), self._finish)

    def _finish(self) -> None:
        try:
            self._sample()
        finally:
            self._list.close()

    def _sample(self, named: Sequence[Endpoints] = ()) -> bool:
        """One dump, or the NAMED connections looked up; True when every connection's owner is
        settled (none is in libvirtd's hands alone, waiting for QEMU to take it): the pacer then
        skips the fast looks after a wake-up, each a socket dump, for a migration that needs none."""
        try:
            sockets = self._list.lookup(named) if named else self._list(self._ports)
            self._owners.new_look()
            for s in sockets:
                key = s.endpoints
                if s.state == "LISTEN":
                    # Which local ports serve: a connection the capture saw no SYN of is oriented
                    # by them (attribute.py). Nobody's look-up: a listener carries no bytes.
                    self._flows.setdefault(key, s.owned(None, "unknown", "foreign"))
                    continue
                if not s.inode or self._settled(key):
                    continue
                if s.inode not in self._known or self._handing_over(s.inode):
                    self._known[s.inode] = self._owners.find(s.inode)
                p = self._known[s.inode]
                role = "migration" if p is not None and p.guest is not None else "foreign"
                owner = p.owner if p is not None else "unknown"
                self._flows[key] = s.owned(p.pid if p else None, owner, role)
        except Exception as exc:  # the thread boundary: a lost sampler must not fail silently
            self.problem = f"ownership sampling failed: {type(exc).__name__}: {exc}"
            return False
        return all(self._settled(key) for key in self._flows)

    def _settled(self, key: tuple[str, int, str, int]) -> bool:
        flow = self._flows.get(key)
        return flow is not None and not (flow.pid is not None and self._handing_over(flow.inode))

    def _handing_over(self, inode: int) -> bool:
        """A socket last seen held by a libvirt daemon alone: libvirtd connects a migration socket
        and passes it to QEMU, so its owner is looked up again until QEMU holds it."""
        p = self._known.get(inode)
        return p is not None and p.guest is None and p.name in LIBVIRT_DAEMONS
