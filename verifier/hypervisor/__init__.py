"""The hypervisor stage, and the only package that imports libvirt (`_lib`): the connections and
checks (connection), one migration job (job), the lab's and the probe's domains (domains).

Stages above see only `Hypervisor` and model values; no raw jobStats() dict leaves this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from verifier.hypervisor.connection import LibvirtHypervisor, host_uuid
from verifier.hypervisor.job import ProgressFn, job_progress
from verifier.model import MigrationRequest, MigrationResult


class Hypervisor(Protocol):
    """What the pipeline needs from a hypervisor; LibvirtHypervisor is the real one. A context
    manager: leaving the block closes its connections, whatever happened inside."""

    def __enter__(self) -> Hypervisor: ...
    def __exit__(self, *exc: object) -> None: ...
    def check_domain(self, vm: str) -> None: ...
    def destination_hostname(self) -> str: ...
    def source_hostname(self) -> str: ...
    def migrate(self, req: MigrationRequest, progress: ProgressFn) -> MigrationResult: ...
    def memory_bytes(self, vm: str) -> int | None: ...
    def dirty_rate(self, vm: str, seconds: int = 1) -> float | None: ...


HypervisorFactory = Callable[[str, str], Hypervisor]

__all__ = [
    "Hypervisor",
    "HypervisorFactory",
    "LibvirtHypervisor",
    "ProgressFn",
    "host_uuid",
    "job_progress",
]
