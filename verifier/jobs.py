"""What a job is asked to do (`JobOptions`) and what it runs on (`Backends`): the conductor's inputs.

Kept apart from the conductor so the CLI can build them without loading any stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from verifier.capture.counting import PortRanges
from verifier.destconf import DestConfigReader
from verifier.hypervisor import HypervisorFactory
from verifier.model import (
    CaptureResult,
    Endpoints,
    Expectation,
    JobProgress,
    OwnedFlow,
    Ownership,
    Report,
    Topology,
    to_dict,
)
from verifier.resolve import HOSTS, Resolver, resolve
from verifier.routing import RouteLookup
from verifier.store import Stored


class Capture(Protocol):
    """One sniffer per interface, armed by `start`, counted by `stop` (live or replayed)."""

    def start(self) -> None: ...
    def stop(self, drain_s: float = 0.3) -> CaptureResult: ...
    def bytes_so_far(self) -> int: ...
    def on_new_flow(self, callback: Callable[[Sequence[Endpoints]], None]) -> bool:
        """Call CALLBACK with the connections soon after their first payload passes; False: never
        called."""
        ...


CaptureFactory = Callable[[list[str], PortRanges, Path | None], Capture]


class OwnerSampler(Protocol):
    """Samples, while a migration runs, which connections its processes own (owners.py)."""

    def start(self, woken: bool = False) -> None:
        """WOKEN: the capture calls wake() on new flows, so the sampler may look less often."""
        ...

    def wake(self, conns: Sequence[Endpoints] = ()) -> None: ...
    def stop(self) -> Ownership: ...


OwnersFactory = Callable[[str, PortRanges], OwnerSampler]  # (vm, watched ports) -> sampler


class DomainsSampler(Protocol):
    """For watch: every QEMU's flows on the ports, whatever its guest (owners.domains)."""

    problem: str | None

    def start(self, woken: bool = False) -> None: ...
    def wake(self, conns: Sequence[Endpoints] = ()) -> None: ...
    def stop(self) -> tuple[OwnedFlow, ...]: ...


Log = Callable[[str], None]


@dataclass(frozen=True)
class JobOptions:
    vm: str
    dest: str
    connect_uri: str = ""
    dest_uri: str = ""
    migrate_uri: str | None = None
    via: str | None = None
    bandwidth: int | None = None  # MiB/s, libvirt's unit
    parallel: int | None = None
    ports: PortRanges = ()  # --ports: added to the profile's
    profile: str = "qemu"
    roles: tuple[tuple[str, str], ...] = ()  # --role IFACE=NAME
    interfaces: tuple[str, ...] = ()
    expectation: Expectation = field(default_factory=Expectation)
    captures_dir: Path = Path("captures")
    chart: Path | None = None
    round_trip: bool = False
    return_uri: str | None = None
    command: tuple[str, ...] = ()  # the command line, recorded in the run
    timeout: float | None = None  # seconds; then the job is aborted and the guest stays put
    auto_converge: bool = False
    postcopy: bool = False
    max_downtime: int | None = None  # ms
    probe: bool = False  # the guest is a throwaway probe (verify-path probe): run.json says so

    def recorded(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The command line and the options as run.json keeps them: a later compare must know
        that one run had --bandwidth 20 and the other none."""
        options = to_dict(replace(self, command=()))
        options.pop("command", None)
        options["captures_dir"] = str(self.captures_dir)
        options["chart"] = str(self.chart) if self.chart else None
        return self.command, options


def _quiet(_message: str) -> None:
    pass


def _no_progress(_job: JobProgress) -> None:
    pass


@dataclass(frozen=True)
class Backends:
    topology: Callable[[], Topology]
    routes: RouteLookup
    hypervisor: HypervisorFactory
    capture: CaptureFactory
    dest_config: DestConfigReader
    owners: OwnersFactory | None = None  # None: no ownership, counting falls back (and says so)
    domains: Callable[[PortRanges], DomainsSampler] | None = None  # watch: every guest's flows
    hosts: Path = HOSTS  # the hosts file whose names predict and prescribe quote
    resolver: Resolver = resolve  # how QEMU will resolve a name here
    log: Log = _quiet
    progress: Callable[[JobProgress], None] = _no_progress


@dataclass(frozen=True)
class Finished:
    """A finished run: its report (fixes attached, stored) and where its chart went."""

    report: Report
    stored: Stored
