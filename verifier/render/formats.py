"""Every output format of a run, behind one `render(report, fmt, run_dir)`.

RENDERERS maps each Format to its renderer; a test checks the mapping covers the whole enum.
RUN_DIR is the run's directory (for its chart.png) or None: nothing on disk is read then, except
that HTML renders its chart afresh.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verifier.figures import figures
from verifier.model import Report, to_dict
from verifier.render import html, junit, markdown, text


class Format(enum.Enum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    JSON = "json"
    JUNIT = "junit"


Renderer = Callable[[Report, Path | None], str]


def _text(report: Report, _run_dir: Path | None) -> str:
    return text.render(report)


def report_dict(report: Report) -> dict[str, Any]:
    """The report's JSON: run.json's keys, then `figures` (verifier.figures: the wire rate, the job
    duration and libvirt's rate, each with its unit in its name), and the return leg's own."""
    data: dict[str, Any] = to_dict(report)
    data["figures"] = figures(report).to_dict()
    if report.return_leg is not None and isinstance(data.get("return_leg"), dict):
        data["return_leg"]["figures"] = figures(report.return_leg).to_dict()
    return data


def report_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


def _json(report: Report, _run_dir: Path | None) -> str:
    return report_json(report)


def _junit(report: Report, _run_dir: Path | None) -> str:
    return junit.render(report)


RENDERERS: dict[Format, Renderer] = {
    Format.TEXT: _text,
    Format.MARKDOWN: markdown.render,
    Format.HTML: html.render,
    Format.JSON: _json,
    Format.JUNIT: _junit,
}

SUFFIXES: dict[Format, str] = {
    Format.TEXT: ".txt",
    Format.MARKDOWN: ".md",
    Format.HTML: ".html",
    Format.JSON: ".json",
    Format.JUNIT: ".xml",
}


def render(report: Report, fmt: Format, run_dir: Path | None = None) -> str:
    """REPORT in format FMT."""
    return RENDERERS[fmt](report, run_dir)


def parse(name: str) -> Format:
    """A format from its name (for --format); ValueError names the choices."""
    try:
        return Format(name.lower())
    except ValueError:
        choices = ", ".join(f.value for f in Format)
        raise ValueError(f"unknown format {name!r}: choose one of {choices}") from None
