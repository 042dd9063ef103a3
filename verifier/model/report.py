"""The reconcile stage's output: per-interface reports, coverage, legs, and the whole run's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from verifier.model.capture import Bin, Connection, ForeignFlow
from verifier.model.diagnosis import Diagnosis, LinkForecast, Timeline
from verifier.model.enums import Attribution, Direction, Verdict
from verifier.model.findings import Expectation, Finding, Prediction
from verifier.model.migration import MigrationResult


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
class KindCount:
    connections: int
    bytes: int


@dataclass(frozen=True)
class StreamSummary:
    """The migration's connections by kind (QEMU main stream, multifd, NBD, tunnels)."""

    ports: tuple[tuple[int, int], ...] = ()
    endpoints: tuple[str, ...] = ()
    server_ports: tuple[int, ...] = ()
    connections: int = 0
    kinds: dict[str, KindCount] = field(default_factory=dict)


@dataclass(frozen=True)
class Leg:
    """One direction of a migration as this host saw it: where the stream went, with counts."""

    direction: Direction
    verdict: Verdict
    observed_interface: str | None
    observed_path: tuple[str, ...]
    interfaces: tuple[InterfaceReport, ...]
    coverage: Coverage
    migration: MigrationResult
    connections: tuple[Connection, ...] = ()
    findings: tuple[Finding, ...] = ()
    expected_share: float | None = None
    foreign: tuple[ForeignFlow, ...] = ()
    attribution: Attribution = Attribution.PORT_RANGE
    diagnosis: Diagnosis | None = None  # why it went as fast as it did
    timeline: Timeline | None = None  # job statistics per poll, own flows' wire bytes per bin
    capture: CaptureInfo | None = None  # which engine counted this leg


@dataclass(frozen=True)
class CaptureInfo:
    """How the bytes were counted, and what the pcaps beside the report hold."""

    engine: str  # ebpf | ring | pcap (analyze)
    pcaps: str  # every frame | sampled | none
    note: str = ""  # why this engine (e.g. eBPF unavailable: the reason)


@dataclass(frozen=True)
class MigrationSeen:
    """One migration `watch` saw, told apart from the others by the QEMU that owned its flows."""

    domain: str
    direction: str  # outbound (this host's QEMU sent it) | inbound (an incoming QEMU received it)
    verdict: Verdict
    observed_interface: str | None
    observed_path: tuple[str, ...]
    bytes: int  # its own payload, both ways, counted once per L3 group
    connections: int
    expected_share: float | None = None
    coverage: float | None = None  # against libvirt's data_processed, when the job stats were reachable


@dataclass(frozen=True)
class Report:
    schema_version: int
    tool_version: str
    verdict: Verdict
    vm: str
    source: str
    destination: str
    expected: Expectation
    observed_interface: str | None
    observed_path: tuple[str, ...]
    interfaces: tuple[InterfaceReport, ...]
    stream: StreamSummary
    migration: MigrationResult
    prediction: Prediction
    coverage: Coverage
    findings: tuple[Finding, ...]
    run_dir: str | None
    started_at: float
    expected_share: float | None = None
    return_leg: Leg | None = None
    mode: str = "migrate"  # migrate | watch | analyze
    # Records written before ownership existed counted every connection on the ports.
    attribution: Attribution = Attribution.PORT_RANGE
    foreign: tuple[ForeignFlow, ...] = ()
    diagnosis: Diagnosis | None = None
    timeline: Timeline | None = None
    forecasts: tuple[LinkForecast, ...] = ()  # what the pre-copy model said of each link beforehand
    migrations: tuple[MigrationSeen, ...] = ()  # watch: every migration in the window, on its own
    capture: CaptureInfo | None = None  # which engine counted (None: records before it was said)
    command: tuple[str, ...] = ()  # the command line that made the run
    options: dict[str, Any] = field(default_factory=dict)  # the options it ran with (bandwidth, via, ...)
