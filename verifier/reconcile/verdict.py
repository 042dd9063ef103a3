"""One leg's verdict: capture + job statistics + prediction + expectation -> verdict and findings.

Pure: no I/O. Findings carry codes and facts, not fixes: the prescribe stage words those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from verifier import expect
from verifier.model import (
    CaptureInfo,
    CaptureResult,
    Coverage,
    Direction,
    Expectation,
    Facts,
    Finding,
    InterfaceCount,
    InterfaceReport,
    Leg,
    MigrationResult,
    MigrationStatus,
    Prediction,
    Severity,
    Topology,
    Verdict,
)
from verifier.reconcile.shares import expected_share, interface_reports, observed_path

PASS_SHARE = 0.95
COVERAGE_RANGE = (0.90, 1.10)
# With kernel drops the capture is known to be short: it still reconciles only when what was
# seen accounts for nearly all that QEMU sent (the drops were immaterial, e.g. ACKs).
DROPS_RECONCILE_MIN = 0.99
# Counters are read just after the sockets are armed and just after the last drain: a frame
# queued in between can be captured but not counted. Allow that much, no more.
COUNTER_SLACK = (1.001, 256 * 1024)


def impossible_counts(reports: Sequence[InterfaceReport | InterfaceCount]) -> list[Finding]:
    """A sniffer can never see more bytes than the interface itself carried."""
    out = []
    factor, slack = COUNTER_SLACK
    for r in reports:
        for way, seen, counted in (("tx", r.bytes_tx, r.counter_tx), ("rx", r.bytes_rx, r.counter_rx)):
            if counted is not None and seen > counted * factor + slack:
                out.append(
                    Finding(
                        "impossible-count",
                        Severity.ERROR,
                        f"{r.name} {way}: captured {seen} bytes but the interface counted only {counted}",
                    )
                )
    return out


def coverage(groups: dict[str, int], migration: MigrationResult, drops: int = 0) -> Coverage:
    seen = sum(groups.values())
    processed = migration.data_processed
    if not processed:
        return Coverage(None, seen, processed, False, "libvirt reported no data_processed to compare with")
    ratio = seen / processed
    lo, hi = COVERAGE_RANGE
    if drops:
        lo = DROPS_RECONCILE_MIN
    if ratio < lo and drops:
        why = f"the kernel dropped {drops} packets before the sniffers could read them, so the counts do not reconcile"
    elif ratio < lo:
        why = (
            "part of the stream crossed an interface or port that was not watched "
            "(or the migration was tunnelled through libvirtd)"
        )
    elif ratio > hi:
        why = "more bytes than QEMU sent: another stream shared the watched ports"
    else:
        why = ""
    return Coverage(ratio, seen, processed, not why, why)


def decide(
    topology: Topology,
    capture: CaptureResult,
    migration: MigrationResult,
    prediction: Prediction | None,
    expectation: Expectation,
    direction: Direction = Direction.OUTBOUND,
    require_coverage: bool = True,
    totals: CaptureResult | None = None,
) -> Leg:
    """One leg's verdict from CAPTURE (the migration's own connections). TOTALS, when the capture
    was narrowed to them, holds every frame the sniffers saw: only that can be held against the
    interfaces' own counters."""
    reports, groups = interface_reports(topology, capture)
    observed, path = observed_path(topology, reports, groups)
    cov = coverage(groups, migration, sum(r.drops for r in reports))
    share = expected_share(topology, expectation, reports, groups) if expectation.given else None
    impossible = impossible_counts((totals or capture).interfaces)
    findings = list(impossible)
    findings += [Finding("capture-problem", Severity.WARNING, problem) for problem in capture.problems]
    status = migration.status
    where = Facts(location=migration.guest_location)
    if status == MigrationStatus.FAILED:
        findings.append(
            Finding("migration-failed", Severity.ERROR, f"the migration failed: {migration.error}", facts=where)
        )
    if observed is None:
        findings.append(
            Finding("no-stream", Severity.ERROR, "no migration traffic was seen on the watched interfaces and ports")
        )
    for r in reports:
        if r.drops:
            msg = f"the kernel dropped {r.drops} packets for the sniffer on {r.name}"
            findings.append(Finding("capture-drops", Severity.WARNING, msg))
    if require_coverage and observed is not None and not cov.ok and status == MigrationStatus.COMPLETED:
        pct = f"{cov.ratio:.1%}" if cov.ratio is not None else "unknown"
        msg = f"captured payload is {pct} of libvirt's data_processed: {cov.reason}"
        findings.append(Finding("coverage", Severity.WARNING, msg))
    if prediction and prediction.interface and observed and prediction.interface != observed:
        msg = f"the route lookup predicted {prediction.interface}, the stream used {observed}"
        findings.append(Finding("prediction-mismatch", Severity.WARNING, msg))
    if share is not None and observed is not None and share < PASS_SHARE:
        wrong = _wrong_path(topology, expectation, prediction, share, path)
        # The fixes speak of the way to the destination; the way back is the other host's to fix.
        findings.append(wrong if direction == Direction.OUTBOUND else replace(wrong, facts=None))

    if status == MigrationStatus.INTERRUPTED:
        verdict = Verdict.INTERRUPTED
        msg = f"the run was interrupted: {migration.error}"
        findings.append(Finding("interrupted", Severity.WARNING, msg, facts=where))
    elif status == MigrationStatus.FAILED or observed is None or impossible or require_coverage and not cov.ok:
        verdict = Verdict.INCONCLUSIVE
    elif share is None:
        verdict = Verdict.OBSERVED
    else:
        verdict = Verdict.PASS if share >= PASS_SHARE else Verdict.FAIL
    return Leg(
        direction=direction,
        verdict=verdict,
        observed_interface=observed,
        observed_path=path,
        interfaces=reports,
        coverage=cov,
        migration=migration,
        connections=capture.connections,
        findings=tuple(findings),
        expected_share=share,
        capture=CaptureInfo(capture.engine, capture.pcaps, capture.engine_note),
    )


def _wrong_path(
    topology: Topology, expectation: Expectation, prediction: Prediction | None, share: float, path: tuple[str, ...]
) -> Finding:
    want = ", ".join(expectation.interfaces + expectation.networks)
    msg = f"{share:.1%} of the stream went where expected ({want}); it took {' -> '.join(path)}"
    if prediction and prediction.uri_origin == "hostname" and prediction.target_host:
        msg += (
            f" because the destination's hostname {prediction.target_host!r} resolves here to "
            f"{prediction.target_address}"
        )
    return Finding(
        "wrong-path", Severity.ERROR, msg, facts=Facts(expected=expect.target_interface(topology, expectation))
    )
