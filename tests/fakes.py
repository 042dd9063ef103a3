"""Back ends for running the whole job offline, each replaying something recorded in the real lab
(tests/record_lab.py made the recordings; captures/samples holds the real runs' pcaps):

- `snapshot_topology` / `SnapshotRoutes`: node1's netlink dumps (links, addresses, qdiscs, policy
  rules, routing tables) through the same parsing code as a live host;
- `RecordedHypervisor`: a real migration's jobStats() polls and completed statistics;
- `ReplayCapture`: the sample runs' pcaps through the real `Counter`;
- `RecordedOwners`: the sockets QEMU owned, as the ownership sampler reports them.

No root, no lab, no network: these run as any user.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from verifier import destconf, routing
from verifier.analyze import count_files
from verifier.errors import UsageError
from verifier.hypervisor import ProgressFn, job_progress
from verifier.jobs import Backends
from verifier.model import (
    CaptureResult,
    Endpoints,
    InterfaceCount,
    MigrationRequest,
    MigrationResult,
    MigrationStatus,
    OwnedFlow,
    Ownership,
    Topology,
)
from verifier.resolve import hosts_only
from verifier.routing import RouteInfo
from verifier.topology import attr, parse, rate_limits

REPO = Path(__file__).resolve().parent.parent
RECORDED = REPO / "tests" / "data" / "lab-node1"
SAMPLES = REPO / "captures" / "samples"


def netlink() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / "netlink.json").read_text())
    return data


def snapshot_topology(dump: dict[str, Any] | None = None) -> Topology:
    dump = dump or netlink()
    return parse(
        dump["links"], dump["addrs"], hostname="node1", speeds=dump["speeds"], limits=rate_limits(dump["qdiscs"])
    )


class SnapshotRoutes:
    """The kernel's route lookup, done on dumped rules and tables: the first matching rule whose
    table holds a route to the address (what `ip route get` answers for an unbound socket)."""

    def __init__(self, dump: dict[str, Any] | None = None) -> None:
        self.dump = dump or netlink()
        self.names = {m["index"]: attr(m, "IFLA_IFNAME") for m in self.dump["links"]}

    def _table(self, table: int) -> list[dict[str, Any]]:
        return [r for r in self.dump["routes"] if (attr(r, "RTA_TABLE") or r.get("table")) == table]

    def route_get(self, dst: str) -> RouteInfo | None:
        rule, route = routing.explain(self.dump["rules"], self._table, dst, None)
        if route is None:
            return None
        length = route.get("dst_len", 0)
        return RouteInfo(
            self.names.get(attr(route, "RTA_OIF")),
            attr(route, "RTA_PREFSRC"),
            attr(route, "RTA_GATEWAY"),
            routing.rule_table(rule) if rule else None,
            f"{attr(route, 'RTA_DST')}/{length}" if length else "default",
            attr(route, "RTA_PRIORITY"),
            routing.policy_rule(rule) if rule else None,
        )

    def neighbour_mac(self, address: str) -> str | None:
        for n in self.dump["neighbours"]:
            if attr(n, "NDA_DST") == address:
                return str(attr(n, "NDA_LLADDR"))
        return None


def with_policy_rule(dump: dict[str, Any], to: str, table: int, via_iface: str, priority: int = 100) -> dict[str, Any]:
    """DUMP plus `ip rule add to TO priority P lookup TABLE` and `ip route add TO dev VIA table TABLE`,
    shaped like pyroute2's dumps of the real ones."""
    index = next(m["index"] for m in dump["links"] if attr(m, "IFLA_IFNAME") == via_iface)
    src = next(attr(a, "IFA_ADDRESS") for a in dump["addrs"] if a["index"] == index and attr(a, "IFA_ADDRESS"))
    rule = {
        "family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": table, "action": 1, "flags": 0,
        "attrs": [["FRA_TABLE", table], ["FRA_PRIORITY", priority], ["FRA_DST", to]],
    }  # fmt: skip
    route = {
        "family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": table, "proto": 4, "scope": 253, "type": 1,
        "flags": 0,
        "attrs": [["RTA_TABLE", table], ["RTA_DST", to], ["RTA_PREFSRC", src], ["RTA_OIF", index]],
    }  # fmt: skip
    return {**dump, "rules": [rule, *dump["rules"]], "routes": [*dump["routes"], route]}


def hosts_file(tmp: Path) -> Path:
    path = tmp / "hosts"
    path.write_text(netlink()["hosts"])
    return path


