"""`make bench`: the capture engines measured side by side with tcpdump and iperf3 in one run.

Both engines are measured, each against tcpdump on the same traffic at the same time: the one
verify-path uses by default (eBPF counting with its own sampled evidence pcaps, engines.make) and the
TPACKET_V3 ring engine alone, for comparison with earlier tables. Every figure is a ratio against
a reference measured in the same run on the same machine: bytes ours / tcpdump, payload ours /
iperf3 sent, drops, CPU per GB ours / tcpdump, iperf3 throughput with capture / without; with
--lab also migration duration watched / unwatched and time to verdict beyond the migration (the
lab, a 1 GiB guest); and `verify-path analyze` against tshark. The iperf3 cases run on the
bench's own namespaces (netns.py), never on the lab's nodes.

Results: each run's table, the targets over all runs, and the JSON in captures/bench/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from verifier.bench import cases, netns, table

TOOLS = ("ip", "iperf3", "tcpdump", "ethtool")


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def one_run(n: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The iperf3 cases on the bench's namespaces, then (with --lab) the lab cases."""
    run: dict[str, Any] = {"run": n, "started": time.strftime("%H:%M:%S", time.gmtime()), "load_before": _load()}
    with netns.bench_pair():
        _progress(f"run {n}: accuracy cases ({args.seconds:g} s each, both engines)")
        run["accuracy"] = [c | table.ratios(c) for c in cases.accuracy_cases(args.seconds, tmp)]
        _progress(f"run {n}: throughput overhead")
        run["overhead"] = cases.overhead_case(args.seconds, tmp) | {"ratios": {}}
        run["overhead"]["ratios"] = table.overhead_ratios(run["overhead"])
    run["load_after_iperf"] = _load()
    if args.lab:
        from verifier.bench import lab

        _progress(f"run {n}: lab migrations ({args.guest_memory_mib} MiB guest)")
        run["migration"] = lab.lab_case(args.guest_memory_mib, args.guest_data_mib, args.lab_rounds, tmp, _progress)
    run["load_after"] = _load()
    return run


def _compat(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The last run's default-engine figures under the keys earlier benches wrote (tests read them)."""
    last = runs[-1]
    accuracy = [
        c | {"accuracy_vs_tcpdump": c["bytes_vs_tcpdump"]} for c in last["accuracy"] if c["engine_asked"] == "default"
    ]
    out: dict[str, Any] = {"accuracy": accuracy, "overhead": last["overhead"]}
    if last.get("migration"):
        out["migration"] = last["migration"]
    return out


def _write(results: dict[str, Any], out: Path) -> None:
    results |= _compat(results["runs"])
    results["targets"] = [t.__dict__ for t in table.targets(results["runs"])]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")


def _check_tools(args: argparse.Namespace) -> str | None:
    if os.geteuid() != 0:
        return "the bench needs root (namespaces, packet sockets, eBPF)"
    needed = TOOLS + (("tshark",) if args.analyze_mb else ()) + (("virsh",) if args.lab else ())
    missing = [t for t in needed if shutil.which(t) is None]
    return f"not installed: {' '.join(missing)}" if missing else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m verifier.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="full runs, each with every case (default 3)")
    p.add_argument("--seconds", type=float, default=10.0, help="iperf3 duration per case (default 10)")
    p.add_argument("--out", type=Path, default=Path("captures/bench/latest.json"))
    p.add_argument(
        "--analyze-mb", type=int, default=1000, help="offline-analysis capture size, once per bench; 0 skips it"
    )
    p.add_argument("--lab", action="store_true", help="also the lab cases: migration duration, time to verdict")
    p.add_argument("--guest-memory-mib", type=int, default=1024, help="the lab cases' guest RAM (default 1024)")
    p.add_argument("--guest-data-mib", type=int, default=896, help="random data in that RAM (default 896)")
    # 5: unwatched, virsh's wall time jumps between about 3.0 and 4.0 s from one migration to the
    # next (16 in a row, 2026-11-26), so a median of 6 per side moves by tenths of a second.
    p.add_argument("--lab-rounds", type=int, default=5, help="unwatched+watched migration pairs per run (default 5)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problem = _check_tools(args)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 4
    command = shlex.join(["python", "-m", "verifier.bench", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}",
        "seconds": args.seconds,
        "runs": [],
    }
    print(f"{command}\n{results['date']}, {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="vpbench-") as tmpdir:
        tmp = Path(tmpdir)
        for n in range(1, args.runs + 1):
            run = one_run(n, args, tmp / f"run{n}")
            results["runs"].append(run)
            # Each run is printed and saved as it ends: a later case that fails or is
            # interrupted costs only itself.
            load = f"load average {run['load_before']} before, {run['load_after']} after"
            print(f"\nrun {n} ({run['started']} UTC, {load}):\n{table.run_table(run)}", flush=True)
            _write(results, args.out)
        if args.analyze_mb:
            from verifier.bench.analyze import analyze_case

            _progress(f"offline analysis of a {args.analyze_mb} MB capture")
            results["analyze"] = analyze_case(args.analyze_mb, tmp)
            for line in table.analyze_lines(results["analyze"]):
                print(f"\n{line}")
    _write(results, args.out)
    print("\ntargets (default engine, every run):")
    print(table.targets_text(results["runs"]))
    print(f"\nwritten to {args.out}")
    return 0
