"""The only module that imports libvirt: connect, check the domain, migrate, job statistics, abort.

Facts that drive the calls (design.md section 4): QEMU needs VIR_MIGRATE_PEER2PEER with
migrateToURI3 ("direct migration is not supported"); the call blocks, so it runs in a worker
thread while this thread polls jobStats(); `memory_bps` is the throughput key; after completion
the destination's jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)["data_processed"] is what QEMU sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from verifier import signals
from verifier.errors import EnvironmentProblem, UsageError
from verifier.model import JobProgress, MigrationRequest, MigrationResult, MigrationStatus

ProgressFn = Callable[[JobProgress], None]


class Hypervisor(Protocol):
    """What the pipeline needs from a hypervisor; LibvirtHypervisor is the real one. A context
    manager: leaving the block closes its connections, whatever happened inside."""

    def __enter__(self) -> Hypervisor: ...
    def __exit__(self, *exc: object) -> None: ...
    def check_domain(self, vm: str) -> None: ...
    def destination_hostname(self) -> str: ...
    def source_hostname(self) -> str: ...
    def migrate(self, req: MigrationRequest, progress: ProgressFn) -> MigrationResult: ...


HypervisorFactory = Callable[[str, str], Hypervisor]


def job_progress(stats: dict[str, Any]) -> JobProgress:
    """libvirt's jobStats() dict (keys are optional and vary by state) as a JobProgress."""

    def num(key: str) -> int | None:
        value = stats.get(key)
        return int(value) if value is not None else None

    return JobProgress(
        data_total=num("data_total") or 0,
        data_processed=num("data_processed") or 0,
        data_remaining=num("data_remaining") or 0,
        memory_bps=float(stats.get("memory_bps") or 0),
        time_elapsed_ms=num("time_elapsed"),
        memory_iteration=num("memory_iteration"),
        memory_remaining=num("memory_remaining"),
        memory_dirty_rate=num("memory_dirty_rate"),
        memory_page_size=num("memory_page_size"),
        downtime_ms=num("downtime"),
        auto_converge_throttle=num("auto_converge_throttle"),
    )


def _libvirt() -> Any:
    import libvirt

    # libvirt prints every error to stderr by default; ours are reported once, as one line.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def host_uuid(conn: Any) -> str:
    """The host UUID libvirt reports in its capabilities (libvirtd.conf host_uuid, else SMBIOS)."""
    import xml.etree.ElementTree as ET

    node = ET.fromstring(conn.getCapabilities()).find("./host/uuid")
    return node.text.strip() if node is not None and node.text else ""


def open_connection(uri: str, role: str) -> Any:
    lv = _libvirt()
    try:
        return lv.open(uri)
    except lv.libvirtError as exc:
        raise EnvironmentProblem(
            f"cannot reach the {role} libvirtd at {uri}: {exc.get_error_message()}",
            hint="check that libvirtd runs and listens there, or pass --connect/--dest-uri",
        ) from None


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

    def locate(self, vm: str) -> str:
        """Where the guest runs now: 'source', 'destination', 'both', 'none'."""
        lv = _libvirt()
        found = []
        for role, conn in (("source", self.src), ("destination", self.dst)):
            try:
                if conn.lookupByName(vm).state()[0] == lv.VIR_DOMAIN_RUNNING:
                    found.append(role)
            except lv.libvirtError:
                pass
        return {0: "none", 2: "both"}.get(len(found), found[0] if found else "none")

    def migrate(self, req: MigrationRequest, progress: ProgressFn) -> MigrationResult:
        lv = _libvirt()
        dom = self._domain(self.src, req.vm, self.source_uri)
        flags = lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PEER2PEER
        params: dict[str, Any] = {}
        if req.migrate_uri:
            params[lv.VIR_MIGRATE_PARAM_URI] = req.migrate_uri
        if req.bandwidth_mib:
            params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = req.bandwidth_mib
        if req.parallel:
            flags |= lv.VIR_MIGRATE_PARALLEL
            params[lv.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = req.parallel
        outcome: dict[str, Any] = {}

        def worker() -> None:
            try:
                dom.migrateToURI3(req.dest_uri, params, flags)
            except lv.libvirtError as exc:
                outcome["error"] = exc.get_error_message()

        started = time.time()
        thread = threading.Thread(target=worker, name="migrate", daemon=True)
        thread.start()
        peak = 0.0
        last = JobProgress()
        ended: list[float] = []  # when the job ended: asking for the completed stats is not the job

        def result(status: MigrationStatus, **fields: Any) -> MigrationResult:
            return MigrationResult(
                status=status,
                migrate_uri=req.migrate_uri,
                dest_uri=req.dest_uri,
                duration_s=(ended[0] if ended else time.time()) - started,
                started_at=started,
                **fields,
            )

        try:
            while thread.is_alive():
                thread.join(0.5)
                try:
                    now = job_progress(dom.jobStats())
                except lv.libvirtError:
                    continue
                peak = max(peak, now.memory_bps)
                if now.data_processed >= last.data_processed:
                    last = now  # the furthest QEMU got; a dying job may report zeros
                progress(now)
        except KeyboardInterrupt:
            # Abort and wait for libvirt to roll back; a second Ctrl-C must not cut this short.
            with signals.shielded("aborting the migration"):
                self._abort(dom)
                thread.join(60)
                return result(
                    MigrationStatus.INTERRUPTED,
                    error="interrupted: the migration job was aborted (virDomainAbortJob)",
                    guest_location=self.locate(req.vm),
                )
        ended.append(time.time())
        if "error" in outcome:
            return result(
                MigrationStatus.FAILED,
                data_processed=last.data_processed or None,
                data_total=last.data_total or None,
                error=outcome["error"],
                guest_location=self.locate(req.vm),
            )
        done = self._completed_stats(req.vm)
        return result(
            MigrationStatus.COMPLETED,
            data_processed=_int(done.get("data_processed")),
            data_total=_int(done.get("data_total")),
            peak_bps=max(peak, float(done.get("memory_bps", 0) or 0)) or None,
            downtime_ms=_int(done.get("downtime")),
            guest_location="destination",
        )

    def _abort(self, dom: Any) -> None:
        lv = _libvirt()
        try:
            dom.abortJob()
        except lv.libvirtError:
            pass

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


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
