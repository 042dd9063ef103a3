"""A run as Markdown: verdict, migration facts, interface table, path explanation, findings, chart.

For a ticket, a merge request or a notebook. User-controlled text is escaped so that a name or a
message can neither break the table nor inject HTML.
"""

from __future__ import annotations

from pathlib import Path

from verifier.model import Coverage, InterfaceReport, Leg, MigrationResult, Report
from verifier.render.text import VERDICT_WORDS, verdict_line
from verifier.render.units import human_bytes, mbit

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
    return f"# {escape(word)}: {escape(report.vm)}\n\n**{escape(verdict_line(report))}**\n"


def _migration_lines(m: MigrationResult, cov: Coverage, mode: str) -> list[str]:
    lines = []
    if mode == "migrate":
        took = f" in {m.duration_s:.1f} s" if m.duration_s else ""
        lines.append(f"- migration: {escape(m.status)}{took}")
        uri = m.migrate_uri or "(libvirt default: the destination hands out its address)"
        lines.append(f"- migrate URI: {escape(uri)}")
        if m.dest_uri:
            lines.append(f"- destination URI: {escape(m.dest_uri)}")
        if m.data_processed is not None:
            rate = f" ({mbit(m.data_processed / m.duration_s)})" if m.duration_s else ""
            lines.append(f"- data processed: {human_bytes(m.data_processed)}{rate}")
        if m.downtime_ms is not None:
            lines.append(f"- downtime: {m.downtime_ms} ms")
        if m.error:
            lines.append(f"- error: {escape(m.error)}")
    else:
        lines.append(f"- mode: {escape(mode)}" + (f", {m.duration_s:.1f} s watched" if m.duration_s else ""))
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
    lines = [
        f"- VM: {escape(report.vm)}",
        f"- source: {escape(report.source)}",
        f"- destination: {escape(report.destination)}",
    ]
    want = report.expected.interfaces + report.expected.networks
    if want:
        share = f" ({report.expected_share:.1%} of the stream there)" if report.expected_share is not None else ""
        lines.append(f"- expected: {escape(', '.join(want))}{share}")
    lines.append(f"- observed path: {_path(report.observed_path)}")
    if report.prediction.path:
        lines.append(f"- predicted path: {_path(report.prediction.path)}")
    lines += _migration_lines(report.migration, report.coverage, report.mode)
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


def leg(leg: Leg) -> str:
    """A leg (the return leg) as facts and its own table."""
    lines = [
        f"- verdict: {escape(VERDICT_WORDS.get(leg.verdict, leg.verdict.upper()))}",
        f"- observed path: {_path(leg.observed_path)}",
    ]
    lines += _migration_lines(leg.migration, leg.coverage, "migrate")
    return "\n".join(lines) + "\n\n" + interface_table(leg.interfaces)


def render(report: Report, run_dir: Path | None = None) -> str:
    """The whole report; links RUN_DIR's chart.png (relative) when it exists."""
    parts = [
        verdict(report),
        "## Migration\n\n" + facts(report),
        "## Interfaces\n\n" + interface_table(report.interfaces),
        "## Path explanation\n\n" + path_explanation(report),
        "## Findings\n\n" + findings(report),
    ]
    if report.return_leg is not None:
        parts.append("## Return leg (received here)\n\n" + leg(report.return_leg))
    if run_dir is not None and (run_dir / CHART).is_file():
        parts.append(f"## Chart\n\n![throughput and bytes per interface]({CHART})\n")
    return "\n".join(parts)
