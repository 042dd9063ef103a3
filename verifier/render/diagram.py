"""The path explanation drawn: source -> interfaces (bridge/bond chains) -> destination, as SVG.

Inline SVG only (no script, no external reference), so the HTML report stays one offline file.
One row per leaf of each watched chain (br0 -> eth0 is one row, bond0 -> eno1, eno2 two); a
chain's head sits level with its leaves. The path the stream took is drawn solid (red in a
failed run), the expected path dashed green, every other link thin grey. The viewBox scales the
drawing down to a phone's width instead of overflowing it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from verifier.model import Expectation, InterfaceReport

BOX_W, BOX_H, GAP, ROW_H, PAD = 104, 38, 30, 48, 8
TAKEN, TAKEN_FAIL, EXPECTED, OTHER = "#1565c0", "#c62828", "#2e7d32", "#b0b0b0"


@dataclass(frozen=True)
class Node:
    name: str
    sub: str  # a second line: kind, role, share
    col: int
    y: float


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _tree(interfaces: tuple[InterfaceReport, ...]) -> tuple[list[str], dict[str, list[str]]]:
    names = {r.name for r in interfaces}
    children: dict[str, list[str]] = {}
    roots = []
    for r in interfaces:
        if r.master and r.master in names and r.master != r.name:
            children.setdefault(r.master, []).append(r.name)
        else:
            roots.append(r.name)
    return roots, children


def _related(wanted: set[str], children: dict[str, list[str]], parent: dict[str, str]) -> set[str]:
    """WANTED with every master above and every port/member below: the whole expected chain."""
    out = set()
    for name in wanted:
        up: str | None = name
        while up is not None and up not in out:
            out.add(up)
            up = parent.get(up)
        stack = list(children.get(name, ()))
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack += children.get(n, [])
    return out


def _layout(interfaces: tuple[InterfaceReport, ...]) -> tuple[dict[str, Node], dict[str, list[str]], int, int]:
    """(nodes by name, children, interface columns, rows)."""
    roots, children = _tree(interfaces)
    by_name = {r.name: r for r in interfaces}
    nodes: dict[str, Node] = {}
    row = 0
    depth = 0

    def place(name: str, col: int, seen: frozenset[str]) -> tuple[float, float]:
        nonlocal row, depth
        depth = max(depth, col)
        kids = [k for k in children.get(name, []) if k not in seen]
        if kids:
            spans = [place(k, col + 1, seen | {name}) for k in kids]
            top, bottom = spans[0][0], spans[-1][1]
        else:
            top = bottom = row
            row += 1
        r = by_name[name]
        sub = " · ".join(p for p in (r.kind, r.role or "", f"{r.share:.0%}" if r.share else "") if p)
        nodes[name] = Node(name, sub, col, (top + bottom) / 2)
        return top, bottom

    for name in roots:
        place(name, 0, frozenset())
    return nodes, children, depth + 1, max(row, 1)


def render(
    interfaces: tuple[InterfaceReport, ...],
    taken: tuple[str, ...],
    expected: Expectation,
    source: str,
    destination: str,
    failed: bool = False,
) -> str:
    """The SVG element (a string to put in HTML as is: every label is escaped)."""
    nodes, children, cols, rows = _layout(interfaces)
    parent = {k: p for p, kids in children.items() for k in kids}
    on_taken = set(taken)
    on_expected = _related(set(expected.interfaces), children, parent)
    width = PAD * 2 + (cols + 2) * BOX_W + (cols + 1) * GAP
    height = PAD * 2 + rows * ROW_H + 28  # the legend below the rows
    mid = PAD + rows * ROW_H / 2

    def x(col: int) -> float:  # column 0 is the source, 1.. the interfaces, cols + 1 the destination
        return PAD + col * (BOX_W + GAP)

    def y(node: Node) -> float:
        return PAD + node.y * ROW_H + ROW_H / 2

    taken_colour = TAKEN_FAIL if failed else TAKEN
    out: list[str] = []

    def edge(x1: float, y1: float, x2: float, y2: float, is_taken: bool, is_expected: bool) -> None:
        if is_taken:
            colour = EXPECTED if is_expected and not failed else taken_colour
            out.append(_line(x1, y1, x2, y2, colour, 3.5, "", "taken"))
        if is_expected and not (is_taken and not failed):
            out.append(_line(x1, y1, x2, y2, EXPECTED, 2.5, ' stroke-dasharray="7 5"', "expected"))
        if not is_taken and not is_expected:
            out.append(_line(x1, y1, x2, y2, OTHER, 1.2, "", "other"))

    for name, node in nodes.items():
        left, right = x(node.col + 1), x(node.col + 1) + BOX_W
        if name not in parent:  # a chain's head: from the source
            edge(x(0) + BOX_W, mid, left, y(node), name in on_taken, name in on_expected)
        for kid in children.get(name, []):
            k = nodes[kid]
            edge(right, y(node), x(k.col + 1), y(k), name in on_taken and kid in on_taken, kid in on_expected)
        if not children.get(name):  # a leaf: on to the destination
            edge(right, y(node), x(cols + 1), mid, name in on_taken, name in on_expected)

    out.append(_box(x(0), mid - BOX_H / 2, source or "this host", "source", "#f4f4f4", "#555", ""))
    out.append(_box(x(cols + 1), mid - BOX_H / 2, destination or "destination", "destination", "#f4f4f4", "#555", ""))
    for name, node in nodes.items():
        fill = ("#fde7e7" if failed else "#e3ecf9") if name in on_taken else "#fff"
        stroke, dash = (EXPECTED, ' stroke-dasharray="5 3"') if name in on_expected else ("#777", "")
        out.append(_box(x(node.col + 1), y(node) - BOX_H / 2, name, node.sub, fill, stroke, dash))
    # A stream that kept to the expected chain is drawn green: the legend says so.
    as_expected = bool(on_taken) and not failed and on_taken <= on_expected
    legend = (EXPECTED, "taken, as expected") if as_expected else (taken_colour, "taken")
    out.append(_legend(PAD, height - PAD - 8, legend, expected))
    label = f"path diagram: {source} to {destination}, took {' -> '.join(taken) or 'nothing seen'}"
    return (
        f'<svg class="diagram" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{_e(label)}">\n'
        f"<title>{_e(label)}</title>\n" + "\n".join(out) + "\n</svg>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, w: float, extra: str, cls: str) -> str:
    return (
        f'<line class="{cls}" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
        f'stroke="{colour}" stroke-width="{w}"{extra}/>'
    )


def _box(x: float, y: float, name: str, sub: str, fill: str, stroke: str, dash: str) -> str:
    return (
        f'<g><rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="4" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="1.5"{dash}/>'
        f'<text x="{x + BOX_W / 2:.0f}" y="{y + 16:.0f}" font-size="14" font-weight="600" '
        f'text-anchor="middle">{_e(_fit(name, 13))}</text>'
        f'<text x="{x + BOX_W / 2:.0f}" y="{y + 31:.0f}" font-size="10" fill="#444" '
        f'text-anchor="middle">{_e(_fit(sub, 17))}</text></g>'
    )


def _fit(text: str, n: int) -> str:
    """A label that stays inside its box (the full name is in the tables next to it)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _legend(x: float, y: float, taken: tuple[str, str], expected: Expectation) -> str:
    colour, words = taken
    gap = 40 + 8 * len(words)  # the taken label's width, about, at 13 px
    nets = f" ({', '.join(expected.networks)})" if expected.networks else ""
    return (
        f'<g font-size="13"><line x1="{x:.0f}" y1="{y - 4:.0f}" x2="{x + 28:.0f}" y2="{y - 4:.0f}" '
        f'stroke="{colour}" stroke-width="3.5"/><text x="{x + 34:.0f}" y="{y:.0f}">{_e(words)}</text>'
        f'<line x1="{x + gap:.0f}" y1="{y - 4:.0f}" x2="{x + gap + 28:.0f}" y2="{y - 4:.0f}" stroke="{EXPECTED}" '
        f'stroke-width="2.5" stroke-dasharray="7 5"/><text x="{x + gap + 34:.0f}" y="{y:.0f}">expected'
        f"{_e(nets)}</text></g>"
    )
