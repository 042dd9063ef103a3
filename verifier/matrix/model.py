"""The cluster's matrix as values: one Cell per ordered pair of hypervisors, and the Matrix.

A cell is what one migration from SOURCE to DESTINATION showed: the link the stream left by on
the source (the send side) and the link it arrived on at the destination (the receive side, from a
`watch` run there or from a round trip's return leg), the verdict, the wire rate and the marks.
Built by `build`, compared by `compare`, rendered by `render`: nothing here reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier.errors import exit_code_for
from verifier.model import Report

ASYMMETRIC = "asymmetric"  # the send and the receive side name different links
OUTLIER = "outlier"  # the pair took another network than most pairs
MISSING = "missing"  # a pair between two hosts of the matrix that has no run

# Worst last: the matrix exits with its worst cell's code. pass and observed both mean "the path
# is known and acceptable"; a path that is known and wrong (fail) is better than not knowing.
VERDICT_RANK = {"pass": 0, "observed": 0, "fail": 1, "inconclusive": 2, "missing": 2, "interrupted": 3}


def rank(verdict: str) -> int:
    return VERDICT_RANK.get(verdict, VERDICT_RANK["inconclusive"])


@dataclass(frozen=True)
class Side:
    """One end's view of the stream: the link (the top of its master chain) and that link's role."""

    interface: str | None
    role: str | None = None
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rate:
    """How fast the pair's stream went, in bits/s (verifier.figures' wire rate)."""

    bps: float
    lower_bound: bool  # too few one-second bins, or only libvirt's job duration to divide by
    basis: str  # "wire" | "data_processed/duration"


@dataclass(frozen=True)
class Cell:
    source: str
    destination: str
    send: Side
    receive: Side | None  # None: no run recorded the receive side
    receive_from: str  # "watch" | "return-leg" | "" (none)
    verdict: str
    migration_status: str
    network: str | None  # the subnet (or role, or link) the stream used: what outliers are measured by
    marks: tuple[str, ...]
    rate: Rate | None
    run_dir: str | None
    started_at: float
    probe: bool
    expected: tuple[str, ...] = ()
    receive_run_dir: str | None = None
    # The run itself, so that `compare` can reuse the two-run comparison; never rendered.
    report: Report | None = field(default=None, compare=False, repr=False)

    @property
    def pair(self) -> tuple[str, str]:
        return self.source, self.destination

    @property
    def interface(self) -> str | None:
        return self.send.interface

    @property
    def receive_interface(self) -> str | None:
        return self.receive.interface if self.receive else None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.verdict, self.migration_status)


@dataclass(frozen=True)
class Matrix:
    hosts: tuple[str, ...]  # every host that sent or received, sorted
    cells: tuple[Cell, ...]  # sorted by (source, destination)
    missing: tuple[tuple[str, str], ...]  # ordered pairs of `hosts` without a run
    majority_network: str | None  # None: no network carried more than half of the pairs
    problems: tuple[str, ...] = ()  # records that could not be read, watch runs matched to nothing
    partial: bool = False  # missing pairs are expected (a `pairs` list ran): they do not count
    inputs: tuple[str, ...] = ()  # the directories read

    def cell(self, source: str, destination: str) -> Cell | None:
        return next((c for c in self.cells if c.pair == (source, destination)), None)

    def worst(self) -> Cell | None:
        """The cell that decides the exit code: worst verdict, then a failed or interrupted migration."""
        status = {"failed": 1, "interrupted": 2}
        return max(self.cells, key=lambda c: (rank(c.verdict), status.get(c.migration_status, 0)), default=None)

    @property
    def counts_missing(self) -> bool:
        return bool(self.missing) and not self.partial

    @property
    def verdict(self) -> str:
        """The worst cell's verdict; a missing pair counts as inconclusive unless the matrix is partial."""
        worst = self.worst()
        if worst is None or (self.counts_missing and rank(MISSING) > rank(worst.verdict)):
            return "inconclusive"
        return worst.verdict

    @property
    def exit_code(self) -> int:
        worst = self.worst()
        if worst is None or (self.counts_missing and rank(MISSING) > rank(worst.verdict)):
            return exit_code_for("inconclusive")
        return worst.exit_code


@dataclass(frozen=True)
class PairChange:
    """One ordered pair whose link, verdict or marks differ between two matrices."""

    source: str
    destination: str
    before: Cell | None  # None: the pair is new
    after: Cell | None  # None: the pair has no run any more
    changes: tuple[str, ...]  # one phrase each: "link br0 => san0", "verdict pass => fail", "+outlier"
    worse: tuple[str, ...]  # why this change counts against the after matrix (exit 1)


@dataclass(frozen=True)
class MatrixComparison:
    before: Matrix
    after: Matrix
    changed: tuple[PairChange, ...]
    unchanged: int
    max_slowdown_pct: float | None

    @property
    def exit_code(self) -> int:
        return 1 if any(c.worse for c in self.changed) else 0
