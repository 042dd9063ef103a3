"""A run as JUnit XML, for CI systems that show test results.

One testcase per expectation (each --expect interface, each --expect-net network): it passes when
the run's verdict is pass, fails (naming the observed path and the share) when it is fail, and is an
error when the run is inconclusive. Without an expectation, one testcase "path observed" stands in
for them. Two more testcases always follow: "stream observed" and "coverage".
The counts on <testsuites> and <testsuite> are computed from the testcases themselves.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from verifier.model import Report

SUITE = "verify-path"


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str  # passed | failure | error | skipped
    message: str = ""
    detail: str = ""


def _path(report: Report) -> str:
    return " -> ".join(report.observed_path) or "nothing seen"


def _why_inconclusive(report: Report) -> str:
    errors = [f.message for f in report.findings if f.severity == "error"]
    if errors:
        return errors[0]
    if not report.coverage.ok and report.coverage.reason:
        return report.coverage.reason
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return warnings[0] if warnings else f"verdict {report.verdict}"


def _observed_share(report: Report) -> str:
    r = next((i for i in report.interfaces if i.name == report.observed_interface), None)
    return f"{r.share:.1%} on {r.name}" if r else "no share"


def expectation_case(report: Report, kind: str, target: str) -> Case:
    name = f"expect {kind} {target}"
    share = f"{report.expected_share:.1%}" if report.expected_share is not None else "unknown"
    if report.verdict == "pass":
        return Case(name, "passed", detail=f"took {_path(report)}; {share} of the stream on the expected link")
    if report.verdict == "fail":
        msg = (
            f"expected {target}, the stream took {_path(report)} ({_observed_share(report)}; "
            f"{share} on the expected link)"
        )
        return Case(name, "failure", msg, _fixes(report))
    return Case(name, "error", f"{report.verdict}: {_why_inconclusive(report)}", _fixes(report))


def _fixes(report: Report) -> str:
    return "\n".join(
        f"[{f.severity}] {f.code}: {f.message}" + (f"\nfix: {f.fix}" if f.fix else "") for f in report.findings
    )


def cases(report: Report) -> list[Case]:
    out = [expectation_case(report, "interface", i) for i in report.expected.interfaces]
    out += [expectation_case(report, "network", n) for n in report.expected.networks]
    if not report.expected.given:
        if report.verdict in ("observed", "pass"):
            out.append(Case("path observed", "passed", detail=f"took {_path(report)}"))
        else:
            out.append(Case("path observed", "error", f"{report.verdict}: {_why_inconclusive(report)}", _fixes(report)))
    if report.observed_interface is not None:
        out.append(Case("stream observed", "passed", detail=f"took {_path(report)}"))
    else:
        out.append(
            Case("stream observed", "failure", "no migration traffic was seen on the watched interfaces and ports")
        )
    cov = report.coverage
    if cov.ok:
        ratio = f"{cov.ratio:.1%}" if cov.ratio is not None else "n/a"
        out.append(Case("coverage", "passed", detail=f"{ratio} of data_processed seen as TCP payload"))
    elif report.mode == "watch":
        out.append(Case("coverage", "skipped", "watch mode: libvirt's data_processed is not known here"))
    else:
        ratio = f"{cov.ratio:.1%}" if cov.ratio is not None else "unknown"
        out.append(Case("coverage", "failure", f"captured payload is {ratio} of data_processed: {cov.reason}"))
    return out


def render(report: Report) -> str:
    """The JUnit XML document (UTF-8 text with an XML declaration)."""
    found = cases(report)
    counts = {
        "tests": str(len(found)),
        "failures": str(sum(c.outcome == "failure" for c in found)),
        "errors": str(sum(c.outcome == "error" for c in found)),
        "skipped": str(sum(c.outcome == "skipped" for c in found)),
    }
    duration = f"{report.migration.duration_s or 0.0:.3f}"
    root = ET.Element("testsuites", {"name": SUITE, **counts, "time": duration})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": SUITE,
            **counts,
            "time": duration,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.started_at)),
            "hostname": report.source,
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("vm", report.vm),
        ("source", report.source),
        ("destination", report.destination),
        ("verdict", report.verdict),
        ("observed_path", _path(report)),
        ("tool_version", report.tool_version),
        ("run_dir", report.run_dir or ""),
    ):
        ET.SubElement(props, "property", {"name": key, "value": value})
    classname = f"{SUITE}.{report.vm}.{report.destination}"
    for case in found:
        tc = ET.SubElement(suite, "testcase", {"classname": classname, "name": case.name, "time": "0"})
        if case.outcome in ("failure", "error", "skipped"):
            el = ET.SubElement(tc, case.outcome, {"message": case.message})
            if case.outcome != "skipped":
                el.set("type", report.verdict)
                el.text = case.detail or case.message
        elif case.detail:
            ET.SubElement(tc, "system-out").text = case.detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
