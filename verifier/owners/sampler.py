"""Sample, while a migration runs, which TCP connections the domain's QEMU owns, and whose the
other connections on the watched ports are.

Other programs use the migration ports too (GlusterFS bricks allocate from 49152 up; libvirt just
skips a busy port), so only ownership says which bytes are the migration's: QEMU's /proc/PID/fd
links read `socket:[INODE]` and sock_diag maps each inode to its 4-tuple.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from verifier import sockdiag
from verifier.capture.counting import in_ranges
from verifier.model import OwnedFlow, Ownership
from verifier.owners.processes import (
    PROC,
    PortRanges,
    Process,
    ProcessIndex,
    find_qemu_pid,
    is_guest_qemu,
    netns_of,
    socket_inodes,
)
from verifier.sockdiag import TcpSocket


class OwnershipSampler:
    """Samples in a thread which TCP connections the guest's QEMU owns, until stop(): multifd and NBD
    connections open after the main one, and one that closed before stop() still counts. A
    connection opened and closed entirely between two samples is missed; `interval` bounds that."""

    def __init__(
        self,
        vm: str,
        run_dirs: Sequence[Path],
        list_sockets: Callable[[PortRanges | None], Sequence[TcpSocket]] = sockdiag.tcp_sockets,
        proc: Path = PROC,
        interval: float = 0.05,
        ports: PortRanges | None = None,
    ) -> None:
        self._vm = vm
        self._run_dirs = tuple(Path(d) for d in run_dirs)
        self._list_sockets = list_sockets
        self._proc = proc
        self._interval = interval
        self._ports = tuple(ports) if ports is not None else None
        self.netns_of = netns_of(proc, "self")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._last_pid: int | None = None
        self._flows: dict[tuple[str, int, str, int], OwnedFlow] = {}
        self._foreign: dict[tuple[str, int, str, int], OwnedFlow] = {}
        self._known: dict[int, Process | None] = {}  # inode -> owner, kept across samples
        self._samples = 0
        self._problem: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name=f"owners-{self._vm}", daemon=True)
        self._thread.start()

    def stop(self) -> Ownership:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.sample()  # a last look: a connection opened during the final interval
        owned_keys = {flow.key for flow in self._flows.values()}
        owned_inodes = {flow.inode for flow in self._flows.values()}
        # On one host both ends of an owned connection are visible; the peer end is not foreign.
        foreign = tuple(f for f in self._foreign.values() if f.key not in owned_keys and f.inode not in owned_inodes)
        return Ownership(
            owner_pid=self._last_pid,
            owner=f"qemu ({self._vm})",
            flows=tuple(self._flows.values()),
            foreign=foreign,
            problem=None if self._last_pid is not None else self._problem,
            samples=self._samples,
            busy_ports=self._busy_ports(),
        )

    def _busy_ports(self) -> tuple[int, ...]:
        """Local ports in use now, all of them: what a free migration port range must avoid. The
        last use of the socket lister: a lister that holds a netlink socket is closed here."""
        try:
            return tuple(sorted({s.local_port for s in self._list_sockets(None)}))
        except Exception:  # noqa: BLE001 - only a prescription's numbers depend on it
            return ()
        finally:
            close = getattr(self._list_sockets, "close", None)
            if callable(close):
                close()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self._interval):
                return

    def sample(self) -> None:
        """One look; never raises, because a lost sampler thread would fail silently."""
        self._samples += 1
        try:
            self._sample()
        except Exception as exc:  # the thread boundary: the error becomes the `problem` text
            self._problem = f"ownership sampling failed: {type(exc).__name__}: {exc}"

    def _in_ports(self, sock: TcpSocket) -> bool:
        ports = self._ports or ()
        return in_ranges(sock.local_port, ports) or in_ranges(sock.remote_port, ports)

    def _sample(self) -> None:
        # Re-check the known pid (one small read) and search again only when it is gone or
        # recycled: a destination QEMU appears at migration start, a source QEMU exits at the end.
        if self._pid is None or not is_guest_qemu(self._proc, self._pid, self._vm, self.netns_of):
            self._pid = find_qemu_pid(self._vm, self._run_dirs, self._proc)
        pid = self._pid
        # Sockets before inodes: a connection opened in between is then simply caught next time,
        # rather than listed without its inode and filed as foreign.
        sockets = self._list_sockets(self._ports)  # with ports, the kernel filters: cheap on a busy host
        own: frozenset[int] = frozenset()
        if pid is None:
            tried = ", ".join(str(d / "qemu" / f"{self._vm}.pid") for d in self._run_dirs) or "no pid file"
            self._problem = (
                f"no QEMU process for {self._vm} readable in {self._proc}: tried {tried}, and no process"
                f" in this network namespace has '-name guest={self._vm}'"
            )
        else:
            try:
                own = socket_inodes(pid, self._proc)
                self._last_pid = pid
            except PermissionError as exc:
                self._problem = f"cannot read {self._proc}/{pid}/fd ({exc.strerror}): run as root"
        index: ProcessIndex | None = None
        for s in sockets:
            key = (s.local, s.local_port, s.remote, s.remote_port)
            if s.inode in own:
                # A listener is not a connection; with ports given, QEMU's VNC or chardev
                # connections are not the migration's either.
                if s.state != "LISTEN" and (self._ports is None or self._in_ports(s)):
                    self._flows.setdefault(key, _flow(s, pid, f"qemu ({self._vm})", "migration"))
                continue
            if key in self._foreign or not self._in_ports(s):
                continue
            if s.inode and s.inode not in self._known:
                # The /proc-wide walk is the costly part: at most once per sample, and only for
                # an inode not seen before.
                index = index or ProcessIndex(self._proc)
                self._known[s.inode] = index.process(s.inode)
            process = self._known.get(s.inode)
            owner = process.owner if process is not None else "unknown"
            self._foreign[key] = _flow(s, process.pid if process is not None else None, owner, "foreign")


def _flow(s: TcpSocket, pid: int | None, owner: str, role: str) -> OwnedFlow:
    return OwnedFlow(s.local, s.local_port, s.remote, s.remote_port, s.state, s.inode, pid, owner, role)
