"""The matrix as one self-contained HTML page: the grid at a glance, each cell coloured by verdict.

Made for a phone as much as a desk: the grid takes the screen's width (fixed layout, long names
wrap), each cell holds the link and the verdict in two short lines, the pairs' details fold away
below. Like a run's HTML page: inline CSS, no external reference, a Content-Security-Policy that
forbids loading anything, and every name escaped.
"""

from __future__ import annotations

from verifier.matrix.model import MISSING, Matrix
from verifier.matrix.words import headline, legend, link_text, pair_line, verdict_word
from verifier.render.html import CSP, e

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 48em; color: #222; padding: 0 0.5em; }
h1 { font-size: 1.1em; padding: 0.5em 0.7em; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.2em; text-align: center; overflow-wrap: anywhere; }
th { font-size: 0.85em; background: #f6f6f6; }
td { font-size: 0.9em; }
td small { display: block; font-size: 0.75em; font-weight: 600; }
.pass, .observed { background: #e3f4e3; }
.fail { background: #fde7e7; }
.inconclusive, .missing, .interrupted, .other { background: #fff4dd; }
td.self { background: #eee; color: #999; }
.legend { font-size: 0.8em; color: #555; }
li { margin: 0.3em 0; font-size: 0.9em; overflow-wrap: anywhere; }
"""

KNOWN = ("pass", "observed", "fail", "inconclusive", "interrupted", MISSING)


def _class(verdict: str) -> str:
    return verdict if verdict in KNOWN else "other"


def _cell(matrix: Matrix, source: str, destination: str) -> str:
    if source == destination:
        return '<td class="self">&ndash;</td>'
    cell = matrix.cell(source, destination)
    if cell is None:
        word = MISSING if (source, destination) in matrix.missing else ""
        return f'<td class="{_class(word) if word else "self"}">{e(word or "-")}</td>'
    title = e(pair_line(cell))
    return (
        f'<td class="{_class(cell.verdict)}" title="{title}">{e(link_text(cell))}'
        f"<small>{e(verdict_word(cell.verdict))}</small></td>"
    )


def render(matrix: Matrix) -> str:
    hosts = matrix.hosts
    head = "".join(f"<th>{e(h)}</th>" for h in hosts)
    body = "\n".join(f"<tr><th>{e(a)}</th>" + "".join(_cell(matrix, a, b) for b in hosts) + "</tr>" for a in hosts)
    pairs = "\n".join(f"<li>{e(pair_line(c))}</li>" for c in matrix.cells)
    missing = f"<p>missing: {e(', '.join(f'{a} -> {b}' for a, b in matrix.missing))}</p>\n" if matrix.missing else ""
    problems = "".join(f"<li>{e(p)}</li>" for p in matrix.problems)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{e(headline(matrix))}</title>\n<style>{STYLE}</style></head>\n<body>\n"
        f'<h1 class="{_class(matrix.verdict)}">{e(headline(matrix))}</h1>\n'
        f"<table>\n<thead><tr><th>from \\ to</th>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>\n"
        f'<p class="legend">{e(legend(matrix))}</p>\n{missing}'
        f"<details><summary>{len(matrix.cells)} pairs</summary><ul>\n{pairs}\n</ul></details>\n"
        + (f"<details><summary>problems</summary><ul>{problems}</ul></details>\n" if problems else "")
        + "</body></html>\n"
    )
