"""Tell which process owns which TCP connection: the migration's own sockets versus everyone else's.

Other programs use the migration ports too (GlusterFS bricks allocate from 49152 up; libvirt just
skips a busy port), so only ownership says which bytes are the migration's: QEMU's /proc/PID/fd
links read `socket:[INODE]` and sock_diag maps each inode to its 4-tuple.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier import sockdiag
from verifier.sockdiag import TcpSocket, canonical_ip

PROC = Path("/proc")
# The daemons that carry a tunnelled migration (VIR_MIGRATE_TUNNELLED) inside their own
# connection: monolithic libvirtd, the modular QEMU driver daemon, and the remote proxy.
LIBVIRT_DAEMONS = frozenset({"libvirtd", "virtqemud", "virtproxyd"})

FlowKey = tuple[tuple[str, int], tuple[str, int]]
PortRanges = Sequence[tuple[int, int]]


def flow_key(a_ip: str, a_port: int, b_ip: str, b_port: int) -> FlowKey:
    """The same key for both ends of a connection, whichever side is called client or local."""
    a = (canonical_ip(a_ip), a_port)
    b = (canonical_ip(b_ip), b_port)
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # /proc/PID/comm
    guest: str | None = None  # set for a QEMU process: the guest its -name option names

    @property
    def owner(self) -> str:
        return f"qemu ({self.guest})" if self.guest is not None else self.name


@dataclass(frozen=True)
class OwnedFlow:
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str
    inode: int
    pid: int | None
    owner: str  # "qemu (vm01)", "iperf3", or "unknown"
    role: str  # migration | foreign

    @property
    def key(self) -> FlowKey:
        return flow_key(self.local, self.local_port, self.remote, self.remote_port)


@dataclass(frozen=True)
class Ownership:
    owner_pid: int | None
    owner: str
    flows: tuple[OwnedFlow, ...]
    foreign: tuple[OwnedFlow, ...]
    problem: str | None  # set when ownership could not be determined: count by port range instead
    samples: int

    def owns(self, a_ip: str, a_port: int, b_ip: str, b_port: int) -> bool:
        key = flow_key(a_ip, a_port, b_ip, b_port)
        return any(flow.key == key for flow in self.flows)


def guest_name(args: Sequence[str]) -> str | None:
    """The guest named by QEMU's `-name` option (`guest=vm01,debug-threads=on`, or legacy `vm01`)."""
    for flag, value in zip(args, args[1:], strict=False):
        if flag not in ("-name", "--name"):
            continue
        # QEMU escapes a comma inside a value by doubling it; argv can never hold a NUL.
        parts = [p.replace("\0", ",") for p in value.replace(",,", "\0").split(",")]
        guest = next((part.removeprefix("guest=") for part in parts if part.startswith("guest=")), None)
        return guest if guest is not None or "=" in parts[0] else parts[0]  # "guest" is the implied key
    return None


def _read(path: Path | str, link: bool = False) -> str | None:
    """A /proc file's text or a link's target; None once the process is gone (or is not ours)."""
    try:
        return os.readlink(path) if link else Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _args(proc: Path, pid: int) -> list[str]:
    text = _read(proc / str(pid) / "cmdline")  # empty for a kernel thread
    return text.rstrip("\0").split("\0") if text else []


def _netns(proc: Path, pid: int | str) -> str | None:
    return _read(proc / str(pid) / "ns" / "net", link=True)


def _pids(proc: Path) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return []


def _qemu_guest(args: Sequence[str]) -> str | None:
    return guest_name(args) if args and "qemu" in Path(args[0]).name else None


def _is_guest_qemu(proc: Path, pid: int, vm: str, netns: str | None) -> bool:
    # The netns check matters during a migration: both nodes run a QEMU for the same guest, and
    # only the one in our namespace owns sockets that sock_diag can show us.
    return netns is not None and _qemu_guest(_args(proc, pid)) == vm and _netns(proc, pid) == netns


def find_qemu_pid(vm: str, run_dirs: Sequence[Path], proc: Path = PROC) -> int | None:
    """QEMU's pid for guest `vm` in this network namespace: libvirt's pid file, else a /proc scan."""
    netns = _netns(proc, "self")
    for run_dir in run_dirs:
        # A stale pid file can name a recycled pid, so the command line has the last word.
        text = _read(Path(run_dir) / "qemu" / f"{vm}.pid") or ""
        if text.isdigit() and _is_guest_qemu(proc, int(text), vm, netns):
            return int(text)
    return next((pid for pid in _pids(proc) if _is_guest_qemu(proc, pid, vm, netns)), None)


def find_libvirtd_pids(proc: Path = PROC) -> tuple[int, ...]:
    """libvirt daemons in this network namespace: the owners of a tunnelled migration's bytes."""
    netns = _netns(proc, "self")
    daemons = (pid for pid in _pids(proc) if _read(proc / str(pid) / "comm") in LIBVIRT_DAEMONS)
    return tuple(pid for pid in daemons if netns is not None and _netns(proc, pid) == netns)


def socket_inodes(pid: int, proc: Path = PROC) -> frozenset[int]:
    """Inodes of the sockets `pid` holds; empty once it has exited. PermissionError propagates:
    "may not look" must not read as "owns nothing"."""
    fd_dir = f"{proc}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except (FileNotFoundError, ProcessLookupError):
        return frozenset()
    # None from _read: the fd was closed between listdir and readlink, or the process exited.
    links = (_read(f"{fd_dir}/{name}", link=True) or "" for name in names)
    return frozenset(int(link[8:-1]) for link in links if link.startswith("socket:["))


class ProcessIndex:
    """inode -> owning process, from one walk over /proc/*/fd: a snapshot, build one per sample."""

    def __init__(self, proc: Path = PROC) -> None:
        self._proc = proc
        self._pids: dict[int, int] = {}
        for pid in _pids(proc):
            try:
                inodes = socket_inodes(pid, proc)
            except OSError:  # another user's process while not root: its sockets stay unknown
                continue
            for inode in inodes:
                # A forked child inherits its parent's sockets; the lowest pid is usually the parent.
                self._pids.setdefault(inode, pid)

    def process(self, inode: int) -> Process | None:
        pid = self._pids.get(inode)
        if pid is None:
            return None
        return Process(pid, _read(self._proc / str(pid) / "comm") or "unknown", _qemu_guest(_args(self._proc, pid)))


def owner_of_inode(inode: int, proc: Path = PROC) -> Process | None:
    return ProcessIndex(proc).process(inode)


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
        self._netns = _netns(proc, "self")
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
        )

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
        return any(lo <= sock.local_port <= hi or lo <= sock.remote_port <= hi for lo, hi in self._ports or ())

    def _sample(self) -> None:
        # Re-check the known pid (one small read) and search again only when it is gone or
        # recycled: a destination QEMU appears at migration start, a source QEMU exits at the end.
        if self._pid is None or not _is_guest_qemu(self._proc, self._pid, self._vm, self._netns):
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
