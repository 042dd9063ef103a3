"""The terminal summary: verdict line first, then the per-interface table, the path, findings."""

from __future__ import annotations

from typing import Any

from verifier.model import SCHEMA_VERSION, Expectation, InterfaceReport, Leg, Plan, Report, to_dict
from verifier.profiles import ports_text
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


ATTRIBUTION_WORDS = {
    "ownership": "the connections its QEMU holds (socket ownership)",
    "classification": "the connections whose first bytes are a migration stream's (no owner readable)",
    "port-range": "every connection on the migration ports (nothing else told them apart)",
}


def foreign_lines(report: Report) -> list[str]:
    """How the migration's own flows were found, and the other traffic on its ports (not counted)."""
    if report.mode == "analyze" and report.attribution == "port-range" and not report.foreign:
        return []
    lines = ["", f"counted: {ATTRIBUTION_WORDS.get(report.attribution, report.attribution)}"]
    if report.foreign:
        lines.append("other traffic on the migration ports (not counted in the verdict):")
        for f in report.foreign:
            owner = f"{f.owner} pid {f.pid}" if f.pid else f.owner or "no local process"
            lines.append(
                f"  {f.client}:{f.client_port} -> {f.server}:{f.server_port} on {', '.join(f.interfaces)}: "
                f"{human_bytes(f.bytes)} ({owner})"
            )
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
    lines += foreign_lines(report)
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
    if plan.findings:
        lines += ["", "findings:"]
        for f in plan.findings:
            lines.append(f"  [{f.severity}] {f.code}: {f.message}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    return "\n".join(lines) + "\n"
