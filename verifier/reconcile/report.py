"""One run's report from its legs: the outbound leg's verdict and counts, the return leg beside it,
and every finding the prediction and the legs produced (fixes come later, from prescribe)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from verifier import __version__
from verifier.expect import wanted_interfaces
from verifier.model import SCHEMA_VERSION, Expectation, Finding, Leg, Plan, Report
from verifier.predict.links import ring_finding
from verifier.reconcile.streams import cleartext_findings, stream_findings, stream_summary
from verifier.resolve import HOSTS


@dataclass(frozen=True)
class RunLabels:
    """What names the run: the guest, the two ends, how it was made, where it is stored."""

    vm: str
    source: str
    destination: str
    started_at: float
    run_dir: str | None = None
    mode: str = "migrate"  # migrate | watch | analyze
    command: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


def assemble_report(
    labels: RunLabels, plan: Plan, expectation: Expectation, leg: Leg, back: Leg | None, hosts: Path = HOSTS
) -> Report:
    # What the prediction alone showed (a slower link) stays; a predicted wrong path is now observed.
    early = tuple(f for f in plan.findings if f.code != "predicted-wrong-path")
    returned: tuple[Finding, ...] = tuple(
        replace(f, message="return leg: " + f.message) for f in (back.findings if back else ())
    )
    found = leg.findings + stream_findings(leg) + cleartext_findings(leg, plan.topology)
    # Seen on the ring: say so, in place of what the prediction said (it may not have known).
    wanted = wanted_interfaces(plan.topology, expectation)
    ring = ring_finding(plan.topology, leg.observed_path, labels.destination, wanted, hosts, seen=True)
    if ring:
        early = tuple(f for f in early if f.code != "ring-link")
        found += (ring,)
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        verdict=leg.verdict,
        vm=labels.vm,
        source=labels.source,
        destination=labels.destination,
        expected=expectation,
        observed_interface=leg.observed_interface,
        observed_path=leg.observed_path,
        interfaces=leg.interfaces,
        stream=stream_summary(leg, plan.ports),
        migration=leg.migration,
        prediction=plan.prediction,
        coverage=leg.coverage,
        findings=early + found + returned,
        run_dir=labels.run_dir,
        started_at=labels.started_at,
        expected_share=leg.expected_share,
        return_leg=back,
        mode=labels.mode,
        attribution=leg.attribution,
        foreign=leg.foreign,
        diagnosis=leg.diagnosis,
        timeline=leg.timeline,
        forecasts=plan.forecasts,
        capture=leg.capture,
        command=labels.command,
        options=labels.options,
    )
