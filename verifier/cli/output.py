"""How a finished run reaches the user: the report as text or JSON on stdout, where the chart went."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from verifier.errors import UsageError, exit_code_for
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


def write_file(text: str | bytes, output: Path | None, out: TextIO) -> None:
    """TEXT to OUTPUT (mode 0600: reports name hosts and addresses), or to OUT when none is given."""
    if output is None:
        out.write(text if isinstance(text, str) else text.decode())
        out.flush()  # a closed pipe (`| head -1`) shows here, inside main's BrokenPipeError handler
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}", hint="choose another -o path") from None
    out.write(f"written to {output}\n")
