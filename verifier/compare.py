"""Two runs side by side: did the path change, did it leave the expected link, did it get slower.

A is the reference (yesterday's run, the run before a change), B the run under test. `compare` is
pure; `render_text` is its terminal rendering; the chart is verifier.render.chart.render_compare.

Speed is the wire rate (verifier.figures: the migration's own bytes while its stream flowed), not
data_processed over the job's duration, which counts QEMU starting on the destination and made
two identical runs differ by a sixth. A rate is judged only when it can be: both runs' wire rates
exact (three bins or more), and the runs made with the same rate-setting options; a run with
--bandwidth 20 beside one without is a different experiment, not a slowdown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from verifier.figures import figures
from verifier.model import Finding, Report
from verifier.render.units import human_bytes
from verifier.render.words import VERDICT_WORDS, subject

# The options that set how fast a migration may go or which path it takes (run.json `options`).
RATE_OPTIONS = ("bandwidth", "via", "parallel", "migrate_uri")


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
    wire_rate_a_bps: int | None  # verifier.figures: own bytes on the wire while the stream flowed
    wire_rate_b_bps: int | None
    wire_rate_change_pct: float | None  # (B - A) / A in percent; negative is slower
    rate_comparable: bool  # both rates exact and the same rate options: a change means something
    rate_note: str  # why the rates were not judged ("" when they were)
    options_changed: tuple[str, ...]  # "bandwidth: none => 20" for each RATE_OPTIONS that differs
    job_duration_a_s: float | None
    job_duration_b_s: float | None
    coverage_a: float | None
    coverage_b: float | None
    findings_added: tuple[Finding, ...]
    findings_removed: tuple[Finding, ...]
    max_slowdown_pct: float | None
    slowed_down: bool
    exit_code: int  # 1: moved away from the expected link or slowed down past the limit; else 0


def label(report: Report) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.started_at))
    return f"{report.vm or subject(report)} {when}"


def _option(value: object) -> str:
    return "none" if value in (None, "", False) else str(value)


def options_changed(a: Report, b: Report) -> tuple[str, ...]:
    """The rate and path options that differ between the runs, in words."""
    return tuple(
        f"{key}: {_option(a.options.get(key))} => {_option(b.options.get(key))}"
        for key in RATE_OPTIONS
        if _option(a.options.get(key)) != _option(b.options.get(key))
    )


def _rate_note(a: Report, b: Report, changed: tuple[str, ...]) -> str:
    fa, fb = figures(a), figures(b)
    if fa.wire_rate_bps is None or fb.wire_rate_bps is None:
        return "no wire rate in " + ("A" if fa.wire_rate_bps is None else "B") + " (no capture bins carried the stream)"
    if changed:
        return "the runs were made with different options (" + "; ".join(changed) + "): not a slowdown"
    short = [n for n, f in (("A", fa), ("B", fb)) if f.wire_rate_lower_bound]
    if short:
        whose, its = (
            ("both streams", "their wire rates are")
            if len(short) == 2
            else (f"{short[0]}'s stream", "its wire rate is")
        )
        return (
            f"{whose} flowed within fewer than 3 bins of {fa.bin_s:g} s: {its} only a lower bound, "
            "too short to judge a slowdown"
        )
    return ""


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
    B slowed down when its wire rate fell by more than MAX_SLOWDOWN_PCT percent (None: never),
    and only when the rates are comparable (see the module docstring).
    """
    expected = a.expected.interfaces or b.expected.interfaces
    on_a = bool(set(a.observed_path) & set(expected))
    on_b = bool(set(b.observed_path) & set(expected))
    away = (b.verdict == "fail" and a.verdict != "fail") or (on_a and not on_b)
    onto = (a.verdict == "fail" and b.verdict == "pass") or (on_b and not on_a)
    ta, tb = figures(a).wire_rate_bps, figures(b).wire_rate_bps
    change = (tb - ta) / ta * 100 if ta and tb is not None else None
    changed = options_changed(a, b)
    note = _rate_note(a, b, changed)
    slowed = max_slowdown_pct is not None and not note and change is not None and change < -max_slowdown_pct
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
        wire_rate_a_bps=ta,
        wire_rate_b_bps=tb,
        wire_rate_change_pct=change,
        rate_comparable=not note,
        rate_note=note,
        options_changed=changed,
        job_duration_a_s=a.migration.duration_s,
        job_duration_b_s=b.migration.duration_s,
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


def _rate(bps: int | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.0f} Mbit/s"


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
        drop = -(c.wire_rate_change_pct or 0)
        lines.append(f"slower by {drop:.1f}% (wire rate), more than the {c.max_slowdown_pct:g}% allowed")
    elif c.rate_note and (c.max_slowdown_pct is not None or c.wire_rate_change_pct is not None):
        lines.append(f"speed not judged: {c.rate_note}")
    elif c.options_changed:
        lines.append("options differ: " + "; ".join(c.options_changed))
    lines.append("")
    w = max(24, len(c.label_a), len(c.label_b))

    def row(name: str, va: str, vb: str, note: str = "") -> str:
        return f"  {name:<14} {va:<{w}} {vb:<{w}} {note}".rstrip()

    change = f"{c.wire_rate_change_pct:+.1f}%" if c.wire_rate_change_pct is not None else ""
    if change and not c.rate_comparable:
        change += " (not judged)"
    lines += [
        row("", "A", "B"),
        row("run", c.label_a, c.label_b),
        row("verdict", VERDICT_WORDS.get(c.verdict_a, c.verdict_a), VERDICT_WORDS.get(c.verdict_b, c.verdict_b)),
        row("path", pa, pb),
        row("wire rate", _rate(c.wire_rate_a_bps), _rate(c.wire_rate_b_bps), change),
        row("job duration", _opt(c.job_duration_a_s, ".1f") + " s", _opt(c.job_duration_b_s, ".1f") + " s"),
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
