"""The reconcile stage: counts + job statistics + prediction + expectation -> legs with verdicts and
findings (verdict), the shares behind them (shares), what the connections' kinds say (streams),
bond members after capture (bonds), and the run's report (report)."""

from verifier.reconcile.bonds import bond_findings
from verifier.reconcile.migrations import all_qemu, by_domain, per_domain, worst
from verifier.reconcile.report import RunLabels, assemble_report
from verifier.reconcile.shares import expected_share, interface_reports, observed_path
from verifier.reconcile.streams import cleartext_findings, stream_findings, stream_summary
from verifier.reconcile.verdict import (
    COUNTER_SLACK,
    COVERAGE_RANGE,
    DROPS_RECONCILE_MIN,
    PASS_SHARE,
    coverage,
    decide,
    impossible_counts,
)

__all__ = [
    "COUNTER_SLACK",
    "COVERAGE_RANGE",
    "DROPS_RECONCILE_MIN",
    "PASS_SHARE",
    "RunLabels",
    "all_qemu",
    "assemble_report",
    "bond_findings",
    "by_domain",
    "cleartext_findings",
    "coverage",
    "decide",
    "expected_share",
    "impossible_counts",
    "interface_reports",
    "observed_path",
    "per_domain",
    "stream_findings",
    "stream_summary",
    "worst",
]
