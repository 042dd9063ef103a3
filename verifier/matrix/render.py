"""The matrix in every output format, behind one `render(matrix, fmt)` (the Format enum of a run).

Text and Markdown show a grid (rows: from, columns: to) and then one line per pair; HTML is the
grid coloured by verdict (verifier.matrix.html); JSON lists the cells; JUnit has one test case per
pair (verifier.matrix.junit). RENDERERS covers the whole Format enum; a test checks it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from verifier.matrix import html, junit
from verifier.matrix.model import Cell, Matrix, Side
from verifier.matrix.words import grid_cell, headline, legend, pair_line, route_text
from verifier.render.formats import Format
from verifier.render.markdown import escape


def text(matrix: Matrix) -> str:
    hosts = matrix.hosts
    rows = [["", *(f"to {h}" for h in hosts)]]
    rows += [[f"from {a}", *(grid_cell(matrix, a, b) for b in hosts)] for a in hosts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [headline(matrix), ""]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += ["", legend(matrix), "", "pairs:"]
    lines += [f"  {pair_line(c)}" for c in matrix.cells]
    if matrix.missing:
        why = " (a partial run: not counted)" if matrix.partial else " (counted as inconclusive)"
        lines += ["", "missing" + why + ": " + ", ".join(f"{a} -> {b}" for a, b in matrix.missing)]
    if matrix.problems:
        lines += ["", "problems:"] + [f"  {p}" for p in matrix.problems]
    return "\n".join(lines) + "\n"


def markdown(matrix: Matrix) -> str:
    hosts = matrix.hosts
    lines = [f"# {escape(headline(matrix))}", ""]
    lines.append("| from \\ to | " + " | ".join(escape(h) for h in hosts) + " |")
    lines.append("|---" * (len(hosts) + 1) + "|")
    for a in hosts:
        lines.append(f"| **{escape(a)}** | " + " | ".join(escape(grid_cell(matrix, a, b)) for b in hosts) + " |")
    lines += ["", escape(legend(matrix)), "", "## Pairs", ""]
    lines += [f"- {escape(pair_line(c))}" for c in matrix.cells]
    if matrix.missing:
        lines += ["", "**missing:** " + escape(", ".join(f"{a} -> {b}" for a, b in matrix.missing))]
    if matrix.problems:
        lines += ["", "## Problems", ""] + [f"- {escape(p)}" for p in matrix.problems]
    return "\n".join(lines) + "\n"


def _side_dict(side: Side | None) -> dict[str, Any] | None:
    return None if side is None else {"interface": side.interface, "role": side.role, "path": list(side.path)}


def cell_dict(cell: Cell) -> dict[str, Any]:
    r = cell.rate
    return {
        "source": cell.source,
        "destination": cell.destination,
        "interface": cell.interface,
        "receive_interface": cell.receive_interface,
        "verdict": cell.verdict,
        "marks": list(cell.marks),
        "rate": None if r is None else {"wire_bps": round(r.bps), "lower_bound": r.lower_bound, "basis": r.basis},
        "run_dir": cell.run_dir,
        "send": _side_dict(cell.send),
        "receive": _side_dict(cell.receive),
        "receive_from": cell.receive_from or None,
        "receive_run_dir": cell.receive_run_dir,
        "network": cell.network,
        "route": route_text(cell),
        "migration_status": cell.migration_status,
        "expected": list(cell.expected),
        "probe": cell.probe,
        "started_at": cell.started_at,
    }


def to_dict(matrix: Matrix) -> dict[str, Any]:
    return {
        "verdict": matrix.verdict,
        "exit_code": matrix.exit_code,
        "hosts": list(matrix.hosts),
        "majority_network": matrix.majority_network,
        "cells": [cell_dict(c) for c in matrix.cells],
        "missing": [list(p) for p in matrix.missing],
        "partial": matrix.partial,
        "problems": list(matrix.problems),
        "inputs": list(matrix.inputs),
    }


def as_json(matrix: Matrix) -> str:
    return json.dumps(to_dict(matrix), indent=2) + "\n"


RENDERERS: dict[Format, Callable[[Matrix], str]] = {
    Format.TEXT: text,
    Format.MARKDOWN: markdown,
    Format.HTML: html.render,
    Format.JSON: as_json,
    Format.JUNIT: junit.render,
}


def render(matrix: Matrix, fmt: Format) -> str:
    return RENDERERS[fmt](matrix)
