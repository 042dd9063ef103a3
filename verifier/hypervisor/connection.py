"""The libvirt connections of one check: the source and the destination daemons, the domain's
state, where the guest is, what the guest does to its memory; the job itself is job.py's."""

from __future__ import annotations

import time
from typing import Any

from verifier.errors import EnvironmentProblem, UsageError
from verifier.hypervisor import job
from verifier.hypervisor._lib import libvirt as _libvirt
from verifier.hypervisor._lib import open_connection
from verifier.model import MigrationRequest, MigrationResult

SETTLE_S = 10.0  # the longest wait for an aborted migration's incoming copy to leave the destination


def host_uuid(conn: Any) -> str:
    """The host UUID libvirt reports in its capabilities (libvirtd.conf host_uuid, else SMBIOS)."""
    import xml.etree.ElementTree as ET

    node = ET.fromstring(conn.getCapabilities()).find("./host/uuid")
    return node.text.strip() if node is not None and node.text else ""


class LibvirtHypervisor:
    def __init__(self, source_uri: str, dest_uri: str) -> None:
        self.source_uri = source_uri
        self.dest_uri = dest_uri
        self._src: Any = None
        self._dst: Any = None

    def __enter__(self) -> LibvirtHypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def src(self) -> Any:
        if self._src is None:
            self._src = open_connection(self.source_uri, "source")
        return self._src

    @property
    def dst(self) -> Any:
        if self._dst is None:
            self._dst = open_connection(self.dest_uri, "destination")
        return self._dst

    def _domain(self, conn: Any, vm: str, where: str) -> Any:
        lv = _libvirt()
        try:
            return conn.lookupByName(vm)
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                raise UsageError(
                    f"no domain named {vm!r} on {where}", hint="check the name with `virsh list --all`"
                ) from exc
            raise EnvironmentProblem(f"cannot look up {vm!r} on {where}: {exc.get_error_message()}") from exc

    def check_domain(self, vm: str) -> None:
        lv = _libvirt()
        dom = self._domain(self.src, vm, self.source_uri)
        if dom.state()[0] != lv.VIR_DOMAIN_RUNNING:
            raise UsageError(
                f"domain {vm!r} is not running on {self.source_uri}",
                hint="live migration needs a running guest: `virsh start`",
            )
        if dom.jobInfo()[0] != lv.VIR_DOMAIN_JOB_NONE:
            raise UsageError(
                f"domain {vm!r} already has a job in progress", hint="wait for it, or `virsh domjobabort` it"
            )
        if host_uuid(self.dst) == host_uuid(self.src):
            raise UsageError(
                f"destination is the source host ({self.dest_uri} and {self.source_uri} share host UUID "
                f"{host_uuid(self.src)})",
                hint="name another host as DEST",
            )

    def destination_hostname(self) -> str:
        return str(self.dst.getHostname())

    def source_hostname(self) -> str:
        return str(self.src.getHostname())

    def locate(self, vm: str, settle_s: float = 0.0) -> str:
        """Where the guest runs now: 'source', 'destination', 'both', 'none'. With SETTLE_S, first
        wait up to that long for an aborted migration's incoming copy (active, not running: paused
        for the incoming migration) to leave the destination: libvirt tears it down after the
        migration call has returned, not always before (a lab test found it there at once, on a
        slow host), and the report should describe the hosts as the operator will find them."""
        lv = _libvirt()
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and self._incoming_copy(vm):
            time.sleep(0.2)
        found = []
        for role, conn in (("source", self.src), ("destination", self.dst)):
            try:
                if conn.lookupByName(vm).state()[0] == lv.VIR_DOMAIN_RUNNING:
                    found.append(role)
            except lv.libvirtError:
                pass
        return {0: "none", 2: "both"}.get(len(found), found[0] if found else "none")

    def _incoming_copy(self, vm: str) -> bool:
        """The destination holds VM active but not running: the incoming side of a migration."""
        lv = _libvirt()
        try:
            dom = self.dst.lookupByName(vm)
            return bool(dom.isActive()) and dom.state()[0] != lv.VIR_DOMAIN_RUNNING
        except lv.libvirtError:
            return False

    def migrate(self, req: MigrationRequest, progress: job.ProgressFn) -> MigrationResult:
        dom = self._domain(self.src, req.vm, self.source_uri)

        def settled() -> str:  # after a failed or aborted job
            return self.locate(req.vm, settle_s=SETTLE_S)

        return job.run(dom, req, progress, settled, lambda: self._completed_stats(req.vm))

    def memory_bytes(self, vm: str) -> int | None:
        """The guest's memory (virDomainGetInfo, KiB)."""
        lv = _libvirt()
        try:
            return int(self._domain(self.src, vm, self.source_uri).info()[2]) * 1024
        except lv.libvirtError:
            return None

    def dirty_rate(self, vm: str, seconds: int = 1) -> float | None:
        """Bytes/s the guest dirties, measured by QEMU (virDomainStartDirtyRateCalc, then the
        dirtyrate.* domain stats); None where the hypervisor cannot measure it."""
        lv = _libvirt()
        dom = self._domain(self.src, vm, self.source_uri)
        try:
            dom.startDirtyRateCalc(seconds, 0)
            deadline = time.monotonic() + seconds + 5
            while time.monotonic() < deadline:
                time.sleep(0.25)
                stats = self.src.domainListGetStats([dom], lv.VIR_DOMAIN_STATS_DIRTYRATE)[0][1]
                if stats.get("dirtyrate.calc_status") == 2:  # VIR_DOMAIN_DIRTYRATE_MEASURED
                    return float(stats["dirtyrate.megabytes_per_second"]) * (1 << 20)
        except (lv.libvirtError, AttributeError, KeyError, IndexError):
            return None
        return None

    def _completed_stats(self, vm: str) -> dict[str, Any]:
        lv = _libvirt()
        for conn in (self.dst, self.src):
            try:
                stats: dict[str, Any] = conn.lookupByName(vm).jobStats(lv.VIR_DOMAIN_JOB_STATS_COMPLETED)
            except lv.libvirtError:
                continue
            if stats.get("data_processed") is not None:
                return stats
        return {}

    def close(self) -> None:
        for conn in (self._src, self._dst):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a dead connection must not mask the result
                    pass
