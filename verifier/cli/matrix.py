"""`verify-path matrix RUN_DIR...` and `verify-path compare BEFORE AFTER` on two matrices.

Comparing matrices is `compare`, not a `matrix --compare` option: "before and after" is what
`compare` means already, with the same --max-slowdown and the same exit 1 when something moved away
from the expected link or got worse; given two directories of runs instead of two runs, it compares
them pair by pair. A directory that holds run.json itself is one run; one that holds runs below it
is a matrix.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import TextIO

from verifier.cli.output import write_file
from verifier.cli.parser import Parser
from verifier.errors import UsageError
from verifier.matrix import build, compare, render
from verifier.render import formats


def parser() -> Parser:
    p = Parser(
        "verify-path matrix",
        "The cluster's matrix from stored runs (the playbook's captures/matrix-<timestamp>/, or any "
        "directories of runs): for every ordered pair of hosts, the link the stream left by and the "
        "link it arrived on, the verdict, the wire rate, and marks for asymmetric pairs and for pairs "
        "that took another network than most. Exit code: the worst pair's.",
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="directories searched for run.json")
    p.add_argument("--format", default="text", help="text (default), markdown, html, json or junit")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("-o", "--output", type=Path, help="write to this file (mode 0600) instead of stdout")
    p.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="CIDR",
        help="the cluster's networks, to tell pairs apart by (default: the /24 or /64 around each "
        "stream's destination address)",
    )
    p.add_argument(
        "--partial",
        action="store_true",
        help="only some pairs were run: pairs without a run are listed but do not make the matrix inconclusive",
    )
    return p


def networks(values: list[str]) -> tuple[build.Network, ...]:
    out = []
    for value in values:
        for part in (v.strip() for v in value.split(",")):
            if not part:
                continue
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise UsageError(f"--network {part!r} is not a network", hint="e.g. --network 198.18.0.0/24") from None
    return tuple(out)


def run(args: argparse.Namespace, out: TextIO) -> int:

    try:
        fmt = formats.parse("json" if args.json else args.format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    matrix = build.build(args.run_dirs, networks(args.network), args.partial)
    write_file(render.render(matrix, fmt), args.output, out)
    return matrix.exit_code


def is_single_run(path: Path) -> bool:
    return path.is_file() or (path / "run.json").is_file()


def wants_matrices(args: argparse.Namespace) -> bool:
    """True when `compare` was given two directories of runs; UsageError for one run and one matrix."""
    a, b = Path(args.run_a), Path(args.run_b)
    if not (a.is_dir() and b.is_dir()) or (is_single_run(a) and is_single_run(b)):
        return False
    if is_single_run(a) or is_single_run(b):
        raise UsageError(
            "compare needs two runs or two directories of runs (matrices), not one of each",
            hint="e.g. verify-path compare captures/matrix-BEFORE captures/matrix-AFTER",
        )
    return True


def compare_matrices(args: argparse.Namespace, out: TextIO) -> int:
    if getattr(args, "chart", None):
        raise UsageError("--chart compares two runs, not two matrices", hint="leave --chart out")
    before = build.build([Path(args.run_a)])
    after = build.build([Path(args.run_b)])
    result = compare.compare(before, after, args.max_slowdown)
    out.write(compare.render_text(result))
    return result.exit_code
