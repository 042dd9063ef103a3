"""Commands that need no live system: `report`, `compare`, `runs`, `analyze`, `bond-hash`, `matrix`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from verifier.cli.output import write_file, write_finished
from verifier.cli.parser import Parser, add_expectation, add_output, add_ports, add_storage, split_list
from verifier.errors import UsageError


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from verifier import runs
    from verifier.render import formats, markdown

    report = runs.load(Path(args.run))
    try:
        fmt = formats.parse(args.format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    run_dir = Path(report.run_dir) if report.run_dir else None
    if fmt is formats.Format.MARKDOWN and args.output is not None:
        # Written elsewhere, the Markdown's chart link must still find its chart: a copy beside it.
        name, png = markdown.chart_for(report, run_dir, args.output)
        if png is not None:
            write_file(png, args.output.parent / name, out)
        text = markdown.render(report, run_dir, chart=name)
    else:
        text = formats.render(report, fmt, run_dir)
    write_file(text, args.output, out)
    return 0


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    from verifier import compare, runs
    from verifier.cli import matrix as matrix_cli
    from verifier.render import chart

    if matrix_cli.wants_matrices(args):  # two directories of runs: pair by pair
        return matrix_cli.compare_matrices(args, out)
    a, b = runs.load(Path(args.run_a)), runs.load(Path(args.run_b))
    result = compare.compare(a, b, args.max_slowdown)
    out.write(compare.render_text(result))
    out.flush()  # see _write: `compare A B | head -1` must end inside main, quietly
    if args.chart:
        chart.render_compare(a, b, args.chart)
        out.write(f"comparison chart: {args.chart}\n")
    return result.exit_code


def _runs(args: argparse.Namespace, out: TextIO) -> int:
    from verifier import runs

    found = runs.list_runs(args.captures_dir)
    if args.json:
        out.write(
            json.dumps(
                [{**r.__dict__, "run_dir": str(r.run_dir), "expected": list(r.expected)} for r in found], indent=2
            )
            + "\n"
        )
        return 0
    if not found:
        out.write(f"no runs in {args.captures_dir}\n")
        return 0
    out.write(f"{'time':<21} {'vm':<12} {'destination':<12} {'verdict':<13} {'observed':<10} {'expected':<12} run\n")
    for r in found:
        out.write(
            f"{r.time:<21} {r.vm:<12} {r.destination:<12} {r.verdict:<13} {r.observed_interface or '-':<10} "
            f"{','.join(r.expected) or '-':<12} {r.run_dir}\n"
        )
    return 0


def _analyze(args: argparse.Namespace, out: TextIO) -> int:
    from verifier import analyze, expect, profiles

    iface_map = analyze._pairs(args.iface_map, "--iface-map")
    analyze.validate_options(args.pcaps, iface_map, args.local)
    files = [(path, analyze.interface_for(path, iface_map)) for path in args.pcaps]
    finished = analyze.run_offline(
        files,
        profiles.ports_for(args.profile, profiles.parse_ports(args.ports) if args.ports else ()),
        expect.Expectation(split_list(args.expect), expect.parse_networks(args.expect_net)),
        args.captures_dir,
        # An empty --local list means "not given": an empty set would make no frame outgoing.
        local=set(args.local) or None,
        masters=analyze._pairs(args.master, "--master"),
        vm=args.vm,
        dest=args.dest,
        data_processed=args.data_processed,
        chart=args.chart,
    )
    return write_finished(finished, args.json, args.chart, out)


def _bond_hash(args: argparse.Namespace, out: TextIO) -> int:
    from verifier import bondhash

    return bondhash.run(args, out)


def _matrix(args: argparse.Namespace, out: TextIO) -> int:
    from verifier.cli import matrix as matrix_cli

    return matrix_cli.run(args, out)


def parsers() -> dict[str, Parser]:
    rep = Parser("verify-path report", "Re-render a stored run without any live system.")
    rep.add_argument("run", metavar="RUN", help="a run directory or its run.json")
    rep.add_argument("--format", default="text", help="text (default), markdown, html, json or junit")
    rep.add_argument("-o", "--output", type=Path, help="write to this file (mode 0600) instead of stdout")

    cmp_ = Parser(
        "verify-path compare",
        "Compare two stored runs: path, bytes and share per interface, throughput, "
        "duration, coverage, findings. Exit 1 when the path moved away from the "
        "expected link or throughput fell by more than --max-slowdown. Given two directories "
        "of runs (two matrices, before and after), it lists the pairs that changed, and exits 1 "
        "when one moved away from the expected link or got worse.",
    )
    cmp_.add_argument("run_a", metavar="RUN_A")
    cmp_.add_argument("run_b", metavar="RUN_B")
    cmp_.add_argument("--max-slowdown", type=float, metavar="PCT", help="allowed throughput drop, percent")
    cmp_.add_argument("--chart", type=Path, metavar="PATH", help="write a comparison chart (.png or .svg)")

    lst = Parser("verify-path runs", "List stored runs: time, VM, destination, verdict, observed link.")
    lst.add_argument("--captures-dir", type=Path, default=Path("captures"), metavar="DIR")
    lst.add_argument("--json", action="store_true")

    ana = Parser(
        "verify-path analyze",
        "Count pcap/pcapng files made by tcpdump or tshark (any snap length, Ethernet "
        "or Linux cooked) and store the result as a run, like a live one.",
    )
    ana.add_argument("pcaps", nargs="+", type=Path, metavar="PCAP")
    ana.add_argument(
        "--iface-map",
        action="append",
        default=[],
        metavar="FILE=IFACE",
        help="the interface a file was captured on (default: the file name's stem)",
    )
    ana.add_argument(
        "--master",
        action="append",
        default=[],
        metavar="PORT=MASTER",
        help="PORT is a bridge port or bond member of MASTER (both captured): count the stream once",
    )
    add_ports(ana)
    ana.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="ADDR",
        help="this host's address(es): frames from them count as tx",
    )
    add_expectation(ana)
    ana.add_argument("--vm", default="", help="label the run with this VM")
    ana.add_argument("--dest", default="", help="label the run with this destination")
    ana.add_argument(
        "--data-processed",
        type=int,
        metavar="BYTES",
        help="libvirt's data_processed for that migration, to compute coverage",
    )
    add_storage(ana)
    add_output(ana)

    bond = Parser(
        "verify-path bond-hash",
        "Which member of a bond the kernel's transmit hash (xmit_hash_policy) picks for a flow, "
        "with the formula of the kernel generation that runs (or --kernel).",
    )
    _bond_arguments(bond)
    from verifier.cli import matrix as matrix_cli

    return {
        "report": rep,
        "compare": cmp_,
        "runs": lst,
        "analyze": ana,
        "bond-hash": bond,
        "matrix": matrix_cli.parser(),
    }


def _bond_arguments(p: Parser) -> None:
    from verifier import bondhash

    bondhash.add_arguments(p)


HANDLERS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "report": _report,
    "compare": _compare,
    "runs": _runs,
    "analyze": _analyze,
    "bond-hash": _bond_hash,
    "matrix": _matrix,
}
RECORD_COMMANDS = tuple(HANDLERS)


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    return parsers()[command].parse_args(argv)


def dispatch(command: str, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    return HANDLERS[command](args, out)
