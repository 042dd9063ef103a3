"""The matrix as JUnit XML: one test case per ordered pair, for CI systems that show test results.

A pair passes when its verdict is pass or observed, fails when it is fail (the message names the
link it took), and is an error when it is inconclusive or interrupted. A missing pair is an error,
or skipped when the matrix is partial. Marks (asymmetric, outlier) are written in the case's
system-out: they are worth reading, not a verdict. Counts are computed from the cases.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from verifier.matrix.model import Cell, Matrix
from verifier.matrix.words import pair_line, side_text

SUITE = "verify-path matrix"


def _case(cell: Cell) -> tuple[str, str, str]:
    """(outcome, message, detail) of CELL."""
    detail = pair_line(cell)
    if cell.verdict in ("pass", "observed"):
        return "passed", "", detail
    if cell.verdict == "fail":
        want = ", ".join(cell.expected) or "the expected link"
        return "failure", f"expected {want}, the stream took {side_text(cell.send)}", detail
    return "error", f"{cell.verdict}: migration {cell.migration_status}", detail


def render(matrix: Matrix) -> str:
    suites = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(suites, "testsuite", name=SUITE, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases: list[tuple[str, str, str, str]] = [(f"{c.source} -> {c.destination}", *_case(c)) for c in matrix.cells]
    for a, b in matrix.missing:
        outcome = "skipped" if matrix.partial else "error"
        cases.append((f"{a} -> {b}", outcome, "no run recorded this pair", ""))
    tags = {"failure": "failures", "error": "errors", "skipped": "skipped"}
    for name, outcome, message, detail in sorted(cases):
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname="matrix", name=name)
        if outcome in tags:
            counts[tags[outcome]] += 1
            ET.SubElement(case, outcome, message=message).text = detail or None
        elif detail:
            ET.SubElement(case, "system-out").text = detail
    for element in (suites, suite):
        for key, value in counts.items():
            element.set(key, str(value))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
