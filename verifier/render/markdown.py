"""A run as Markdown: verdict, migration facts and figures, interface table, path explanation,
diagnosis, other traffic on the ports, findings, return leg, chart.

For a ticket, a merge request or a notebook. User-controlled text is escaped so that a name or a
message can neither break the table nor inject HTML.
"""

from __future__ import annotations

from pathlib import Path

from verifier.model import Coverage, Expectation, InterfaceReport, Leg, MigrationResult, Report
from verifier.render.text import VERDICT_WORDS, foreign_text, verdict_line
from verifier.render.units import human_bytes
from verifier.render.words import (
    cap_text,
    diagnosis_lines,
    known_labels,
    leg_headline,
    run_figure_lines,
    streams_text,
    subject,
)

CHART = "chart.png"


def escape(text: str) -> str:
    """TEXT safe inside Markdown prose and table cells (">" stays: it only quotes at a line start)."""
    return (
        text.replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace("|", "\\|")
        .replace("`", "\\`")
        .replace("*", "\\*")
        .replace("_", "\\_")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _path(path: tuple[str, ...]) -> str:
    return escape(" -> ".join(path)) if path else "nothing seen"


def verdict(report: Report) -> str:
    """The verdict heading and line."""
    word = VERDICT_WORDS.get(report.verdict, report.verdict.upper())
    return f"# {escape(word)}: {escape(subject(report))}\n\n**{escape(verdict_line(report))}**\n"


def _migration_lines(m: MigrationResult, cov: Coverage, mode: str, figures: list[str]) -> list[str]:
    lines = []
    if mode == "migrate":
        lines.append(f"- migration: {escape(m.status)}")
        uri = m.migrate_uri or "(libvirt default: the destination hands out its address)"
        lines.append(f"- migrate URI: {escape(uri)}")
        if m.dest_uri:
            lines.append(f"- destination URI: {escape(m.dest_uri)}")
        if m.downtime_ms is not None:
            lines.append(f"- downtime: {m.downtime_ms} ms")
        if m.error:
            lines.append(f"- error: {escape(m.error)}")
    else:
        lines.append(f"- mode: {escape(mode)}" + (f", {m.duration_s:.1f} s watched" if m.duration_s else ""))
    lines += [f"- {escape(line)}" for line in figures]
    if cov.ratio is not None:
        lines.append(
            f"- coverage: {cov.ratio:.1%} of data\\_processed seen as TCP payload"
            + ("" if cov.ok else f" - {escape(cov.reason)}")
        )
    elif cov.reason:
        lines.append(f"- coverage: unknown - {escape(cov.reason)}")
    return lines


def facts(report: Report) -> str:
    """The migration facts as a bullet list."""
    lines = [f"- {k}: {escape(v)}" for k, v in known_labels(report)]
    want = report.expected.interfaces + report.expected.networks
    if want:
        share = f" ({report.expected_share:.1%} of the stream there)" if report.expected_share is not None else ""
        lines.append(f"- expected: {escape(', '.join(want))}{share}")
    lines.append(f"- observed path: {_path(report.observed_path)}")
    if report.prediction.path:
        lines.append(f"- predicted path: {_path(report.prediction.path)}")
    lines += _migration_lines(report.migration, report.coverage, report.mode, run_figure_lines(report))
    streams, cap = streams_text(report), cap_text(report)
    if streams:
        lines.append(f"- streams: {escape(streams)}")
    if cap:
        lines.append(f"- bandwidth cap: {escape(cap)}")
    return "\n".join(lines) + "\n"


def interface_table(interfaces: tuple[InterfaceReport, ...]) -> str:
    """The per-interface table (name, kind, master, role, tx, rx, packets, share, drops)."""
    rows = [
        "| interface | kind | master | role | tx | rx | packets | share | drops |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in interfaces:
        rows.append(
            f"| {escape(r.name)} | {escape(r.kind)} | {escape(r.master or '-')} | {escape(r.role or '-')} "
            f"| {human_bytes(r.bytes_tx)} | {human_bytes(r.bytes_rx)} | {r.packets} | {r.share:.1%} | {r.drops} |"
        )
    return "\n".join(rows) + "\n"


def path_explanation(report: Report) -> str:
    """The prediction's reasons, numbered, and predicted against observed."""
    pred = report.prediction
    lines = []
    for n, reason in enumerate(pred.reasons, 1):
        ev = f" ({escape(reason.evidence)})" if reason.evidence else ""
        lines.append(f"{n}. **{escape(reason.step)}**: {escape(reason.detail)}{ev}")
    if not lines:
        lines.append("no explanation recorded")
    if pred.interface:
        lines.append("")
        lines.append(f"predicted {_path(pred.path)}; observed {_path(report.observed_path)}")
    return "\n".join(lines) + "\n"


def findings(report: Report) -> str:
    """Findings with their fixes, or a line saying there are none."""
    if not report.findings:
        return "no findings\n"
    lines = []
    for f in report.findings:
        lines.append(f"- **{escape(f.severity)}** {escape(f.code)}: {escape(f.message)}")
        if f.fix:
            lines.append(f"  - fix: {escape(f.fix)}")
    return "\n".join(lines) + "\n"


def leg(leg: Leg, expected: Expectation) -> str:
    """A leg (the return leg) checked against the run's --expect, with its figures and table."""
    lines = [
        f"- verdict: {escape(VERDICT_WORDS.get(leg.verdict, leg.verdict.upper()))}",
        f"- {escape(leg_headline(leg, expected))}",
        f"- observed path: {_path(leg.observed_path)}",
    ]
    lines += _migration_lines(leg.migration, leg.coverage, "migrate", run_figure_lines(leg))
    return "\n".join(lines) + "\n\n" + interface_table(leg.interfaces)


def diagnosis(report: Report) -> str:
    """Why it went as fast as it did: the bottleneck class, then its evidence; "" without one."""
    lines = diagnosis_lines(report)
    if not lines:
        return ""
    return f"**{escape(lines[0])}**\n\n" + "".join(f"- {escape(ev)}\n" for ev in lines[1:])


def foreign(report: Report) -> str:
    """How the migration's own flows were told apart, and the other flows on its ports."""
    counted, flows = foreign_text(report)
    if counted is None:
        return ""
    out = f"counted: {escape(counted)}\n"
    if flows:
        out += "\nother traffic on the migration ports (not counted in the verdict):\n\n"
        out += "".join(f"- {escape(flow)}\n" for flow in flows)
    return out


def chart_for(report: Report, run_dir: Path | None, output: Path) -> tuple[str, bytes | None]:
    """(the chart link for Markdown written to OUTPUT, the PNG to write beside it or None).

    In the run directory the run's own chart.png is linked; anywhere else a copy named after
    OUTPUT goes beside it (rendered afresh when the run has none), so the link always resolves."""
    from verifier.render.html import chart_png

    if run_dir is not None and output.resolve().parent == run_dir.resolve() and (run_dir / CHART).is_file():
        return CHART, None
    return f"{output.stem}.chart.png", chart_png(report, run_dir)


def render(report: Report, run_dir: Path | None = None, chart: str | None = None) -> str:
    """The whole report. The chart is linked as CHART (relative to where the Markdown is written),
    by default RUN_DIR's chart.png when it exists."""
    if chart is None and run_dir is not None and (run_dir / CHART).is_file():
        chart = CHART
    parts = [
        verdict(report),
        "## Migration\n\n" + facts(report),
        "## Interfaces\n\n" + interface_table(report.interfaces),
        "## Path explanation\n\n" + path_explanation(report),
    ]
    if report.diagnosis is not None:
        parts.append("## Why it went this fast\n\n" + diagnosis(report))
    others = foreign(report)
    if others:
        parts.append("## Traffic on the migration ports\n\n" + others)
    parts.append("## Findings\n\n" + findings(report))
    if report.return_leg is not None:
        parts.append("## Return leg (received here)\n\n" + leg(report.return_leg, report.expected))
    if chart:
        parts.append(f"## Chart\n\n![throughput and bytes per interface]({chart})\n")
    return "\n".join(parts)