@dataclass
class RecordedHypervisor:
    """A migration as libvirt reported it in the lab, replayed. `fail_after`/`interrupt_after` N
    end it after the Nth poll, the way a dead destination or a Ctrl-C did there."""

    recording: dict[str, Any]
    vms: tuple[str, ...] = ("vm01",)
    fail_after: int | None = None
    interrupt_after: int | None = None
    migrations: list[MigrationRequest] = field(default_factory=list)
    closed: bool = False

    def __enter__(self) -> RecordedHypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def check_domain(self, vm: str) -> None:
        if vm not in self.vms:
            raise UsageError(f"no domain named {vm!r} on qemu+tcp://node1/system", hint="check the name")

    def destination_hostname(self) -> str:
        return str(self.recording["hostname"])

    def source_hostname(self) -> str:
        return "node1"

    def memory_bytes(self, vm: str) -> int | None:
        return 256 << 20  # the lab guest's <memory>

    def dirty_rate(self, vm: str, seconds: int = 1) -> float | None:
        return self.recording.get("dirty_rate_Bps")  # measured before the recorded migration, if it was

    def migrate(self, req: MigrationRequest, progress: ProgressFn) -> MigrationResult:
        self.migrations.append(req)
        started = time.time()
        polls = self.recording["polls"]
        last: dict[str, Any] = {}
        samples: list[tuple[float, Any]] = []
        for i, poll in enumerate(polls, 1):
            stats = {k: v for k, v in poll.items() if k != "t"}
            progress(job_progress(stats))
            samples.append((poll["t"], job_progress(stats)))
            last = stats
            if i == self.interrupt_after:
                return MigrationResult(
                    MigrationStatus.INTERRUPTED,
                    req.migrate_uri,
                    req.dest_uri,
                    duration_s=poll["t"],
                    started_at=started,
                    error="interrupted: the migration job was aborted (virDomainAbortJob)",
                    guest_location="source",
                )
            if i == self.fail_after:
                return MigrationResult(
                    MigrationStatus.FAILED,
                    req.migrate_uri,
                    req.dest_uri,
                    data_processed=last.get("data_processed"),
                    duration_s=poll["t"],
                    started_at=started,
                    error="operation failed: job 'migration out' failed: Unable to write to socket: "
                    "Connection reset by peer",
                    guest_location="source",
                )
        done = self.recording["completed"]
        return MigrationResult(
            MigrationStatus.COMPLETED,
            req.migrate_uri,
            req.dest_uri,
            data_processed=done["data_processed"],
            data_total=done.get("data_total"),
            duration_s=polls[-1]["t"] if polls else 0.0,
            started_at=started,
            peak_bps=max(float(p.get("memory_bps", 0)) for p in polls) if polls else None,
            downtime_ms=done.get("downtime"),
            guest_location="destination",
            samples=(*samples, (polls[-1]["t"] if polls else 0.0, job_progress(done))),
        )


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"migration-{name}.json").read_text())
    return data


class ReplayCapture:
    """The sniffers, replayed: each watched interface's pcap (if the run had one) through the real
    Counter; an interface without a pcap carried nothing."""

    def __init__(self, pcaps: dict[str, Path], watch: list[str], ports: tuple[tuple[int, int], ...]) -> None:
        self.pcaps, self.watch, self.ports = pcaps, watch, ports
        self.started = False

    def start(self) -> None:
        self.started = True

    def bytes_so_far(self) -> int:
        return 0

    def on_new_flow(self, callback: Callable[[Sequence[Endpoints]], None]) -> bool:
        return False  # a replay has no live flows to announce

    def stop(self, drain_s: float = 0.3) -> CaptureResult:
        files = [(path, name) for name, path in self.pcaps.items() if name in self.watch]
        result = count_files(files, self.ports)
        seen = {i.name for i in result.interfaces}
        empty = tuple(InterfaceCount(n) for n in self.watch if n not in seen)
        return replace(result, interfaces=result.interfaces + empty)


Tuple4 = tuple[str, int, str, int]  # client, client port, server, server port


@dataclass
class RecordedOwners:
    """What the ownership sampler reported: the 4-tuples QEMU held, and the other flows on the
    ports with their processes (or the problem that kept it from knowing)."""

    mine: tuple[Tuple4, ...] = ()
    foreign: tuple[tuple[Tuple4, str, int | None], ...] = ()  # (flow, owner, pid)
    problem: str | None = None

    def start(self, woken: bool = False) -> None:
        pass

    def wake(self, conns: Sequence[Endpoints] = ()) -> None:
        pass

    def stop(self) -> Ownership:
        def flow(t: Tuple4, owner: str, pid: int | None, role: str) -> OwnedFlow:
            return OwnedFlow(t[0], t[1], t[2], t[3], "ESTABLISHED", 0, pid, owner, role)

        return Ownership(
            None if self.problem else 4242,
            "qemu (vm01)",
            tuple(flow(t, "qemu (vm01)", 4242, "migration") for t in self.mine),
            tuple(flow(t, owner, pid, "foreign") for t, owner, pid in self.foreign),
            self.problem,
            20,
            busy_ports=(22, 5201, 16509, 49152),
        )


# The connections of the two sample runs (their run.json's stream.endpoints).
LAN_FLOW: Tuple4 = ("203.0.113.11", 46262, "203.0.113.12", 49152)
SAN_FLOW: Tuple4 = ("198.18.0.11", 52376, "198.18.0.12", 49152)


def backends(
    tmp: Path,
    hv: RecordedHypervisor,
    pcaps: dict[str, Path],
    dump: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    owners: RecordedOwners | None = None,
) -> Backends:
    dump = dump or netlink()
    hosts = hosts_file(tmp)
    return Backends(
        topology=lambda: snapshot_topology(dump),
        routes=SnapshotRoutes(dump),
        hypervisor=lambda _src, _dst: hv,
        capture=lambda watch, ports, _out: ReplayCapture(pcaps, watch, ports),
        dest_config=lambda _dest: destconf.DestConfig(None),
        hosts=hosts,
        resolver=hosts_only(hosts),
        owners=(lambda _vm, _ports: owners) if owners else None,
        log=log or (lambda _m: None),
    )


@contextlib.contextmanager
def no_lock() -> Iterator[None]:
    yield
