"""The diagnose stage on a finished leg: its timeline, its bottleneck, the finding that says so.

The conductor calls `diagnose_leg` after reconcile: the migration's own capture bins (already
narrowed to its own connections by the attribute stage) and libvirt's polls make the timeline;
the plan's slower-link finding and forecasts name the faster link a prescription can offer.
"""

from __future__ import annotations

from dataclasses import replace

from verifier.diagnose.classify import cap_in_effect, diagnose, link_rate_bps
from verifier.diagnose.fixes import findings
from verifier.model import CaptureResult, JobSample, Leg, MigrationStatus, Plan, Timeline


def timeline(leg: Leg, capture: CaptureResult) -> Timeline:
    """Job polls and the own flows' wire bytes per bin on the observed L3 interface, both on the
    job's clock (seconds since libvirt started the job)."""
    started = leg.migration.started_at or capture.started_at
    offset = capture.started_at - started  # capture bins count from the sniffers' start
    samples = tuple(JobSample(t, p) for t, p in leg.migration.samples)
    observed = capture.get(leg.observed_interface) if leg.observed_interface else None
    if observed is None:
        return Timeline(samples, (), 1.0)
    if observed.fine_bins:  # 100 ms: a second-long migration has a measurable rate too
        fine = tuple((round(offset + tenth / 10, 3), n) for tenth, n in observed.fine_bins)
        return Timeline(samples, fine, 0.1)
    coarse = tuple((round(offset + b.second, 3), b.bytes_tx + b.bytes_rx) for b in observed.bins)
    return Timeline(samples, coarse, 1.0)


def diagnose_leg(
    leg: Leg, capture: CaptureResult, plan: Plan, vm: str, bandwidth_mib: int | None, parallel: int | None
) -> Leg:
    m = leg.migration
    if not m.samples or m.status == MigrationStatus.INTERRUPTED:
        return leg  # nothing measured, or the user stopped it: no bottleneck to name
    line = timeline(leg, capture)
    d = diagnose(
        line,
        link_rate_bps(plan.topology, leg.observed_path) if leg.observed_path else None,
        cap_in_effect(bandwidth_mib, m.max_speed_mib),
        streams=parallel or 1,
        tls=any(c.kind == "tls" for c in leg.connections),
        compressed=False,  # verify-path does not ask for compression; a caller's flags are not seen here
        completed=m.status == MigrationStatus.COMPLETED,
    )
    faster = next((f.facts for f in plan.findings if f.code == "slower-link" and f.facts), None)
    rate = (
        link_rate_bps(plan.topology, plan.topology.chain_down(faster.interface))
        if faster and faster.interface
        else None
    )
    forecast = next((f for f in plan.forecasts if faster and f.interface == faster.interface), None)
    extra = findings(
        d,
        vm,
        (faster.interface, rate) if faster and faster.interface and rate else None,
        faster.name if faster else None,
        forecast,
    )
    return replace(leg, diagnosis=d, timeline=line, findings=leg.findings + extra)
