"""One live migration job through libvirt: start it, poll it, stop it on a timeout or Ctrl-C.

Facts that drive the calls (design.md section 4): QEMU needs VIR_MIGRATE_PEER2PEER with
migrateToURI3 ("direct migration is not supported"); the call blocks, so it runs in a worker
thread while this thread polls jobStats() every half second; `memory_bps` is the throughput key;
after completion the destination's jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED) is what QEMU did.
Every poll is kept (time since the job started, JobProgress): the run's timeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from verifier import signals
from verifier.hypervisor._lib import libvirt, to_int
from verifier.model import JobProgress, MigrationRequest, MigrationResult, MigrationStatus

ProgressFn = Callable[[JobProgress], None]
POLL_S = 0.5


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


def flags_and_params(req: MigrationRequest) -> tuple[int, dict[str, Any]]:
    lv = libvirt()
    flags = lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PEER2PEER
    params: dict[str, Any] = {}
    if req.migrate_uri:
        params[lv.VIR_MIGRATE_PARAM_URI] = req.migrate_uri
    if req.bandwidth_mib:
        params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = req.bandwidth_mib
    if req.parallel:
        flags |= lv.VIR_MIGRATE_PARALLEL
        params[lv.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = req.parallel
    if req.dest_xml:
        params[lv.VIR_MIGRATE_PARAM_DEST_XML] = req.dest_xml
    if req.auto_converge:
        flags |= lv.VIR_MIGRATE_AUTO_CONVERGE
    if req.postcopy:
        flags |= lv.VIR_MIGRATE_POSTCOPY
    return flags, params


def run(
    dom: Any,
    req: MigrationRequest,
    progress: ProgressFn,
    locate: Callable[[], str],
    completed: Callable[[], dict[str, Any]],
) -> MigrationResult:
    """Migrate DOM as REQ asks; LOCATE says where the guest is after a failure, COMPLETED gives the
    finished job's statistics."""
    lv = libvirt()
    flags, params = flags_and_params(req)
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            dom.migrateToURI3(req.dest_uri, params, flags)
        except lv.libvirtError as exc:
            outcome["error"] = exc.get_error_message()

    max_speed = _max_speed(dom)
    started = time.time()
    thread = threading.Thread(target=worker, name="migrate", daemon=True)
    thread.start()
    peak = 0.0
    last = JobProgress()
    samples: list[tuple[float, JobProgress]] = []
    ended: list[float] = []  # when the job ended: asking for the completed stats is not the job
    downtime_set = req.max_downtime_ms is None
    timed_out = False

    def result(status: MigrationStatus, **fields: Any) -> MigrationResult:
        return MigrationResult(
            status=status,
            migrate_uri=req.migrate_uri,
            dest_uri=req.dest_uri,
            duration_s=(ended[0] if ended else time.time()) - started,
            started_at=started,
            samples=tuple(samples),
            max_speed_mib=max_speed,
            **fields,
        )

    try:
        while thread.is_alive():
            thread.join(POLL_S)
            try:
                now = job_progress(dom.jobStats())
            except lv.libvirtError:
                continue
            samples.append((round(time.time() - started, 3), now))
            peak = max(peak, now.memory_bps)
            if now.data_processed >= last.data_processed:
                last = now  # the furthest QEMU got; a dying job may report zeros
            if not downtime_set and now.started:
                # Only a running migration job takes a downtime limit.
                downtime_set = _set_downtime(dom, req.max_downtime_ms or 0)
            if req.postcopy and now.started and (now.memory_iteration or 0) >= 2 and "postcopy" not in outcome:
                outcome["postcopy"] = _start_postcopy(dom)  # after one full pass, like --postcopy-after-precopy
            progress(now)
            if req.timeout_s is not None and not timed_out and time.time() - started >= req.timeout_s:
                timed_out = True
                _abort(dom)
    except KeyboardInterrupt:
        # Abort and wait for libvirt to roll back; a second Ctrl-C must not cut this short.
        with signals.shielded("aborting the migration"):
            _abort(dom)
            thread.join(60)
            return result(
                MigrationStatus.INTERRUPTED,
                error="interrupted: the migration job was aborted (virDomainAbortJob)",
                guest_location=locate(),
            )
    ended.append(time.time())
    if "error" in outcome or timed_out:
        why = outcome.get("error", "")
        if timed_out:
            why = f"timed out after {req.timeout_s:g} s: the job was aborted (virDomainAbortJob)" + (
                f"; libvirt: {why}" if why else ""
            )
        return result(
            MigrationStatus.FAILED,
            data_processed=last.data_processed or None,
            data_total=last.data_total or None,
            error=why,
            guest_location=locate(),
        )
    done = completed()
    if done:
        samples.append((round(ended[0] - started, 3), job_progress(done)))
    return result(
        MigrationStatus.COMPLETED,
        data_processed=to_int(done.get("data_processed")),
        data_total=to_int(done.get("data_total")),
        peak_bps=max(peak, float(done.get("memory_bps", 0) or 0)) or None,
        downtime_ms=to_int(done.get("downtime")),
        guest_location="destination",
    )


def _max_speed(dom: Any) -> int | None:
    """virDomainMigrateGetMaxSpeed, MiB/s; libvirt's 'unlimited' is a huge number, not 0."""
    lv = libvirt()
    try:
        return int(dom.migrateGetMaxSpeed(0))
    except lv.libvirtError:
        return None


def _set_downtime(dom: Any, ms: int) -> bool:
    lv = libvirt()
    try:
        dom.migrateSetMaxDowntime(ms, 0)
        return True
    except lv.libvirtError:
        return False


def _start_postcopy(dom: Any) -> bool:
    lv = libvirt()
    try:
        dom.migrateStartPostCopy(0)
        return True
    except lv.libvirtError:
        return False


def _abort(dom: Any) -> None:
    lv = libvirt()
    try:
        dom.abortJob()
    except lv.libvirtError:
        pass
