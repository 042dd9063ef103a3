"""Run the eBPF engine (and optionally the ring engine beside it) for a while and print JSON.

`python -m verifier.capture.ebpf IFACE... --ports LO-HI [--ports ...] [--seconds S] [--until-stdin]
[--ring] [--out DIR]`

For tests and measurements that must run inside another network namespace (`ip netns exec`):
prints "armed" once counting, then after S seconds (with --until-stdin, at a line or EOF on stdin
if that comes first) one JSON object: each engine's CaptureResult, this process's CPU seconds and
the programs' run_time_ns/run_cnt (non-zero only while kernel.bpf_stats_enabled=1). SIGINT leaves
through the with-block like a Ctrl-C in verify-path, exit 130, without the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import select
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from verifier.capture.ebpf import loader
from verifier.capture.ebpf.engine import EbpfCapture
from verifier.capture.ebpf.objects import available
from verifier.model import Endpoints


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifier.capture.ebpf")
    parser.add_argument("interfaces", nargs="+")
    parser.add_argument("--ports", type=_range, action="append", required=True)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument(
        "--until-stdin", action="store_true", help="stop at a line or EOF on stdin, or after --seconds if sooner"
    )
    parser.add_argument("--ring", action="store_true", help="run the ring engine (live.py) at the same time")
    parser.add_argument("--out", type=Path, default=None, help="write the eBPF engine's evidence pcaps here")
    args = parser.parse_args(argv)
    reason = available()
    if reason:
        print(f"eBPF unavailable: {reason}", file=sys.stderr)
        return 4
    ports = tuple(args.ports)
    engine = EbpfCapture(args.interfaces, ports, args.out)
    wakeups: list[Sequence[Endpoints]] = []  # the connections each call named
    engine.on_new_flow(wakeups.append)
    try:
        with ExitStack() as stack:
            stack.enter_context(engine)
            ring = None
            if args.ring:
                from verifier.capture.live import LiveCapture

                ring = stack.enter_context(LiveCapture(args.interfaces, ports, None))
            cpu0 = os.times()
            print("armed", flush=True)
            if args.until_stdin:  # the caller says when its traffic is over: no fixed window to outlast
                select.select([sys.stdin], [], [], args.seconds)
            else:
                time.sleep(args.seconds)
            assert engine._obj is not None
            runs = [loader.prog_stats(fd) for fd in engine._obj.progs.values()]
            ours = dataclasses.asdict(engine.stop(drain_s=0.0))
            cpu1 = os.times()  # includes reading the maps: the engine's whole user-space cost
            out = {
                "ebpf": ours,
                "ring": dataclasses.asdict(ring.stop()) if ring else None,
                "cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
                "run_time_ns": sum(r[0] for r in runs),
                "run_cnt": sum(r[1] for r in runs),
                "new_flow_wakeups": len(wakeups),  # on_new_flow's calls: connections' first payloads
                "announced": sorted({conn for conns in wakeups for conn in conns}),
            }
    except KeyboardInterrupt:
        return 130
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
