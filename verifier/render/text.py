"""The terminal summary: verdict line first, then the per-interface table, the path, findings."""

from __future__ import annotations

from verifier.model import InterfaceReport, Leg, Report
from verifier.render.units import human_bytes, mbit

VERDICT_WORDS = {
    "pass": "PASS",
    "fail": "FAIL",
    "inconclusive": "INCONCLUSIVE",
    "observed": "OBSERVED",
}


def verdict_line(report: Report) -> str:
    word = VERDICT_WORDS.get(report.verdict, report.verdict.upper())
    path = " -> ".join(report.observed_path) or "nothing seen"
    head = f"{word}: {report.vm} {report.source} -> {report.destination} took {path}"
    if report.expected_share is not None:
        want = ", ".join(report.expected.interfaces + report.expected.networks)
        head += f"; {report.expected_share:.1%} on expected {want}"
    return head


def table(interfaces: tuple[InterfaceReport, ...]) -> list[str]:
    rows = [
        f"  {'interface':<10} {'kind':<8} {'master':<7} {'role':<9} {'tx':>10} {'rx':>10} "
        f"{'packets':>9} {'share':>7} {'drops':>6}"
    ]
    for r in interfaces:
        rows.append(
            f"  {r.name:<10} {r.kind:<8} {r.master or '-':<7} {r.role or '-':<9} "
            f"{human_bytes(r.bytes_tx):>10} {human_bytes(r.bytes_rx):>10} {r.packets:>9} "
            f"{r.share:>7.1%} {r.drops:>6}"
        )
    return rows


def leg_lines(leg: Leg, title: str) -> list[str]:
    m = leg.migration
    lines = [f"{title}: {' -> '.join(leg.observed_path) or 'nothing seen'} ({leg.verdict})"]
    if m.duration_s:
        rate = f", {mbit(m.data_processed / m.duration_s)}" if m.data_processed else ""
        lines.append(
            f"  migration {m.status} in {m.duration_s:.1f} s, data_processed "
            f"{human_bytes(m.data_processed or 0)}{rate}, uri {m.migrate_uri or '(libvirt default)'}"
        )
    cov = leg.coverage
    if cov.ratio is not None:
        lines.append(f"  coverage {cov.ratio:.1%} of data_processed{'' if cov.ok else ' - ' + cov.reason}")
    lines += table(leg.interfaces)
    return lines


def render(report: Report) -> str:
    lines = [verdict_line(report), ""]
    m = report.migration
    if report.mode == "migrate":
        lines.append(
            f"migration: {m.status}"
            + (f" in {m.duration_s:.1f} s" if m.duration_s else "")
            + f", uri {m.migrate_uri or '(libvirt default: the destination hands out its address)'}"
        )
        if m.data_processed is not None:
            rate = f" ({mbit(m.data_processed / m.duration_s)})" if m.duration_s else ""
            lines.append(f"data_processed: {human_bytes(m.data_processed)}{rate}")
    cov = report.coverage
    if cov.ratio is not None:
        lines.append(
            f"coverage: {cov.ratio:.1%} of data_processed seen as TCP payload" + ("" if cov.ok else f" - {cov.reason}")
        )
    lines.append("")
    lines += table(report.interfaces)
    lines.append("")
    pred = report.prediction
    lines.append("path explanation:")
    for reason in pred.reasons:
        ev = f"  [{reason.evidence}]" if reason.evidence else ""
        lines.append(f"  {reason.step}: {reason.detail}{ev}")
    if pred.interface:
        lines.append(
            f"  predicted: {' -> '.join(pred.path)}; observed: {' -> '.join(report.observed_path) or 'nothing'}"
        )
    if report.return_leg:
        lines.append("")
        lines += leg_lines(report.return_leg, "return leg (received here)")
    if report.findings:
        lines.append("")
        lines.append("findings:")
        for f in report.findings:
            lines.append(f"  [{f.severity}] {f.code}: {f.message}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    if report.run_dir:
        lines.append("")
        lines.append(f"run stored in {report.run_dir}")
    return "\n".join(lines) + "\n"
