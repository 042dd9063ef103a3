"""The terminal summary: verdict line first, then the figures, the per-interface table, the path,
the diagnosis and the findings.

Prose (reasons, findings, fixes, evidence) wraps at the terminal's width, so a 400-character fix
reads on an 80-column terminal; the tables keep their columns (a wrapped row reads as nothing).
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

from verifier.model import SCHEMA_VERSION, Expectation, InterfaceReport, Leg, Plan, Report, to_dict
from verifier.profiles import ports_text
from verifier.render.units import human_bytes
from verifier.render.words import (
    VERDICT_WORDS,
    cap_text,
    diagnosis_lines,
    headline,
    leg_headline,
    path_text,
    run_figure_lines,
    streams_text,
)

__all__ = ["VERDICT_WORDS", "render", "render_prediction", "table", "verdict_line"]

MIN_WIDTH = 40  # below this, wrapping helps no one: lines break after every word


def terminal_width() -> int:
    """The terminal's width (COLUMNS first, 80 when not a terminal), never under MIN_WIDTH."""
    return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def wrap(text: str, width: int, indent: str = "", hang: str | None = None) -> list[str]:
    """TEXT wrapped at WIDTH; continuation lines indented by HANG (INDENT + 4 spaces by default).
    Words are never broken: a long path or an option stays whole, even past the width."""
    lines = textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "    " if hang is None else hang,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return lines or [indent.rstrip()]


def verdict_line(report: Report) -> str:
    return headline(report)


def table(interfaces: tuple[InterfaceReport, ...]) -> list[str]:
    rows = [
        f"  {'interface':<10} {'kind':<8} {'master':<7} {'role':<16} {'tx':>10} {'rx':>10} "
        f"{'packets':>9} {'share':>7} {'drops':>6}"
    ]
    for r in interfaces:
        rows.append(
            f"  {r.name:<10} {r.kind:<8} {r.master or '-':<7} {r.role or '-':<16} "
            f"{human_bytes(r.bytes_tx):>10} {human_bytes(r.bytes_rx):>10} {r.packets:>9} "
            f"{r.share:>7.1%} {r.drops:>6}"
        )
    return rows


def leg_lines(leg: Leg, title: str, expected: Expectation, width: int) -> list[str]:
    """A leg checked against the run's --expect, with its own figures and table."""
    m = leg.migration
    lines = wrap(f"{title}: {leg_headline(leg, expected)}", width)
    if m.duration_s:
        lines += wrap(f"migration {m.status}, uri {m.migrate_uri or '(libvirt default)'}", width, "  ")
    for line in run_figure_lines(leg):
        lines += wrap(line, width, "  ")
    cov = leg.coverage
    if cov.ratio is not None:
        lines += wrap(f"coverage {cov.ratio:.1%} of data_processed{'' if cov.ok else ' - ' + cov.reason}", width, "  ")
    lines += table(leg.interfaces)
    return lines


ATTRIBUTION_WORDS = {
    "ownership": "the connections its QEMU holds (socket ownership)",
    "classification": "the connections whose first bytes are a migration stream's (no owner readable)",
    "port-range": "every connection on the migration ports (nothing else told them apart)",
}


def foreign_text(report: Report) -> tuple[str | None, list[str]]:
    """(how the migration's own flows were found, the other flows on its ports as sentences)."""
    if report.mode == "analyze" and report.attribution == "port-range" and not report.foreign:
        return None, []
    flows = []
    for f in report.foreign:
        owner = f"{f.owner} pid {f.pid}" if f.pid else f.owner or "no local process"
        flows.append(
            f"{f.client}:{f.client_port} -> {f.server}:{f.server_port} on {', '.join(f.interfaces)}: "
            f"{human_bytes(f.bytes)} ({owner})"
        )
    return ATTRIBUTION_WORDS.get(report.attribution, report.attribution), flows


def foreign_lines(report: Report, width: int = 10_000) -> list[str]:
    """How the migration's own flows were found, and the other traffic on its ports (not counted)."""
    counted, flows = foreign_text(report)
    if counted is None:
        return []
    lines = [""] + wrap(f"counted: {counted}", width)
    if report.capture is not None:
        engine = {"ebpf": "eBPF programs in the kernel", "ring": "a TPACKET_V3 ring", "pcap": "the pcap files"}
        how = f"counted by {engine.get(report.capture.engine, report.capture.engine)}; pcaps: {report.capture.pcaps}"
        lines += wrap(how + (f" ({report.capture.note})" if report.capture.note else ""), width)
    if flows:
        lines.append("other traffic on the migration ports (not counted in the verdict):")
        for flow in flows:
            lines += wrap(flow, width, "  ")
    return lines


