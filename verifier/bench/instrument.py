"""The bench's instrument beside our capture: an empty tc program on the same hooks, same frames.

`python -m verifier.bench.instrument --interfaces san0,san1`, run inside a namespace like
sniff.py. It attaches count.bpf.c's `vp_noop` with tcx to each interface, ingress and egress,
before our capture arms (tcx appends: the empty program runs first and reads nothing of the frame,
so our programs still meet every frame's lines cold, as without it), keeps eBPF run-time
statistics on, prints "armed" on stderr, and at a line on stdin prints
`{"run_time_ns": ..., "run_cnt": ...}` for its one program (on every hook) and exits.

Why: run_time_ns is the time between two clock reads around a program. What it counts of those
reads and of the call is in every program's figure; an empty program measures it alone, in the
same run, on the same frames. On this machine's clock (kvm-clock) that is a large part of what
our programs' figure says they cost (70-93 of 199-316 ns per run in the bench's cases on
2026-11-27), and it moves with the machine's pace from run to run, so a figure from another time
cannot be subtracted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from verifier.bench.sniff import enable_bpf_stats
from verifier.capture.ebpf import loader
from verifier.capture.ebpf.build import OBJECT

PROGRAM = "vp_noop"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m verifier.bench.instrument")
    p.add_argument("--interfaces", required=True)
    args = p.parse_args(argv)
    obj = loader.BpfObject(OBJECT, [PROGRAM])
    links: list[int] = []
    stats = enable_bpf_stats()
    try:
        fd = obj.progs[PROGRAM]
        for name in args.interfaces.split(","):
            index = socket.if_nametoindex(name)
            links += [loader.attach_tcx(fd, index, ingress) for ingress in (True, False)]
        before = loader.prog_stats(fd)
        print("armed", file=sys.stderr, flush=True)
        sys.stdin.readline()
        after = loader.prog_stats(fd)
    finally:
        for link in links:
            os.close(link)  # detaches
        os.close(stats)
        obj.close()
    print(json.dumps({"run_time_ns": after[0] - before[0], "run_cnt": after[1] - before[1]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
