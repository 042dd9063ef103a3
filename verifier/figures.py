"""The throughput figures of a run, defined once: every report, chart and `compare` shows these.

- wire rate (`wire_rate_bps`, bits/s): the migration's own bytes on the wire per second while its
  stream flowed, on the observed path's L3 interface, between the first and the last bin that
  carried bytes: `verifier.diagnose.classify.wire_rate`, fed the run's `timeline.wire_bins` when
  it has them (runs since the diagnosis), else the observed L3 interface's capture bins.
  `wire_flow_s` is how long it flowed. With fewer than three bins the edge bins cannot be left
  out, so the rate is only a lower bound (`wire_rate_lower_bound`): bins are one second, so a
  stream shorter than about three seconds gets no exact rate (finer bins would need the capture
  to count them; it does not).
- job duration (`job_duration_s`): libvirt's job from start to end (`migration.duration_s`),
  QEMU starting on the destination included: not a rate's denominator.
- libvirt's memory rate (`libvirt_memory_bytes_per_s`, bytes/s, libvirt's own unit): QEMU's view
  of what it sent, the diagnosis's median over the polls while the job ran, else the median of
  the recorded polls, else the highest value the job reported (`migration.peak_bps`, which holds
  bytes/s despite its name); `libvirt_memory_rate_basis` says which.

Pure: from a Report (or a Leg) to numbers. Rendering the words is verifier.render.words's job.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.diagnose.classify import wire_rate
from verifier.model import Diagnosis, InterfaceReport, JobProgress, MigrationResult, Timeline

EXACT_BINS = 3  # the wire rate leaves the two edge bins out, so it needs at least three


class Run(Protocol):
    """What Report and Leg share: enough to compute the figures of either."""

    @property
    def observed_interface(self) -> str | None: ...
    @property
    def observed_path(self) -> tuple[str, ...]: ...
    @property
    def interfaces(self) -> tuple[InterfaceReport, ...]: ...
    @property
    def migration(self) -> MigrationResult: ...
    @property
    def timeline(self) -> Timeline | None: ...
    @property
    def diagnosis(self) -> Diagnosis | None: ...


@dataclass(frozen=True)
class Figures:
    wire_rate_bps: int | None
    wire_flow_s: float
    wire_rate_lower_bound: bool  # fewer than three bins carried bytes: a lower bound
    wire_bytes: int  # the migration's own bytes on the wire interface over the whole flow
    wire_interface: str | None  # the observed path's L3 interface, where the bins were counted
    wire_source: str  # "timeline" (own connections, per job second) | "capture bins" | "none"
    bin_s: float
    job_duration_s: float | None
    data_processed_bytes: int | None
    libvirt_memory_bytes_per_s: float | None
    libvirt_memory_rate_basis: str | None  # "median of the polls" | "peak"

    @property
    def wire_rate_exact(self) -> bool:
        return self.wire_rate_bps is not None and not self.wire_rate_lower_bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "wire_rate_bps": self.wire_rate_bps,
            "wire_flow_s": self.wire_flow_s,
            "wire_rate_lower_bound": self.wire_rate_lower_bound,
            "wire_bytes": self.wire_bytes,
            "wire_interface": self.wire_interface,
            "wire_source": self.wire_source,
            "bin_s": self.bin_s,
            "job_duration_s": self.job_duration_s,
            "data_processed_bytes": self.data_processed_bytes,
            "libvirt_memory_bytes_per_s": self.libvirt_memory_bytes_per_s,
            "libvirt_memory_rate_basis": self.libvirt_memory_rate_basis,
        }


def wire_interface(run: Run) -> str | None:
    """The observed path's L3 interface: the path's first hop (br0 of br0 -> eth0)."""
    return run.observed_path[0] if run.observed_path else run.observed_interface


def wire_bins(run: Run) -> tuple[Timeline, str]:
    """(the bins the wire rate is computed on, where they came from)."""
    tl = run.timeline
    if tl is not None and tl.wire_bins:
        return tl, "timeline"
    name = wire_interface(run)
    r = next((i for i in run.interfaces if i.name == name), None)
    if r is None or not r.bins:
        return Timeline(), "none"
    return Timeline(wire_bins=tuple((float(b.second), b.bytes_tx + b.bytes_rx) for b in r.bins)), "capture bins"


def _active_bins(tl: Timeline) -> int:
    active = sorted(start for start, n in tl.wire_bins if n > 0)
    if not active or tl.bin_s <= 0:
        return 0
    return round((active[-1] - active[0]) / tl.bin_s) + 1


def _running(samples: tuple[JobProgress, ...]) -> list[float]:
    return [p.memory_bps for p in samples if p.started and p.data_remaining > 0 and p.memory_bps > 0]


def memory_rate(run: Run) -> tuple[float | None, str | None]:
    """libvirt's memory_bps (bytes/s) and what it is: see the module docstring."""
    d = run.diagnosis
    if d is not None and d.transfer_rate_bps:
        return d.transfer_rate_bps / 8, "median of the polls"
    polls = _running(tuple(s.progress for s in run.timeline.samples)) if run.timeline else []
    if polls:
        return float(statistics.median(polls)), "median of the polls"
    peak = run.migration.peak_bps
    return (float(peak), "peak") if peak else (None, None)


def figures(run: Run) -> Figures:
    tl, source = wire_bins(run)
    rate, flowed = wire_rate(tl)
    count = _active_bins(tl)
    memory, basis = memory_rate(run)
    m = run.migration
    return Figures(
        wire_rate_bps=rate,
        wire_flow_s=flowed,
        wire_rate_lower_bound=rate is not None and count < EXACT_BINS,
        wire_bytes=sum(n for _, n in tl.wire_bins),
        wire_interface=wire_interface(run) if source != "none" else None,
        wire_source=source,
        bin_s=tl.bin_s,
        job_duration_s=m.duration_s,
        data_processed_bytes=m.data_processed,
        libvirt_memory_bytes_per_s=memory,
        libvirt_memory_rate_basis=basis,
    )


def sent_fraction(job: JobProgress) -> float | None:
    """How much of what will actually be sent is sent: processed / (processed + remaining).

    Not (total - remaining) / total: data_total counts the guest's whole RAM, zero pages QEMU never
    sends included, so that figure jumps ahead. None before libvirt reports anything."""
    whole = job.data_processed + job.data_remaining
    return job.data_processed / whole if whole > 0 else None
