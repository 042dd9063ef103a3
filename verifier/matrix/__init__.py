"""The whole cluster at once: every ordered pair of hypervisors, which link its migration took.

`build` reads stored runs (probes and watches that the Ansible playbook fetched, or any runs) into
a `Matrix` of `Cell`s; `compare` lists the pairs that changed between two matrices; `render` writes
a matrix as text, Markdown, HTML, JSON or JUnit; `cli` is `verify-path matrix` and the matrix side
of `verify-path compare`. The model's types are importable from here; the stages from their modules.
"""

from verifier.matrix.model import ASYMMETRIC, MISSING, OUTLIER, Cell, Matrix, MatrixComparison, PairChange, Rate, Side

__all__ = [
    "ASYMMETRIC",
    "MISSING",
    "OUTLIER",
    "Cell",
    "Matrix",
    "MatrixComparison",
    "PairChange",
    "Rate",
    "Side",
]
