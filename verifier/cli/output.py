"""How a finished run reaches the user: the report as text or JSON on stdout, where the chart went."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from verifier.errors import exit_code_for
from verifier.jobs import Finished
from verifier.model import Report


def report_json(report: Report) -> str:
    """The report as --json prints it: the same document as `report --format json` (figures too)."""
    from verifier.render.formats import report_json as render_json

    return render_json(report)


def write_finished(finished: Finished, as_json: bool, chart: Path | None, out: TextIO) -> int:
    """Print FINISHED's report; return the documented exit code for it."""
    from verifier.render import text

    report, stored = finished.report, finished.stored
    if as_json:
        out.write(report_json(report))
    else:
        out.write(text.render(report))
        if stored.note:
            out.write(stored.note + "\n")
        elif chart:
            out.write(f"chart written to {chart}\n")
        elif stored.chart:
            out.write(f"chart: {stored.chart}\n")
    return exit_code_for(report.verdict, report.migration.status)
