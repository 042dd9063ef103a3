"""Processes and their sockets, from /proc: the domain's QEMU, libvirtd, whoever holds an inode.

Other programs use the migration ports too (GlusterFS bricks allocate from 49152 up; libvirt just
skips a busy port), so only ownership says which bytes are the migration's: QEMU's /proc/PID/fd
links read `socket:[INODE]` and sock_diag maps each inode to its 4-tuple.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# The daemons that carry a tunnelled migration (VIR_MIGRATE_TUNNELLED) inside their own
# connection: monolithic libvirtd, the modular QEMU driver daemon, and the remote proxy.
LIBVIRT_DAEMONS = frozenset({"libvirtd", "virtqemud", "virtproxyd"})

PortRanges = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # /proc/PID/comm
    guest: str | None = None  # set for a QEMU process: the guest its -name option names

    @property
    def owner(self) -> str:
        return f"qemu ({self.guest})" if self.guest is not None else self.name


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
        if link:
            return os.readlink(path)
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


# Paths as f-strings, not Path objects: a walk over /proc builds hundreds of them, and pathlib's
# parsing was most of the ownership sampler's remaining CPU (make bench).


def _args(proc: Path, pid: int) -> list[str]:
    text = _read(f"{proc}/{pid}/cmdline")  # empty for a kernel thread
    return text.rstrip("\0").split("\0") if text else []


def netns_of(proc: Path, pid: int | str) -> str | None:
    return _read(f"{proc}/{pid}/ns/net", link=True)


def _pids(proc: Path) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return []


def _qemu_guest(args: Sequence[str]) -> str | None:
    return guest_name(args) if args and "qemu" in Path(args[0]).name else None


def is_guest_qemu(proc: Path, pid: int, vm: str, netns: str | None) -> bool:
    # The netns check matters during a migration: both nodes run a QEMU for the same guest, and
    # only the one in our namespace owns sockets that sock_diag can show us.
    return netns is not None and _qemu_guest(_args(proc, pid)) == vm and netns_of(proc, pid) == netns


def find_qemu_pid(vm: str, run_dirs: Sequence[Path], proc: Path = PROC, scan: bool = True) -> int | None:
    """QEMU's pid for guest `vm` in this network namespace: libvirt's pid file, else (with SCAN) a
    /proc scan."""
    netns = netns_of(proc, "self")
    for run_dir in run_dirs:
        text = _read(f"{run_dir}/qemu/{vm}.pid") or ""
        # A stale pid file can name a recycled pid, so the command line has the last word.
        if text.isdigit() and is_guest_qemu(proc, int(text), vm, netns):
            return int(text)
    if not scan:
        return None
    return next((pid for pid in _pids(proc) if is_guest_qemu(proc, pid, vm, netns)), None)


def find_libvirtd_pids(proc: Path = PROC) -> tuple[int, ...]:
    """libvirt daemons in this network namespace: the owners of a tunnelled migration's bytes."""
    netns = netns_of(proc, "self")
    daemons = (pid for pid in _pids(proc) if _read(f"{proc}/{pid}/comm") in LIBVIRT_DAEMONS)
    return tuple(pid for pid in daemons if netns is not None and netns_of(proc, pid) == netns)


def socket_inodes_readable(pid: int, proc: Path) -> bool:
    """Whether PID still exists (its /proc entry), in one stat()."""
    try:
        os.stat(f"{proc}/{pid}/fd")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # it exists; reading it is what reports the permission problem
    return True


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


def _visible_inodes(pid: int, proc: Path) -> frozenset[int]:
    """socket_inodes() for a walk: another user's process while not root shows none (its sockets
    stay unknown) rather than ending the walk."""
    try:
        return socket_inodes(pid, proc)
    except OSError:
        return frozenset()


class ProcessIndex:
    """inode -> owning process, from one walk over /proc/*/fd: a snapshot, build one per sample."""

    def __init__(self, proc: Path = PROC, netns: str | None = None, seen: dict[int, str | None] | None = None) -> None:
        """NETNS (a `net:[N]` link, netns_of): only processes in that namespace, whose sockets are
        the ones sock_diag lists there; a lab node or a bench namespace then walks a handful of
        processes instead of the host's. SEEN: pid -> namespace from one sampler's earlier walks,
        filled here, so a walk reads only new processes' namespaces (about half its cost with 100
        processes): pids come round again only after pid_max (4 million) others, and a process
        keeps its namespace, except one caught between fork and setns() (`ip netns exec`, a
        window of microseconds), whose sockets would then go unnamed ("unknown")."""
        self._proc = proc
        self._pids: dict[int, list[int]] = {}
        seen = {} if seen is None else seen
        for pid in _pids(proc):
            if netns is not None:
                if pid not in seen:
                    seen[pid] = netns_of(proc, pid)
                if seen[pid] != netns:
                    continue
            for inode in _visible_inodes(pid, proc):
                self._pids.setdefault(inode, []).append(pid)

    def process(self, inode: int) -> Process | None:
        """The holder of INODE: a guest's QEMU when one holds it (libvirtd connects a migration
        socket and hands it to QEMU, both hold it for a moment), else the lowest pid (a forked
        child inherits its parent's sockets; the parent usually has the lower pid)."""
        holders = [self._describe(pid) for pid in sorted(self._pids.get(inode, ()))]
        return next((p for p in holders if p.guest is not None), holders[0] if holders else None)

    def _describe(self, pid: int) -> Process:
        return Process(pid, _read(f"{self._proc}/{pid}/comm") or "unknown", _qemu_guest(_args(self._proc, pid)))


class OwnerFinder:
    """inode -> owning process across one sampler's looks. The programs already found holding a
    connection on the ports are asked first, their descriptors alone: on a busy host most new
    connections there are a known program's (a GlusterFS brick's next client, a backup agent's,
    iperf3's data connection after its control one), and a /proc walk (WALK, a ProcessIndex) reads
    every process's. One walk per look at most (new_look() starts one). libvirt daemons are never
    asked first: one holds a migration socket a moment before QEMU takes it, and only a walk
    sees both and names QEMU."""

    def __init__(self, proc: Path, netns: str | None, walk: Callable[..., ProcessIndex] | None = None) -> None:
        self._proc = proc
        self._netns = netns
        self._walk = walk or ProcessIndex
        self._seen: dict[int, str | None] = {}  # pid -> network namespace, across walks
        self._index: ProcessIndex | None = None  # this look's walk
        self._held: dict[int, frozenset[int]] = {}  # this look's reads of known programs' sockets
        self._programs: dict[int, Process] = {}  # pid -> a known owner, asked first

    def new_look(self) -> None:
        self._index = None
        self._held = {}

    def find(self, inode: int) -> Process | None:
        for pid, known in list(self._programs.items()):
            # Read once per look, like the walk: a look's inodes all come from one socket listing.
            held = self._held.get(pid)
            if held is None:
                held = self._held[pid] = _visible_inodes(pid, self._proc)
            if inode in held:
                return known
            if not held:
                del self._programs[pid]  # exited (or holds no socket now: a walk finds it again)
        self._index = self._index or self._walk(self._proc, self._netns, self._seen)
        found = self._index.process(inode)
        if found is not None and found.name not in LIBVIRT_DAEMONS:
            self._programs[found.pid] = found
        return found


def owner_of_inode(inode: int, proc: Path = PROC) -> Process | None:
    return ProcessIndex(proc).process(inode)
