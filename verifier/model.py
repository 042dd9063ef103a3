"""Frozen dataclasses that cross pipeline stage boundaries, with to_dict/from_dict for JSON.

No stage hands another a netlink message, a scapy packet or a libvirt object: only these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BondInfo:
    mode: str
    xmit_hash_policy: str | None = None
    active_member: str | None = None


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    kind: str  # bridge | bond | veth | physical | loopback | tap | other
    master: str | None = None
    members: tuple[str, ...] = ()
    mtu: int | None = None
    speed_mbps: int | None = None
    operstate: str = "UNKNOWN"
    mac: str | None = None
    addresses: tuple[str, ...] = ()  # "addr/prefixlen"
    bond: BondInfo | None = None
    role: str | None = None
    rate_limit_mbps: int | None = None  # a root tbf qdisc caps egress below the link speed
    member_state: str | None = None  # bond member: active | backup
    carrier: bool | None = None

    @property
    def effective_mbps(self) -> int | None:
        known = [v for v in (self.speed_mbps, self.rate_limit_mbps) if v]
        return min(known) if known else None


@dataclass(frozen=True)
class Topology:
    hostname: str
    interfaces: tuple[Interface, ...]

    def get(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def by_index(self, index: int) -> Interface | None:
        return next((i for i in self.interfaces if i.index == index), None)

    def l3_of(self, name: str) -> str:
        """The interface that holds the addresses for NAME: walk up the master chain."""
        seen = {name}
        iface = self.get(name)
        while iface is not None and iface.master and iface.master not in seen:
            seen.add(iface.master)
            iface = self.get(iface.master)
        return iface.name if iface else name

    def chain_down(self, name: str) -> tuple[str, ...]:
        """NAME then its ports/members, depth first (br0 -> eth0; br0 -> bond0 -> eno1, eno2)."""
        out: list[str] = []

        def walk(n: str) -> None:
            if n in out:
                return
            out.append(n)
            iface = self.get(n)
            for member in iface.members if iface else ():
                walk(member)

        walk(name)
        return tuple(out)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # info | warning | error
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Reason:
    step: str
    detail: str
    evidence: str = ""


@dataclass(frozen=True)
class Prediction:
    target_host: str | None
    target_address: str | None
    interface: str | None
    path: tuple[str, ...] = ()
    source_address: str | None = None
    gateway: str | None = None
    table: int | None = None
    reasons: tuple[Reason, ...] = ()
    uri_origin: str = "hostname"  # migrate-uri | via | migration_host | hostname
    migrate_uri: str | None = None
    findings: tuple[Finding, ...] = ()  # what the prediction alone already shows (a slower link)


@dataclass(frozen=True)
class Bin:
    second: int
    bytes_tx: int
    bytes_rx: int


@dataclass(frozen=True)
class InterfaceCount:
    name: str
    bytes_tx: int = 0
    bytes_rx: int = 0
    packets_tx: int = 0
    packets_rx: int = 0
    payload_tx: int = 0
    payload_rx: int = 0
    drops: int = 0
    kernel_packets: int = 0
    bins: tuple[Bin, ...] = ()
    pcap: str | None = None
    other_bytes: int = 0  # matched the filter but not a migration connection
    counter_tx: int | None = None  # the interface's own byte counters over the capture (sysfs)
    counter_rx: int | None = None

    @property
    def packets(self) -> int:
        return self.packets_tx + self.packets_rx

    @property
    def payload(self) -> int:
        return self.payload_tx + self.payload_rx


@dataclass(frozen=True)
class Connection:
    """One TCP connection on the watched ports, oriented client -> server."""

    client: str
    client_port: int
    server: str
    server_port: int
    payload_to_server: int
    payload_to_client: int
    packets: int
    interfaces: tuple[str, ...]
    first_payload: str = ""  # hex of the first bytes the client sent
    kind: str = "unknown"  # qemu-main | multifd | nbd | tls | libvirtd-tunnel | ssh-tunnel | unknown
    first_payload_server: str = ""  # hex of the first bytes the server sent


@dataclass(frozen=True)
class CaptureResult:
    interfaces: tuple[InterfaceCount, ...]
    connections: tuple[Connection, ...]
    ports: tuple[tuple[int, int], ...]
    started_at: float
    ended_at: float
    snaplen: int
    bpf: str
    problems: tuple[str, ...] = ()  # e.g. a pcap that could not be written completely

    def get(self, name: str) -> InterfaceCount | None:
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True)
class MigrationResult:
    status: str  # completed | failed | interrupted | not-run
    migrate_uri: str | None
    dest_uri: str | None = None
    data_processed: int | None = None
    data_total: int | None = None
    duration_s: float | None = None
    started_at: float | None = None
    error: str | None = None
    peak_bps: float | None = None
    downtime_ms: int | None = None
    guest_location: str | None = None


@dataclass(frozen=True)
class Expectation:
    interfaces: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        return bool(self.interfaces or self.networks)


def to_dict(obj: Any) -> Any:
    """Dataclasses to plain JSON types (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: Any, data: Any) -> Any:
    """Inverse of to_dict for the dataclasses above (nested ones and tuples of them)."""
    import typing

    if data is None:
        return None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    import types
    import typing

    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        elem = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(elem, v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=False))
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    return value


@dataclass(frozen=True)
class InterfaceReport:
    name: str
    kind: str
    master: str | None
    role: str | None
    bytes_tx: int
    bytes_rx: int
    packets: int
    payload: int
    share: float
    drops: int
    kernel_packets: int = 0
    speed_mbps: int | None = None
    other_bytes: int = 0
    pcap: str | None = None
    bins: tuple[Bin, ...] = ()
    counter_tx: int | None = None
    counter_rx: int | None = None


@dataclass(frozen=True)
class Coverage:
    ratio: float | None
    payload_bytes: int
    data_processed: int | None
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Leg:
    """One direction of a migration as this host saw it: where the stream went, with counts."""

    direction: str  # outbound | return
    verdict: str
    observed_interface: str | None
    observed_path: tuple[str, ...]
    interfaces: tuple[InterfaceReport, ...]
    coverage: Coverage
    migration: MigrationResult
    connections: tuple[Connection, ...] = ()
    findings: tuple[Finding, ...] = ()
    expected_share: float | None = None


@dataclass(frozen=True)
class Report:
    schema_version: int
    tool_version: str
    verdict: str  # pass | fail | inconclusive | observed
    vm: str
    source: str
    destination: str
    expected: Expectation
    observed_interface: str | None
    observed_path: tuple[str, ...]
    interfaces: tuple[InterfaceReport, ...]
    stream: dict[str, Any]
    migration: MigrationResult
    prediction: Prediction
    coverage: Coverage
    findings: tuple[Finding, ...]
    run_dir: str | None
    started_at: float
    expected_share: float | None = None
    return_leg: Leg | None = None
    mode: str = "migrate"  # migrate | watch
