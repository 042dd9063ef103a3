"""A capture-only process for the benchmark: arm LiveCapture, wait, print the counts as JSON.

Run inside a lab node: `python -m verifier.bench.sniff --interfaces san0,san1 --seconds 14 --out DIR`.
CPU time is measured inside the process, from armed to stopped, all threads included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from verifier.capture.live import DEFAULT_RCVBUF, LiveCapture


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="verifier.bench.sniff")
    p.add_argument("--interfaces", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--ports", default="49152-49215")
    p.add_argument("--rcvbuf", type=int, default=DEFAULT_RCVBUF)
    args = p.parse_args(argv)
    lo, _, hi = args.ports.partition("-")
    cap = LiveCapture(args.interfaces.split(","), ((int(lo), int(hi or lo)),), args.out, rcvbuf=args.rcvbuf)
    cap.start()
    print("armed", file=sys.stderr, flush=True)
    cpu0 = time.process_time()
    time.sleep(args.seconds)
    result = cap.stop(drain_s=0.2)
    cpu = time.process_time() - cpu0
    out = {
        "cpu_s": cpu,
        "interfaces": {
            c.name: {
                "bytes": c.bytes_tx + c.bytes_rx,
                "packets": c.packets,
                "payload": c.payload,
                "drops": c.drops,
                "kernel_packets": c.kernel_packets,
                "counter_bytes": (c.counter_tx or 0) + (c.counter_rx or 0),
            }
            for c in result.interfaces
        },
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
