"""Two matrices, before and after a change (a qemu.conf fix, a new switch): which pairs changed.

A pair changed when its send or receive link, its verdict or its marks differ, when it appeared or
disappeared, or when it slowed down by more than --max-slowdown. It got worse (exit 1) when the
two-run comparison (verifier.compare) says it moved away from the expected link or slowed down past
the limit, when its verdict ranks worse, when it gained a mark, or when it has no run any more.
"""

from __future__ import annotations

from verifier import compare as runs_compare
from verifier.matrix.model import Cell, Matrix, MatrixComparison, PairChange, Side, rank


def _link(side: Side | None) -> str:
    if side is None or side.interface is None:
        return "nothing seen"
    return " -> ".join(side.path) if side.path else side.interface


def _pair_change(before: Cell | None, after: Cell | None, max_slowdown_pct: float | None) -> PairChange | None:
    cell = after or before
    assert cell is not None  # one of the two exists: the pair is in one matrix at least
    if before is None or after is None:
        what = "new pair" if before is None else "no run any more"
        gone = ("the pair has no run any more",) if after is None else ()
        return PairChange(cell.source, cell.destination, before, after, (what,), gone)
    changes: list[str] = []
    worse: list[str] = []
    if _link(before.send) != _link(after.send):
        changes.append(f"link {_link(before.send)} => {_link(after.send)}")
    if _link(before.receive) != _link(after.receive):
        changes.append(f"received on {_link(before.receive)} => {_link(after.receive)}")
    if before.verdict != after.verdict:
        changes.append(f"verdict {before.verdict} => {after.verdict}")
        if rank(after.verdict) > rank(before.verdict):
            worse.append(f"verdict {before.verdict} => {after.verdict}")
    gained = [m for m in after.marks if m not in before.marks]
    changes += [f"+{m}" for m in gained] + [f"-{m}" for m in before.marks if m not in after.marks]
    worse += [f"now {m}" for m in gained]
    if before.report is not None and after.report is not None:
        c = runs_compare.compare(before.report, after.report, max_slowdown_pct)
        if c.moved_away_from_expected:
            worse.append(f"moved away from the expected link ({', '.join(c.expected) or 'see the verdicts'})")
        if c.slowed_down:
            changes.append(f"slower by {-(c.wire_rate_change_pct or 0):.1f}%")
            worse.append(f"slower by more than {max_slowdown_pct:g}%")
    if not changes and not worse:
        return None
    return PairChange(cell.source, cell.destination, before, after, tuple(changes), tuple(worse))


def compare(before: Matrix, after: Matrix, max_slowdown_pct: float | None = None) -> MatrixComparison:
    """BEFORE (the reference) against AFTER (under test), pair by pair."""
    pairs = sorted({c.pair for c in before.cells} | {c.pair for c in after.cells})
    changed = []
    for src, dst in pairs:
        change = _pair_change(before.cell(src, dst), after.cell(src, dst), max_slowdown_pct)
        if change is not None:
            changed.append(change)
    return MatrixComparison(before, after, tuple(changed), len(pairs) - len(changed), max_slowdown_pct)


def render_text(c: MatrixComparison) -> str:
    """One line per changed pair; the first line counts them."""
    total = len(c.changed) + c.unchanged
    lines = [f"{len(c.changed)} of {total} pairs changed" if c.changed else f"no pair changed ({total} pairs)"]
    for p in c.changed:
        flag = "WORSE" if p.worse else "     "
        lines.append(f"  {flag} {p.source} -> {p.destination}: {'; '.join(p.changes)}")
        lines += [f"         worse: {why}" for why in p.worse]
    lines.append("")
    lines.append(f"exit code {c.exit_code}")
    return "\n".join(lines) + "\n"


def to_dict(c: MatrixComparison) -> dict[str, object]:
    return {
        "changed": [
            {
                "source": p.source,
                "destination": p.destination,
                "changes": list(p.changes),
                "worse": list(p.worse),
                "before": p.before.run_dir if p.before else None,
                "after": p.after.run_dir if p.after else None,
            }
            for p in c.changed
        ],
        "unchanged": c.unchanged,
        "max_slowdown_pct": c.max_slowdown_pct,
        "exit_code": c.exit_code,
    }
