"""Sample, while a migration runs, which TCP connections the domain's QEMU owns, and whose the
other connections on the watched ports are.

Other programs use the migration ports too (GlusterFS bricks allocate from 49152 up; libvirt just
skips a busy port), so only ownership says which bytes are the migration's: QEMU's /proc/PID/fd
links read `socket:[INODE]` and sock_diag maps each inode to its 4-tuple.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from verifier import sockdiag
from verifier.capture.counting import in_ranges
from verifier.model import Endpoints, OwnedFlow, Ownership
from verifier.owners.pacing import Pacer
from verifier.owners.processes import (
    LIBVIRT_DAEMONS,
    PROC,
    OwnerFinder,
    PortRanges,
    Process,
    find_qemu_pid,
    is_guest_qemu,
    netns_of,
    socket_inodes,
    socket_inodes_readable,
)
from verifier.sockdiag import ListSockets, TcpSocket

RETRIES = 3  # dumps that look for a new QEMU socket before only the periodic dumps do
SCAN_EVERY = 1.0  # seconds between /proc-wide searches for a QEMU that has no pid file
WOKEN_DUMP_EVERY = 30.0  # a safety net only, when the capture announces new connections


class OwnershipSampler:
    """Samples in a thread which TCP connections the guest's QEMU owns, until stop(): multifd and NBD
    connections open after the main one, and one that closed before stop() still counts.

    Cheap by design, so that watching does not cost what it measures: each look only reads QEMU's
    descriptor table (/proc/PID/fd, about 0.2 ms), every `interval`, or with a capture that
    announces new connections (start(woken=True)) every `idle_interval`, at once on wake() and fast
    after it only while a connection's owner is unsettled; the socket table is dumped through
    sock_diag (about 1 ms: the kernel walks its whole TCP hash) on a wake-up, when QEMU holds a
    socket no dump has shown yet, and every `dump_every` seconds. A QEMU connection opened and
    closed between two looks is missed; another program's connection that lives less than
    `dump_every` and was not announced may be listed without its owner.
    """

    def __init__(
        self,
        vm: str,
        run_dirs: Sequence[Path],
        list_sockets: ListSockets | None = None,
        proc: Path = PROC,
        interval: float = 0.05,
        ports: PortRanges | None = None,
        dump_every: float = 5.0,
        # Between wake-ups a look only follows QEMU's pid (a wake-up's look finds it too) and a
        # socket of QEMU's no wake-up announced (each connection announces its first payload).
        idle_interval: float = 3.0,
    ) -> None:
        self._vm = vm
        self._run_dirs = tuple(Path(d) for d in run_dirs)
        # None: a sock_diag lister of our own, opened and closed in the sampling thread (pyroute2
        # keeps its socket state per thread).
        self._list_sockets = sockdiag.ThreadLister(list_sockets)
        self._proc = proc
        self._pacer = Pacer(interval, idle_interval)
        self._dump_every = dump_every
        self._ports = tuple(ports) if ports is not None else None
        self.netns_of = netns_of(proc, "self")
        self._thread: threading.Thread | None = None
        self._result: Ownership | None = None
        self._pid: int | None = None
        self._last_pid: int | None = None
        self._flows: dict[tuple[str, int, str, int], OwnedFlow] = {}
        self._foreign: dict[tuple[str, int, str, int], OwnedFlow] = {}
        self._known: dict[int, Process | None] = {}  # inode -> owner, kept across samples
        self._owners = OwnerFinder(proc, self.netns_of)
        self._dumped: set[int] = set()  # QEMU's socket inodes present at a dump already
        self._tries: dict[int, int] = {}  # QEMU's socket inodes not yet shown by a dump: dumps tried
        self._last_dump = float("-inf")
        self._last_scan = float("-inf")
        self._samples = 0
        self._dumps = 0
        self._cpu_s = 0.0
        self._problem: str | None = None

    def start(self, woken: bool = False) -> None:
        """WOKEN: the capture calls wake() when a connection carries its first payload (the eBPF
        engine does), so between wake-ups one look per `idle_interval` is enough; a wake-up is
        followed by FAST_FOR seconds at `interval` (a socket QEMU takes over late).
        Without it, every `interval`: a migration's transfer can last a fraction of a second."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._pacer.woken_mode = woken
        if woken:
            # No socket dump at the first look, and periodic ones only every WOKEN_DUMP_EVERY: every
            # new connection is announced when it starts, and older ones (another program's) are
            # named by the last dump.
            self._last_dump = time.monotonic()
            self._dump_every = max(self._dump_every, WOKEN_DUMP_EVERY)
        self._thread = threading.Thread(target=self._run, name=f"owners-{self._vm}", daemon=True)
        self._thread.start()

    def wake(self, conns: Sequence[Endpoints] = ()) -> None:
        """New connections on the watched ports: look now, at CONNS' sockets when the capture
        names them (a hash lookup each), else at the whole socket table (a dump)."""
        self._pacer.wake(conns)

    def stop(self) -> Ownership:
        """The connections seen; the last look and the closing of the lister happen in the thread."""
        if self._thread is not None:
            self._pacer.stop()
            self._thread.join()
            self._thread = None
        else:
            self._finish()  # never started: one look, here
        assert self._result is not None
        return self._result

    def _run(self) -> None:
        self._pacer.run(lambda woken, named: self.sample(dump=woken and not named, named=named), self._finish)

    def _finish(self) -> None:
        started = time.thread_time()
        try:
            # A last look (a connection opened during the final interval). When another program
            # already sits on the ports, one unfiltered dump serves it and the free-range
            # prescription (port-range-shared) alike, instead of two dumps.
            everything = self._all_sockets() if self._foreign else None
            self.sample(dump=True, given=everything)
            busy = self._busy_ports(everything)
        finally:
            self._list_sockets.close()
        self._cpu_s += time.thread_time() - started
        owned_keys = {flow.key for flow in self._flows.values()}
        owned_inodes = {flow.inode for flow in self._flows.values()}
        # On one host both ends of an owned connection are visible; the peer end is not foreign.
        foreign = tuple(f for f in self._foreign.values() if f.key not in owned_keys and f.inode not in owned_inodes)
        self._result = Ownership(
            owner_pid=self._last_pid,
            owner=f"qemu ({self._vm})",
            flows=tuple(self._flows.values()),
            foreign=foreign,
            problem=None if self._flows else self._no_flows(),
            samples=self._samples,
            busy_ports=busy,
            dumps=self._dumps,
            cpu_s=self._cpu_s,
        )

    def _no_flows(self) -> str:
        """Why no connection is the migration's: no QEMU found, or one found that held none."""
        if self._last_pid is None:
            return self._problem or f"no QEMU process for {self._vm} found"
        # A refused dump says so; otherwise QEMU was there and held nothing on the ports.
        failed = self._problem if self._problem and "sampling failed" in self._problem else None
        return failed or (
            f"QEMU for {self._vm} (pid {self._last_pid}) held no TCP connection on the watched ports in"
            f" {self._samples} samples ({self._dumps} socket dumps)"
        )

    def _all_sockets(self) -> Sequence[TcpSocket] | None:
        try:
            return self._list_sockets(None)
        except Exception:  # noqa: BLE001 - the last look then dumps by itself, and says if it fails
            return None

    def _busy_ports(self, everything: Sequence[TcpSocket] | None) -> tuple[int, ...]:
        """Local ports in use now, all of them: what a free migration port range must avoid. Only
        asked when another program's connection sits on the migration ports (port-range-shared
        then prescribes a free range): an unfiltered dump lists every socket of the host."""
        if not self._foreign:  # every foreign flow kept is on the ports (_sample files no other)
            return ()
        if everything is None:
            everything = self._all_sockets()  # the first foreign flow came with the last look
        return tuple(sorted({s.local_port for s in everything or ()}))

    def sample(
        self, dump: bool = False, given: Sequence[TcpSocket] | None = None, named: Sequence[Endpoints] = ()
    ) -> bool:
        """One look (a socket dump when due, or with DUMP; GIVEN: a dump of every socket made
        already, used instead; NAMED: connections to look up when no dump is due); never raises,
        because a lost sampler thread would fail silently. True when the look found every
        connection it saw on the ports settled (see _sample)."""
        started = time.thread_time()
        self._samples += 1
        settled = False
        try:
            settled = self._sample(dump, given, named)
        except Exception as exc:  # the thread boundary: the error becomes the `problem` text
            self._problem = f"ownership sampling failed: {type(exc).__name__}: {exc}"
        self._cpu_s += time.thread_time() - started
        return settled

    def _in_ports(self, sock: TcpSocket) -> bool:
        ports = self._ports or ()
        return in_ranges(sock.local_port, ports) or in_ranges(sock.remote_port, ports)

    def _find_pid(self, now: float, check: bool) -> int | None:
        # Between dumps, a known pid is trusted while its /proc entry exists (pids are not reused
        # within a second); at a dump, its command line is checked again. Searched again only when
        # gone or recycled: a destination QEMU appears at migration start, a source QEMU exits.
        if self._pid is not None and (not check or is_guest_qemu(self._proc, self._pid, self._vm, self.netns_of)):
            return self._pid
        # libvirt's pid file every time; the /proc-wide scan behind it (a millisecond or more on a
        # busy host) at most once per SCAN_EVERY, whatever the dump pace (30 s when woken).
        scan = now - self._last_scan >= SCAN_EVERY
        if scan:
            self._last_scan = now
        self._pid = find_qemu_pid(self._vm, self._run_dirs, self._proc, scan=scan)
        return self._pid

    def _sample(self, dump: bool, given: Sequence[TcpSocket] | None, named: Sequence[Endpoints]) -> bool:
        """One look. True when it dumped or looked up the NAMED connections, QEMU was found and
        every connection seen on the ports has its final owner (see _final): the pacer then skips
        the fast looks after a wake-up (on a busy host most new connections are another program's)."""
        now = time.monotonic()
        due = dump or now - self._last_dump >= self._dump_every
        if self._pid is not None and not socket_inodes_readable(self._pid, self._proc):
            self._pid = None  # exited (the source, once migrated)
        pid = self._find_pid(now, check=due)
        own: frozenset[int] = frozenset()
        if pid is None:
            tried = ", ".join(str(d / "qemu" / f"{self._vm}.pid") for d in self._run_dirs) or "no pid file"
            self._problem = (
                f"no QEMU process for {self._vm} readable in {self._proc}: tried {tried}, and no process"
                f" in this network namespace has '-name guest={self._vm}'"
            )
        else:
            try:
                # Every descriptor's link, not only their count: QEMU may close one descriptor and
                # open the migration socket under the same number between two looks.
                own = socket_inodes(pid, self._proc)
                self._last_pid = pid
            except PermissionError as exc:
                self._problem = f"cannot read {self._proc}/{pid}/fd ({exc.strerror}): run as root"
        new = own - self._dumped
        if not (due or new or named):
            return False
        sockets: Sequence[TcpSocket] = ()
        if named and not due:
            sockets = self._list_sockets.lookup(named)  # no walk of the table
            new -= {s.inode for s in sockets}  # QEMU's new socket, announced: no dump needed for it
        if due or new:
            self._last_dump = now
            self._dumps += 1
            if given is None:
                sockets = self._list_sockets(self._ports)  # with ports, the kernel filters: cheap on a busy host
            else:
                sockets = tuple(s for s in given if self._ports is None or self._in_ports(s))
        # An inode the dump did not show may be a socket between socket() and connect(): looked
        # for again at the next samples, then left to the periodic dumps (a UNIX socket, which
        # no TCP dump shows, is not dumped for at every sample).
        listed = {s.inode for s in sockets}
        for inode in new:
            self._tries[inode] = self._tries.get(inode, 0) + 1
        self._dumped |= {i for i in own if i in listed or self._tries.get(i, 0) >= RETRIES}
        self._owners.new_look()
        settled = pid is not None
        for s in sockets:
            key = s.endpoints
            if s.inode in own:
                # A listener is not a connection; with ports given, QEMU's VNC or chardev
                # connections are not the migration's either.
                if s.state != "LISTEN" and (self._ports is None or self._in_ports(s)):
                    self._flows.setdefault(key, s.owned(pid, f"qemu ({self._vm})", "migration"))
                continue
            if not self._in_ports(s):
                continue
            if s.inode and s.inode not in self._known:
                # The /proc-wide walk is the costly part: at most once per look, and only for an
                # inode not seen before that no known program holds.
                self._known[s.inode] = self._owners.find(s.inode)
            process = self._known.get(s.inode)
            settled = settled and _final(s, process)
            if key not in self._foreign:
                owner = process.owner if process is not None else "unknown"
                self._foreign[key] = s.owned(process.pid if process is not None else None, owner, "foreign")
        return settled


def _final(s: TcpSocket, process: Process | None) -> bool:
    """Whether S, not QEMU's, keeps the owner it has: one in its handshake or an accept queue (no
    inode yet) is the incoming QEMU's a moment later, one a libvirt daemon holds may be passed to
    QEMU, one whose process was not found may be one QEMU received; an orphan (no inode, closing)
    stays nobody's."""
    if not s.inode:
        return s.state not in ("ESTABLISHED", "SYN_RECV", "NEW_SYN_RECV")
    return process is not None and process.name not in LIBVIRT_DAEMONS
