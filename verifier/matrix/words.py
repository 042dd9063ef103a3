"""The matrix's words, shared by every format: verdict words, a grid cell, a pair's line, the rate."""

from __future__ import annotations

from verifier.matrix.model import ASYMMETRIC, OUTLIER, Cell, Matrix, Rate, Side
from verifier.render.text import VERDICT_WORDS

MARK_SIGNS = {ASYMMETRIC: "!", OUTLIER: "*"}


def verdict_word(verdict: str) -> str:
    return VERDICT_WORDS.get(verdict, verdict.upper())


def rate_text(rate: Rate | None) -> str:
    if rate is None:
        return "-"
    return f"{'>=' if rate.lower_bound else ''}{rate.bps / 1e6:.0f} Mbit/s"


def link_text(cell: Cell) -> str:
    """The grid's words for a pair: send link, "/receive link" when it differs, the mark signs."""
    send = cell.send.interface or "?"
    rx = cell.receive_interface
    text = send if rx is None or rx == send else f"{send}/{rx}"
    return text + "".join(MARK_SIGNS[m] for m in cell.marks)


def grid_cell(matrix: Matrix, source: str, destination: str) -> str:
    if source == destination:
        return "-"
    cell = matrix.cell(source, destination)
    if cell is None:
        return "missing" if (source, destination) in matrix.missing else "-"
    return f"{link_text(cell)} {verdict_word(cell.verdict)}"


def headline(matrix: Matrix) -> str:
    pairs = len(matrix.cells)
    usual = matrix.majority_network
    net = f"; most pairs took {usual}" if usual else "; no network carried most pairs"
    marked = sum(1 for c in matrix.cells if c.marks)
    extra = f"; {marked} marked" if marked else ""
    gone = f"; {len(matrix.missing)} missing" if matrix.missing else ""
    return f"{verdict_word(matrix.verdict)}: {pairs} pairs of {len(matrix.hosts)} hosts{net}{extra}{gone}"


def side_text(side: Side | None) -> str:
    if side is None or side.interface is None:
        return "? (not recorded)"
    return " -> ".join(side.path) if side.path else side.interface


def route_text(cell: Cell) -> str | None:
    """The route the source's kernel picked for the stream (from the send run's prediction)."""
    if cell.report is None:
        return None
    return next((r.detail for r in cell.report.prediction.reasons if r.step == "route"), None)


def pair_line(cell: Cell) -> str:
    rx = side_text(cell.receive) + (f" ({cell.receive_from})" if cell.receive_from else "")
    marks = f" [{', '.join(cell.marks)}]" if cell.marks else ""
    # A pair off its expected link says why: the route is what to fix (e.g. a missing storage route).
    route = route_text(cell) if cell.verdict not in ("pass", "observed") else None
    return (
        f"{cell.source} -> {cell.destination}: {verdict_word(cell.verdict)}{marks}; sent on {side_text(cell.send)}, "
        f"received on {rx}; network {cell.network or '?'}; {rate_text(cell.rate)}; run {cell.run_dir or '-'}"
        + (f"; route {route}" if route else "")
    )


def legend(matrix: Matrix) -> str:
    usual = matrix.majority_network or "none"
    return (
        "cells: send link[/receive link when it differs] and verdict; "
        f"! asymmetric (received on another link), * outlier (not on {usual})"
    )
