"""The migration stage's inputs and outputs: the request, progress while it runs, the result.

libvirt's job statistics are a dict of optional keys; `hypervisor.py` turns them into
`JobProgress` so no other stage ever sees a raw `jobStats()` dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier.model.enums import MigrationStatus
from verifier.model.serial import INTERNAL


@dataclass(frozen=True)
class MigrationRequest:
    vm: str
    dest_uri: str
    migrate_uri: str | None = None
    bandwidth_mib: int | None = None
    parallel: int | None = None
    timeout_s: float | None = None  # abort after this long: the guest stays on the source
    auto_converge: bool = False  # VIR_MIGRATE_AUTO_CONVERGE: QEMU throttles the guest's vCPUs
    postcopy: bool = False  # VIR_MIGRATE_POSTCOPY, switched to post-copy after the first pass
    max_downtime_ms: int | None = None  # virDomainMigrateSetMaxDowntime
    dest_xml: str | None = None  # VIR_MIGRATE_PARAM_DEST_XML: the guest as the destination defines it (probe)


@dataclass(frozen=True)
class JobProgress:
    """One poll of a running job (virDomainGetJobStats). Bytes and bytes/s, as libvirt gives them."""

    data_total: int = 0
    data_processed: int = 0
    data_remaining: int = 0
    memory_bps: float = 0.0
    time_elapsed_ms: int | None = None
    memory_iteration: int | None = None
    memory_remaining: int | None = None
    memory_dirty_rate: int | None = None  # pages/s
    memory_page_size: int | None = None
    downtime_ms: int | None = None  # expected downtime while running, real downtime once completed
    auto_converge_throttle: int | None = None

    @property
    def started(self) -> bool:
        """libvirt reports no totals during its begin/prepare phase (the destination QEMU starting)."""
        return self.data_total > 0

    @property
    def percent(self) -> float:
        total = self.data_total
        return 100.0 * (total - self.data_remaining) / total if total else 0.0


@dataclass(frozen=True)
class MigrationResult:
    status: MigrationStatus
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
    # Every poll of the job statistics (seconds since the job started), the completed job's last:
    # the run stores them as its timeline.
    samples: tuple[tuple[float, JobProgress], ...] = field(default=(), metadata=INTERNAL)
    max_speed_mib: int | None = field(default=None, metadata=INTERNAL)  # libvirt's max speed (migrate-setspeed)
