"""A capture-only process for the benchmark: arm one engine, count until told to stop, print JSON.

`python -m verifier.bench.sniff --engine default|ring --interfaces san0,san1 [--out DIR]`, run
inside a namespace (`ip netns exec`). Prints "armed" on stderr once counting, stops at a line or
EOF on stdin, then prints one JSON object on stdout.

- default: what verify-path uses without options, `engines.make(engines.choose(None), ...)`: eBPF
  counting with the program's own sampled evidence pcaps when eBPF loads, the ring alone otherwise
  (the JSON says which engine counted, and why).
- ring: the TPACKET_V3 ring engine alone (live.py), every frame's headers to the pcap.

With --owners it also samples ownership the way `verify-path VM NODE` does during a migration
(owners.OwnershipSampler on the same ports, woken by the capture's new-flow announcements as in
the pipeline, from arming to after stopping), for a stand-in QEMU: a sleeping child whose command
line is a QEMU's (`qemu-system-x86_64 ... -name guest=vpbench-standin`), with a pid file where
libvirt writes one (`<run dir>/qemu/<guest>.pid`, in a temporary run dir), so the sampler finds
it as it finds a real QEMU. The stand-in holds no socket, so each tick costs what a real one
costs between QEMU's connection changes, and the socket dumps find iperf3's connections as
foreign (their owner looked up in /proc, as on a busy host). Its thread's CPU is part of cpu_s
and reported apart as owners_cpu_s.

CPU: this process's CPU time (user and system, to the nanosecond) from before the engine is built to after stop(), all
threads (the evidence ring's reader included; setup reported apart as well), plus the run time
of this process's eBPF programs measured by the kernel (run_time_ns, per program, the
difference between arming and stopping). The programs run in the sender's and receiver's
softirq context, so their cost is nobody's process CPU; the kernel only measures it while
statistics are enabled, which this process turns on with BPF_ENABLE_STATS for exactly that
window: a file descriptor that the kernel counts like a reference, so it neither overrides nor
resets `kernel.bpf_stats_enabled` set by someone else, and closing it (also by dying) turns the
measurement off again.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from verifier.capture import engines
from verifier.capture.live import DEFAULT_RCVBUF

BPF_STATS_RUN_TIME = 0  # enum bpf_stats_type
STANDIN_VM = "vpbench-standin"


def enable_bpf_stats() -> int:
    """A descriptor that keeps eBPF run-time statistics on while it is open (libbpf bpf_enable_stats)."""
    from verifier.capture.ebpf import loader

    fn = loader.libbpf().bpf_enable_stats
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    fd = int(fn(BPF_STATS_RUN_TIME))
    if fd < 0:
        raise OSError(-fd, f"BPF_ENABLE_STATS: {os.strerror(-fd)}")
    return fd


def own_programs() -> dict[int, tuple[int, int]]:
    """{prog_id: (run_time_ns, run_cnt)} of every eBPF program this process holds a descriptor of.

    Only ours by construction: the capture engine loaded them, nothing else in this process loads
    any (the ring's socket filter is classic BPF, which has no descriptor).
    """
    found: dict[int, tuple[int, int]] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            text = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue  # the listing's own descriptor, gone by now
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        prog_id = int(fields.get("prog_id", "0").strip() or 0)
        found[prog_id] = (int(fields.get("run_time_ns", "0").strip()), int(fields.get("run_cnt", "0").strip()))
    return found


def _evidence_drops(capture: Any) -> int | None:
    # The default engine's evidence losses (engines.Combined.evidence_lost); the ring engine alone
    # keeps no evidence apart from what it counts.
    lost = getattr(capture, "evidence_lost", None)
    return lost if isinstance(lost, int) else None


def _standin_qemu() -> subprocess.Popen[bytes]:
    """A process that looks like guest STANDIN_VM's QEMU to owners.processes (argv[0] names qemu,
    `-name guest=...`), in this namespace; it only sleeps."""
    script = "import sys, time; sys.stdin.read()"  # ends when its stdin closes (we exit or close it)
    return subprocess.Popen(
        ["qemu-system-x86_64", "-c", script, "-name", f"guest={STANDIN_VM}"],
        executable=sys.executable,
        stdin=subprocess.PIPE,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m verifier.bench.sniff")
    p.add_argument("--engine", choices=("default", "ring"), required=True)
    p.add_argument("--interfaces", required=True)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--ports", default="49152-49215")
    p.add_argument("--owners", action="store_true", help="sample ownership as verify-path does (stand-in QEMU)")
    p.add_argument(
        "--no-bpf-stats",
        action="store_true",
        help="leave eBPF run-time statistics off, as verify-path does (they add two clock reads to every"
        " program run); bpf_run_time_ns is then null",
    )
    args = p.parse_args(argv)
    lo, _, hi = args.ports.partition("-")
    ports = ((int(lo), int(hi or lo)),)
    # Imported before the CPU window: a long-running verify-path has paid for them once. The
    # engines' own modules too, which engines.py imports lazily: where PYTHONDONTWRITEBYTECODE is
    # set (this machine's shells set it), each import compiles them again, 0.015 s of CPU.
    import scapy.arch.linux  # noqa: F401
    import scapy.layers.l2  # noqa: F401

    import verifier.capture.ebpf.engine  # noqa: F401
    import verifier.capture.ebpf.objects  # noqa: F401
    from verifier.owners import OwnershipSampler

    standin = _standin_qemu() if args.owners else None  # the bench's prop: not in our CPU window
    run_dir = tempfile.TemporaryDirectory(prefix="vpbench-run-")
    if standin is not None:
        (Path(run_dir.name) / "qemu").mkdir()
        (Path(run_dir.name) / "qemu" / f"{STANDIN_VM}.pid").write_text(f"{standin.pid}\n")
    # From here: choose() loads the eBPF object once (and the capture takes that object), the one
    # load a verify-path run pays.
    # CPU in nanoseconds (CLOCK_PROCESS_CPUTIME_ID, all threads): os.times() counts in clock ticks,
    # 10 ms steps, which are 3-5 % of a 10 s case's whole figure; tcpdump's rusage counts in us.
    cpu0 = time.process_time()
    choice = engines.choose(None if args.engine == "default" else "ring")
    stats_fd = enable_bpf_stats() if choice.engine == "ebpf" and not args.no_bpf_stats else None
    sampler = OwnershipSampler(STANDIN_VM, [Path(run_dir.name)], ports=ports) if args.owners else None
    ownership = None
    try:
        capture = engines.make(choice, args.interfaces.split(","), ports, args.out, rcvbuf=DEFAULT_RCVBUF)
        capture.start()
        if sampler is not None:  # as the pipeline does: woken by the capture when it can
            sampler.start(woken=capture.on_new_flow(sampler.wake))
        armed = time.process_time()
        before = own_programs()
        print("armed", file=sys.stderr, flush=True)
        sys.stdin.readline()
        after = own_programs()  # before stop(), which closes the programs
        result = capture.stop(drain_s=0.2)
        if sampler is not None:
            ownership = sampler.stop()
        cpu1 = time.process_time()
    finally:
        if stats_fd is not None:
            os.close(stats_fd)
        if standin is not None:
            standin.communicate()  # closes its stdin: it exits
        run_dir.cleanup()
    runs = {
        pid: (after[pid][0] - before.get(pid, (0, 0))[0], after[pid][1] - before.get(pid, (0, 0))[1]) for pid in after
    }
    out = {
        "engine": result.engine,
        "pcaps": result.pcaps,
        "note": result.engine_note or choice.note,
        "cpu_s": cpu1 - cpu0,
        # Of that, building and starting the engine (loading and verifying the eBPF object,
        # opening the ring's sockets): a fixed cost per capture, whatever it then counts.
        "setup_cpu_s": armed - cpu0,
        "bpf_run_time_ns": None if args.no_bpf_stats else sum(r[0] for r in runs.values()),
        "bpf_run_cnt": None if args.no_bpf_stats else sum(r[1] for r in runs.values()),
        "bpf_programs": len(runs),
        "evidence_drops": _evidence_drops(capture),
        # The ownership sampler's thread, included in cpu_s above.
        "owners_cpu_s": ownership.cpu_s if ownership else None,
        "owners_samples": ownership.samples if ownership else None,
        "owners_dumps": ownership.dumps if ownership else None,
        "owners_found_standin": ownership.owner_pid == (standin.pid if standin else None) if ownership else None,
        "owners_foreign": sorted({f.owner for f in ownership.foreign}) if ownership else None,
        "problems": list(result.problems),
        "interfaces": {
            c.name: {
                "bytes": c.bytes_tx + c.bytes_rx + c.other_bytes,  # all the filter matched, as tcpdump
                "packets": c.packets,
                "payload": c.payload,
                "drops": c.drops,
                "counter_bytes": (c.counter_tx or 0) + (c.counter_rx or 0),
            }
            for c in result.interfaces
        },
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