def _migration(report: Report, width: int) -> list[str]:
    m = report.migration
    lines = []
    if report.mode == "migrate":
        uri = m.migrate_uri or "(libvirt default: the destination hands out its address)"
        lines += wrap(f"migration: {m.status}, uri {uri}", width)
    else:
        lines += wrap(f"{report.mode}: " + (f"{m.duration_s:.1f} s watched" if m.duration_s else "no job here"), width)
    lines += [x for line in run_figure_lines(report) for x in wrap(line, width)]
    streams = streams_text(report)
    if streams:
        lines += wrap(f"streams: {streams}", width)
    cap = cap_text(report)
    if cap:
        lines += wrap(f"bandwidth cap: {cap}", width)
    cov = report.coverage
    if cov.ratio is not None:
        lines += wrap(
            f"coverage: {cov.ratio:.1%} of data_processed seen as TCP payload" + ("" if cov.ok else f" - {cov.reason}"),
            width,
        )
    return lines


def render(report: Report, width: int | None = None) -> str:
    """The report for a terminal WIDTH columns wide (the terminal's own width by default)."""
    width = width or terminal_width()
    lines = [*wrap(verdict_line(report), width), ""]
    lines += _migration(report, width)
    lines.append("")
    lines += table(report.interfaces)
    lines.append("")
    pred = report.prediction
    lines.append("path explanation:")
    for reason in pred.reasons:
        ev = f"  [{reason.evidence}]" if reason.evidence else ""
        lines += wrap(f"{reason.step}: {reason.detail}{ev}", width, "  ")
    if pred.interface:
        lines += wrap(f"predicted: {path_text(pred.path)}; observed: {path_text(report.observed_path)}", width, "  ")
    diagnosis = diagnosis_lines(report)
    if diagnosis:
        lines += ["", *wrap(diagnosis[0], width)]
        lines += [x for ev in diagnosis[1:] for x in wrap(ev, width, "  - ", "    ")]
    lines += foreign_lines(report, width)
    if report.return_leg:
        lines.append("")
        lines += leg_lines(report.return_leg, "return leg (received here)", report.expected, width)
    if report.findings:
        lines.append("")
        lines.append("findings:")
        for f in report.findings:
            lines += wrap(f"[{f.severity}] {f.code}: {f.message}", width, "  ")
            if f.fix:
                lines += wrap(f"fix: {f.fix}", width, "      ", "        ")
    if report.run_dir:
        lines.append("")
        lines += wrap(f"run stored in {report.run_dir}", width)
    return "\n".join(lines) + "\n"


def prediction_dict(vm: str, dest: str, expectation: Expectation, plan: Plan, verdict: str) -> dict[str, Any]:
    """The JSON of `predict`: the same `prediction` object as a run's, plus what it rests on."""
    topo = plan.topology
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": "predict",
        "verdict": str(verdict),
        "vm": vm,
        "destination": dest,
        "expected": to_dict(expectation),
        "prediction": to_dict(plan.prediction),
        "ports": [list(p) for p in plan.ports],
        "interfaces": [
            {
                "name": n,
                "kind": i.kind,
                "master": i.master,
                "role": i.role,
                "speed_mbps": i.effective_mbps,
                "addresses": [a for a in i.addresses if not a.startswith("fe80")],
            }
            for n in plan.watch
            if (i := topo.get(n))
        ],
        "findings": to_dict(plan.findings),
        "forecasts": to_dict(plan.forecasts),
    }


def render_prediction(vm: str, dest: str, plan: Plan, verdict: str) -> str:
    pred = plan.prediction
    word = {"pass": "PREDICTED PASS", "fail": "PREDICTED FAIL", "observed": "PREDICTED"}.get(verdict, "UNKNOWN")
    lines = [
        f"{word}: {vm} -> {dest} will take {' -> '.join(pred.path) or 'no known path'} "
        "(nothing migrated, nothing captured)",
        "",
        "path explanation:",
    ]
    for reason in pred.reasons:
        ev = f"  [{reason.evidence}]" if reason.evidence else ""
        lines.append(f"  {reason.step}: {reason.detail}{ev}")
    lines += ["", "interfaces that will be watched:"]
    for name in plan.watch:
        i = plan.topology.get(name)
        if i is None:
            continue
        addrs = " ".join(a for a in i.addresses if not a.startswith("fe80")) or "-"
        speed = f"{i.effective_mbps} Mbit/s" if i.effective_mbps else "speed unknown"
        lines.append(f"  {name:<10} {i.kind:<8} {i.role or '-':<16} {speed:<14} {addrs}")
    ports = ports_text(plan.ports)
    lines.append(f"  ports: {ports}")
    if plan.forecasts:
        lines += ["", "convergence forecast (the guest's measured dirty rate, pre-copy model):"]
        lines += [f"  {f.text}" for f in plan.forecasts]
    if plan.findings:
        lines += ["", "findings:"]
        for f in plan.findings:
            lines.append(f"  [{f.severity}] {f.code}: {f.message}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    return "\n".join(lines) + "\n"
