"""Background traffic on the lab's links: iperf3 flows like a busy cluster's, for tests and demos.

A verdict on which NIC a migration used must hold on a host that is busy with other traffic, so
this module makes that traffic: iperf3 servers on node2 and clients on node1, inside the lab's
namespaces (`ip netns exec`, argument lists only), one TCP flow per link on a port inside
libvirt's migration range and one outside it, plus corosync-like UDP on ring1.

- In range (49152): GlusterFS bricks and other programs take ports from 49152 up, the same range
  libvirt allocates migration ports from; libvirt skips a busy port and takes the next, so with
  a server on 49152 the migration's stream goes to 49153 (design.md section 6). Such a flow shares
  the migration's port range but is not the migration.
- Out of range (5201, iperf3's usual port): ordinary bulk traffic on the same links.
- UDP 5405 on ring1 at 10 Mbit/s: corosync's knet port and the order of its rate.

TCP rates are capped (iperf3 `-b`, split evenly over a link's TCP flows) so the lab still
migrates: the LAN is shaped to 1 Gbit/s and the 96 MiB guest crosses it at ~110 MiB/s, so 300
Mbit/s of load leaves it most of the link; each SAN link gets 1 Gbit/s, which a veth carries
easily but which, on a 2-core machine, leaves CPU for TCG and QEMU's migration thread (measured
rates and CPU use are in README's lab section). `rate_mbit=None` means as fast as it goes.

Every process is started with its PID recorded and ended by that PID when the context exits,
also on an exception or Ctrl-C; clients run with `-t` and servers with `-1` so they end on their
own too. Their output goes to a scratch directory in the lab's state directory, removed on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from verifier import signals
from verifier.errors import EnvironmentProblem, UsageError
from verifier.lab import spec
from verifier.lab.flows import (
    COROSYNC_PORT,
    COROSYNC_RATE_MBIT,
    DEFAULT_LINKS,
    IN_RANGE_PORT,
    OUT_OF_RANGE_PORT,
    Flow,
    netns_argv,
    plan,
)
from verifier.lab.system import netns_list, run

START_TIMEOUT_S = 10.0


class Load:
    """Running iperf3 flows; `stop()` ends every process they started, by PID."""

    def __init__(self, flows: Sequence[Flow], duration_s: float, workdir: Path) -> None:
        self.flows = tuple(flows)
        self.duration_s = duration_s
        self.workdir = workdir
        self.servers: list[subprocess.Popen[bytes]] = []
        self.clients: list[subprocess.Popen[bytes]] = []
        self.started = 0.0

    def pids(self) -> list[int]:
        return [p.pid for p in (*self.servers, *self.clients)]

    def running(self) -> list[int]:
        """PIDs of started processes that have not exited yet."""
        return [p.pid for p in (*self.servers, *self.clients) if p.poll() is None]

    def clients_done(self) -> bool:
        return all(p.poll() is not None for p in self.clients)

    def start(self) -> None:
        for i, flow in enumerate(self.flows):
            self.servers.append(self._spawn(flow.server_argv(), f"server-{i}"))
        self._wait_until(self._listening, "iperf3 servers listening", self.servers)
        self.started = time.monotonic()
        for i, flow in enumerate(self.flows):
            self.clients.append(self._spawn(flow.client_argv(self.duration_s), f"client-{i}"))
        self._wait_until(self._connected, "iperf3 clients connected", self.clients)

    def stop(self) -> list[int]:
        """End clients, then servers: SIGTERM, a grace period, SIGKILL. Return PIDs that survived."""
        stuck = _end(self.clients) + _end(self.servers)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return stuck

    def _spawn(self, argv: list[str], label: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{label}.log").open("wb")
        try:
            # A session of their own: a Ctrl-C at the terminal reaches us, and we end them in
            # order, instead of every iperf3 taking the SIGINT at once.
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        except FileNotFoundError as exc:
            raise EnvironmentProblem(f"{argv[0]} is not installed", hint="run `make install`") from exc
        finally:
            log.close()

    def _listening(self) -> bool:
        wanted = {(f.server_node, f.address, f.port) for f in self.flows}
        return wanted <= _sockets(wanted, "-Hltn")

    def _connected(self) -> bool:
        # Every iperf3 test, UDP included, keeps a TCP control connection to its server's port.
        wanted = {(f.server_node, f.address, f.port) for f in self.flows}
        return wanted <= _sockets(wanted, "-Htn", "state", "established")

    def _wait_until(self, ready: Callable[[], bool], what: str, procs: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            for proc, flow in zip(procs, self.flows, strict=True):
                if proc.poll() is not None and proc.returncode != 0:
                    raise EnvironmentProblem(f"iperf3 for {flow} exited early: {self._log_tail(proc)}")
            time.sleep(0.05)
        raise EnvironmentProblem(f"no {what} within {START_TIMEOUT_S:.0f}s")

    def _log_tail(self, proc: subprocess.Popen[bytes]) -> str:
        index = (self.servers + self.clients).index(proc)
        label = f"server-{index}" if index < len(self.servers) else f"client-{index - len(self.servers)}"
        try:
            lines = (self.workdir / f"{label}.log").read_text(errors="replace").split("\n")
        except OSError:
            return f"exit status {proc.returncode}"
        lines = [ln.strip() for ln in lines if ln.strip()]
        return lines[-1] if lines else f"exit status {proc.returncode}"


def _sockets(wanted: set[tuple[str, str, int]], *ss_args: str) -> set[tuple[str, str, int]]:
    """(node, local address, local port) of the TCP sockets `ss SS_ARGS` lists in each node."""
    found: set[tuple[str, str, int]] = set()
    for node in sorted({w[0] for w in wanted}):
        proc = run([*netns_argv(node), "ss", *ss_args], check=False, timeout=10)
        for line in proc.stdout.splitlines():
            fields = line.split()
            # LISTEN rows and "state established" rows put Local Address:Port at different columns.
            for field in fields:
                address, sep, port = field.rpartition(":")
                if sep and port.isdigit():
                    found.add((node, address, int(port)))
                    break
    return found


def _end(procs: list[subprocess.Popen[bytes]], grace_s: float = 3.0) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    stuck = []
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stuck.append(proc.pid)
    return stuck


@contextlib.contextmanager
def _running(flows: Sequence[Flow], duration_s: float, state_dir: Path) -> Iterator[Load]:
    if duration_s <= 0:
        raise UsageError(f"load duration must be positive, got {duration_s}")
    present = set(netns_list())
    missing = sorted({n for f in flows for n in (f.server_node, f.client_node)} - present)
    if missing:
        raise EnvironmentProblem(f"lab node(s) {', '.join(missing)} do not exist", hint="run `verify-path lab up`")
    base = state_dir if state_dir.is_dir() else None
    load = Load(flows, duration_s, Path(tempfile.mkdtemp(prefix="load-", dir=base)))
    try:
        load.start()
        yield load
    finally:
        # A second Ctrl-C must not cut the teardown short and leave iperf3 running.
        with signals.shielded("stopping the background load"):
            stuck = load.stop()
        if stuck:
            raise EnvironmentProblem(f"iperf3 process(es) {stuck} would not exit")


@contextlib.contextmanager
def background_load(
    duration_s: float,
    links: Sequence[str] = DEFAULT_LINKS,
    in_range_port: int | None = IN_RANGE_PORT,
    *,
    out_of_range_port: int | None = OUT_OF_RANGE_PORT,
    udp_port: int | None = COROSYNC_PORT,
    rates_mbit: Mapping[str, int] | None = None,
    udp_rate_mbit: int = COROSYNC_RATE_MBIT,
    state_dir: Path = spec.STATE_DIR,
) -> Iterator[Load]:
    """Run the flows of `plan(...)` from node1 to node2 for at most DURATION_S; yield once all
    are connected, end them all on exit."""
    flows = plan(
        links,
        in_range_port=in_range_port,
        out_of_range_port=out_of_range_port,
        udp_port=udp_port,
        rates_mbit=rates_mbit,
        udp_rate_mbit=udp_rate_mbit,
    )
    with _running(flows, duration_s, state_dir) as load:
        yield load


@contextlib.contextmanager
def foreign_flow(
    server_node: str,
    client_node: str,
    address: str,
    port: int,
    duration_s: float,
    *,
    rate_mbit: int | None = None,
    state_dir: Path = spec.STATE_DIR,
) -> Iterator[Load]:
    """One bulk TCP flow that is not a migration: `iperf3 -s -p PORT` bound to ADDRESS on
    SERVER_NODE, and a client on CLIENT_NODE sending to it (unlimited unless RATE_MBIT).

    E.g. another program listening on 49152 on node2 while node1 sends it bulk over the LAN:
    `foreign_flow("node2", "node1", spec.link("br0").address("node2"), 49152, 30)`.
    """
    spec.node_index(server_node)
    spec.node_index(client_node)
    link = next((lk.l3_interface for lk in spec.LINKS if lk.address(server_node) == address), address)
    flow = Flow(link, server_node, client_node, address, port, "tcp", rate_mbit)
    with _running([flow], duration_s, state_dir) as load:
        yield load


def tx_bytes(node: str, interfaces: Sequence[str]) -> dict[str, int]:
    """Each interface's tx_bytes counter, read from sysfs inside NODE (ip netns exec mounts the
    node's own /sys, so the names are the node's interfaces)."""
    paths = [f"/sys/class/net/{name}/statistics/tx_bytes" for name in interfaces]
    out = run([*netns_argv(node), "cat", *paths], timeout=10).stdout.split()
    return {name: int(value) for name, value in zip(interfaces, out, strict=True)}


def measure_tx_rates(node: str, interfaces: Sequence[str], seconds: float) -> dict[str, float]:
    """Bytes per second each interface sent over SECONDS (from its tx_bytes counter)."""
    before = tx_bytes(node, interfaces)
    started = time.monotonic()
    time.sleep(seconds)
    after = tx_bytes(node, interfaces)
    elapsed = time.monotonic() - started
    return {name: (after[name] - before[name]) / elapsed for name in interfaces}
