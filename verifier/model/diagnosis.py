"""The diagnose stage's vocabulary: what a migration's speed was limited by, and forecasts per link.

Every rate named `*_bps` is in bits per second (the unit links are sold in); libvirt's own job
statistics stay in bytes, as `JobProgress` has them. `Diagnosis.bottleneck` is written to JSON as
`class` (a Python keyword, hence the rename through the field's `json_name`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from verifier.model.findings import Facts
from verifier.model.migration import JobProgress
from verifier.model.serial import INTERNAL


class Bottleneck(enum.StrEnum):
    NOT_CONVERGING = "not-converging"  # the guest dirties memory as fast as it is sent
    CAP = "cap-bound"  # a bandwidth limit (libvirt max speed, --bandwidth, migration parameter)
    LINK = "link-bound"  # the slowest link on the path is full
    SENDER = "sender-bound"  # neither: TLS, compression, one stream's CPU on a fast link


@dataclass(frozen=True)
class JobSample:
    """One poll of the job statistics, T seconds after the migration job was started."""

    t: float
    progress: JobProgress


@dataclass(frozen=True)
class Timeline:
    """What a migration looked like over time, on both sides of the seam.

    `samples`: the job statistics as polled (the completed job's statistics last, when known).
    `wire_bins`: (bin start in seconds since the job started, bytes on the wire of the migration's
    own connections in that bin), counted on the observed path's L3 interface; bins of `bin_s`
    seconds, in time order, empty bins may be left out.
    """

    samples: tuple[JobSample, ...] = ()
    wire_bins: tuple[tuple[float, int], ...] = ()
    bin_s: float = 1.0


@dataclass(frozen=True)
class RateCap:
    """A bandwidth limit in effect for the migration, and where it was set."""

    bps: int
    source: str  # "--bandwidth 20 MiB/s", "libvirt max speed (virsh migrate-setspeed)", ...


@dataclass(frozen=True)
class Diagnosis:
    """Why the migration went as fast as it did, with the numbers that show it."""

    bottleneck: Bottleneck = field(metadata={"json_name": "class"})
    converged: bool
    iterations: int | None
    downtime_ms: int | None
    wire_rate_bps: int | None  # see verifier.diagnose.classify for the one definition
    link_rate_bps: int | None  # the slowest link on the path (tbf shaping, bond member speed)
    cap_bps: int | None
    dirty_rate_bps: int | None  # memory_dirty_rate (pages/s) * page size * 8
    evidence: tuple[str, ...] = ()
    cap_source: str | None = None
    transfer_rate_bps: int | None = None  # libvirt's memory_bps * 8: QEMU's own view of its rate
    cause: str | None = None  # sender-bound: the likely cause
    # Working data for the prescriptions (the run records these elsewhere).
    streams: int = field(default=1, metadata=INTERNAL)
    tls: bool = field(default=False, metadata=INTERNAL)
    compressed: bool = field(default=False, metadata=INTERNAL)
    remaining_bytes: int | None = field(default=None, metadata=INTERNAL)  # what stays dirty per pass


@dataclass(frozen=True)
class LinkForecast:
    """The pre-copy model's prediction for one candidate link, before migrating."""

    interface: str
    rate_bps: int  # the link's rate (bits/s)
    converges: bool
    iterations: int | None  # passes over memory, the final stop-and-copy included
    duration_s: float | None
    text: str
    usable_bps: int | None = None  # what one migration can send over it (payload, bits/s)


@dataclass(frozen=True)
class DiagnosisFacts(Facts):
    """Facts for the bottleneck findings: the diagnosis itself, and the faster link if one exists.

    `interface` / `name`: the faster link and the destination's host name on it; `count`: the
    streams the migration used.
    """

    diagnosis: Diagnosis | None = None
    faster_rate_bps: int | None = None
    forecast: LinkForecast | None = None  # the faster link's forecast, when one was made
