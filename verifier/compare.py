"""Two runs side by side: did the path change, did it leave the expected link, did it get slower.

A is the reference (yesterday's run, the run before a change), B the run under test. `compare` is
pure; `render_text` is its terminal rendering; the chart is verifier.render.chart.render_compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from verifier.model import Finding, Report
from verifier.render.text import VERDICT_WORDS
from verifier.render.units import human_bytes, mbit


@dataclass(frozen=True)
class InterfaceRow:
    """One interface in either run; None where the run did not watch it."""

    name: str
    bytes_a: int | None
    bytes_b: int | None
    share_a: float | None
    share_b: float | None


@dataclass(frozen=True)
class Comparison:
    label_a: str
    label_b: str
    verdict_a: str
    verdict_b: str
    path_a: tuple[str, ...]
    path_b: tuple[str, ...]
    path_changed: bool
    expected: tuple[str, ...]  # A's --expect interfaces (B's when A has none)
    moved_away_from_expected: bool
    moved_onto_expected: bool
    interfaces: tuple[InterfaceRow, ...]
    throughput_a: float | None  # data_processed / duration_s, bytes per second
    throughput_b: float | None
    throughput_change_pct: float | None  # (B - A) / A in percent; negative is slower
    duration_a: float | None
    duration_b: float | None
    coverage_a: float | None
    coverage_b: float | None
    findings_added: tuple[Finding, ...]
    findings_removed: tuple[Finding, ...]
    max_slowdown_pct: float | None
    slowed_down: bool
    exit_code: int  # 1: moved away from the expected link or slowed down past the limit; else 0


def throughput(report: Report) -> float | None:
    """Bytes per second libvirt moved: data_processed / duration_s."""
    m = report.migration
    if not m.data_processed or not m.duration_s:
        return None
    return m.data_processed / m.duration_s


def label(report: Report) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.started_at))
    return f"{report.vm} {when}"


def _rows(a: Report, b: Report) -> tuple[InterfaceRow, ...]:
    by_a = {r.name: r for r in a.interfaces}
    by_b = {r.name: r for r in b.interfaces}
    names = list(by_a) + [n for n in by_b if n not in by_a]
    rows = []
    for n in names:
        ra, rb = by_a.get(n), by_b.get(n)
        rows.append(
            InterfaceRow(
                n,
                ra.bytes_tx + ra.bytes_rx if ra else None,
                rb.bytes_tx + rb.bytes_rx if rb else None,
                ra.share if ra else None,
                rb.share if rb else None,
            )
        )
    return tuple(rows)


def _key(f: Finding) -> tuple[str, str]:
    return f.code, f.message


def compare(a: Report, b: Report, max_slowdown_pct: float | None = None) -> Comparison:
    """A (reference) against B (under test).

    B moved away from the expected link when B fails where A did not, or when A's observed path
    touched one of A's --expect interfaces and B's does not. It moved onto it in the mirror cases.
    B slowed down when its throughput fell by more than MAX_SLOWDOWN_PCT percent (None: never).
    """
    expected = a.expected.interfaces or b.expected.interfaces
    on_a = bool(set(a.observed_path) & set(expected))
    on_b = bool(set(b.observed_path) & set(expected))
    away = (b.verdict == "fail" and a.verdict != "fail") or (on_a and not on_b)
    onto = (a.verdict == "fail" and b.verdict == "pass") or (on_b and not on_a)
    ta, tb = throughput(a), throughput(b)
    change = (tb - ta) / ta * 100 if ta and tb is not None else None
    slowed = max_slowdown_pct is not None and change is not None and change < -max_slowdown_pct
    keys_a = {_key(f) for f in a.findings}
    keys_b = {_key(f) for f in b.findings}
    return Comparison(
        label_a=label(a),
        label_b=label(b),
        verdict_a=a.verdict,
        verdict_b=b.verdict,
        path_a=a.observed_path,
        path_b=b.observed_path,
        path_changed=a.observed_path != b.observed_path,
        expected=expected,
        moved_away_from_expected=away,
        moved_onto_expected=onto and not away,
        interfaces=_rows(a, b),
        throughput_a=ta,
        throughput_b=tb,
        throughput_change_pct=change,
        duration_a=a.migration.duration_s,
        duration_b=b.migration.duration_s,
        coverage_a=a.coverage.ratio,
        coverage_b=b.coverage.ratio,
        findings_added=tuple(f for f in b.findings if _key(f) not in keys_a),
        findings_removed=tuple(f for f in a.findings if _key(f) not in keys_b),
        max_slowdown_pct=max_slowdown_pct,
        slowed_down=slowed,
        exit_code=1 if away or slowed else 0,
    )


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_text(c: Comparison) -> str:
    """The comparison side by side; the first line says "path changed" or "path unchanged"."""
    pa = " -> ".join(c.path_a) or "nothing seen"
    pb = " -> ".join(c.path_b) or "nothing seen"
    lines = [f"path changed: {pa} => {pb}" if c.path_changed else f"path unchanged: {pa}"]
    if c.moved_away_from_expected:
        lines.append(f"moved AWAY from the expected link ({', '.join(c.expected) or 'see verdicts'})")
    elif c.moved_onto_expected:
        lines.append(f"moved onto the expected link ({', '.join(c.expected) or 'see verdicts'})")
    if c.slowed_down:
        lines.append(f"slower by {-(c.throughput_change_pct or 0):.1f}%, more than the {c.max_slowdown_pct:g}% allowed")
    lines.append("")
    w = max(24, len(c.label_a), len(c.label_b))

    def row(name: str, va: str, vb: str, note: str = "") -> str:
        return f"  {name:<14} {va:<{w}} {vb:<{w}} {note}".rstrip()

    change = f"{c.throughput_change_pct:+.1f}%" if c.throughput_change_pct is not None else ""
    lines += [
        row("", "A", "B"),
        row("run", c.label_a, c.label_b),
        row("verdict", VERDICT_WORDS.get(c.verdict_a, c.verdict_a), VERDICT_WORDS.get(c.verdict_b, c.verdict_b)),
        row("path", pa, pb),
        row(
            "throughput",
            mbit(c.throughput_a) if c.throughput_a is not None else "-",
            mbit(c.throughput_b) if c.throughput_b is not None else "-",
            change,
        ),
        row("duration", _opt(c.duration_a, ".1f") + " s", _opt(c.duration_b, ".1f") + " s"),
        row("coverage", _opt(c.coverage_a, ".1%"), _opt(c.coverage_b, ".1%")),
        "",
        "  per interface (bytes tx+rx, share of the stream):",
    ]
    for r in c.interfaces:
        va = f"{human_bytes(r.bytes_a)} {r.share_a:.1%}" if r.bytes_a is not None and r.share_a is not None else "-"
        vb = f"{human_bytes(r.bytes_b)} {r.share_b:.1%}" if r.bytes_b is not None and r.share_b is not None else "-"
        lines.append(row(r.name, va, vb))
    if c.findings_added or c.findings_removed:
        lines.append("")
        lines.append("  findings:")
        lines += [f"    + [{f.severity}] {f.code}: {f.message}" for f in c.findings_added]
        lines += [f"    - [{f.severity}] {f.code}: {f.message}" for f in c.findings_removed]
    lines.append("")
    lines.append(f"exit code {c.exit_code}")
    return "\n".join(lines) + "\n"
