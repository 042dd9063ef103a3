"""The iperf3 cases, on the bench's own namespaces (netns.py): accuracy, drops, CPU per GB, throughput.

Every engine is measured against a tcpdump that watches the same interfaces with the same filter
and snap length during the same iperf3 run, so each ratio compares two counts of the same
traffic. The engines run one at a time (each with its own tcpdump): the ring engine needs most of
a core at these rates and would otherwise slow iperf3 and tcpdump in the eBPF engine's figures.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from verifier.bench import netns
from verifier.bench.netns import CLIENT, SERVER
from verifier.bench.tools import Instrument, Sniffer, Tcpdump, iperf

ENGINES = ("default", "ring")  # sniff.py's --engine values
PORTS = (49152, 49153)  # one iperf3 server per stream, inside the watched range


def streams_on(ifaces: list[str]) -> list[tuple[str, int]]:
    """One stream per interface, to its server address there."""
    return [(netns.link(i).server, PORTS[n]) for n, i in enumerate(ifaces)]


def _capture_both(
    engine: str, ifaces: list[str], seconds: float, work: Path
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """ENGINE's result, tcpdump's per interface and iperf3's per stream, for one iperf3 run."""
    # The default engine samples ownership too, as verify-path does while it counts.
    ours = Sniffer(CLIENT, engine, ifaces, work / "pcaps", owners=engine == "default")
    dumps: dict[str, Tcpdump] = {}
    try:
        for i in ifaces:
            dumps[i] = Tcpdump(CLIENT, i, work / f"tcpdump-{i}.pcap")
        sent = iperf(CLIENT, SERVER, streams_on(ifaces), seconds)
        time.sleep(0.5)  # tcpdump reads what its buffer still holds; SIGINT would lose it
    except BaseException:
        ours.kill()
        for d in dumps.values():
            d.proc.kill()
            d.proc.wait()
        raise
    theirs = {i: d.stop() for i, d in dumps.items()}
    return ours.result(), theirs, sent


def accuracy_case(name: str, engine: str, ifaces: list[str], seconds: float, tmp: Path) -> dict[str, Any]:
    """ENGINE and tcpdump on IFACES (in the client namespace) while iperf3 sends over each of them."""
    work = tmp / f"{name}-{engine}".replace(" ", "_").replace("+", "_")
    work.mkdir(parents=True, exist_ok=True)
    # The default engine's figure includes what the run-time statistics count of their own clock
    # reads: an empty program on the same hooks measures that, on the same frames (instrument.py).
    # Attached first, so tcx runs it before ours.
    instrument = Instrument(CLIENT, ifaces) if engine == "default" else None
    try:
        mine, theirs, sent = _capture_both(engine, ifaces, seconds, work)
        empty = instrument.result() if instrument is not None else {}
    finally:
        if instrument is not None:
            instrument.kill()  # when something above failed; a no-op once it has answered
    shutil.rmtree(work, ignore_errors=True)  # tmpfs: the ring's full pcaps reach hundreds of MB
    counted = [mine["interfaces"][i] for i in ifaces]
    return {
        "case": name,
        "engine": mine["engine"],  # what counted: ebpf, or ring (also when eBPF fell back)
        "engine_asked": engine,
        "pcaps": mine["pcaps"],
        "note": mine["note"],
        "ours_bytes": sum(c["bytes"] for c in counted),
        "ours_payload": sum(c["payload"] for c in counted),
        "ours_drops": sum(c["drops"] for c in counted),
        "ours_problems": mine["problems"],
        "evidence_drops": mine["evidence_drops"],
        "ours_owners_cpu_s": mine.get("owners_cpu_s"),
        "ours_owners_samples": mine.get("owners_samples"),
        "ours_owners_dumps": mine.get("owners_dumps"),
        "ours_owners_found_standin": mine.get("owners_found_standin"),
        "ours_owners_foreign": mine.get("owners_foreign"),
        "ours_process_cpu_s": mine["cpu_s"],
        "ours_setup_cpu_s": mine["setup_cpu_s"],
        "ours_bpf_cpu_s": mine["bpf_run_time_ns"] / 1e9,
        "ours_bpf_runs": mine["bpf_run_cnt"],
        "ours_bpf_programs": mine["bpf_programs"],
        "instrument_bpf_cpu_s": empty["run_time_ns"] / 1e9 if empty else None,
        "instrument_bpf_runs": empty.get("run_cnt"),
        "tcpdump_bytes": sum(t["bytes"] for t in theirs.values()),
        "tcpdump_frames": sum(t["frames"] for t in theirs.values()),
        "tcpdump_drops": sum(t["drops"] or 0 for t in theirs.values()),
        "tcpdump_cpu_s": sum(t["cpu_s"] for t in theirs.values()),
        "iperf_sent": sum(s["bytes"] for s in sent),
        "iperf_retransmits": sum(s["retransmits"] for s in sent),
        "gbit_s": sum(s["bps"] for s in sent) / 1e9,
        "seconds": seconds,
        # The interface's own byte counters bound what any capture can have seen there.
        "counter_ok": all(c["bytes"] <= c["counter_bytes"] * 1.001 + 262144 for c in counted if c["counter_bytes"]),
    }


def accuracy_cases(seconds: float, tmp: Path) -> list[dict[str, Any]]:
    """One stream (san0), two streams (san0+san1) with TSO, one stream with offloads off; each engine."""
    cases = []
    for engine in ENGINES:
        cases.append(accuracy_case("one stream san0", engine, ["san0"], seconds, tmp))
        cases.append(accuracy_case("two streams san0+san1", engine, ["san0", "san1"], seconds, tmp))
    netns.set_offloads("san0", on=False)
    try:
        for engine in ENGINES:
            cases.append(accuracy_case("offloads off san0", engine, ["san0"], seconds, tmp))
    finally:
        netns.set_offloads("san0", on=True)
    return cases


PAIRS = 4  # unwatched/watched pairs of iperf3 runs for the default engine (each order twice)


def _throughput(seconds: float) -> float:
    return iperf(CLIENT, SERVER, streams_on(["san0"]), seconds)[0]["bps"]


def _watched_throughput(engine: str, seconds: float, out: Path) -> tuple[float, str]:
    """iperf3's throughput over san0 while ENGINE captures both links (the default one samples
    ownership too, as verify-path does); and which engine counted."""
    # Without eBPF statistics: their clock reads around every program run are the bench's
    # instrument, not a cost a verify-path run pays (it never turns them on).
    ours = Sniffer(CLIENT, engine, ["san0", "san1"], out, owners=engine == "default", bpf_stats=False)
    try:
        watched = _throughput(seconds)
    except BaseException:
        ours.kill()
        raise
    counted_by = str(ours.result()["engine"])
    shutil.rmtree(out, ignore_errors=True)
    return watched, counted_by


def overhead_case(seconds: float, tmp: Path, pairs: int = PAIRS) -> dict[str, Any]:
    """iperf3 over san0 alone, under each engine (on both links, as verify-path arms them), under tcpdump.

    The default engine (the one the target is for) in PAIRS pairs of an unwatched and a watched
    run, unwatched first in even pairs and watched first in odd ones; its ratio is the median of the
    pairs' ratios: iperf3 alone moves by 10-20 % from one 10 s run to the next on this shared
    machine, and a pair sees the same drift on both sides. The order alternates because the second
    of two back-to-back runs is slower by itself: unwatched against unwatched, 0.936-1.0, median
    0.97 (four pairs, 2026-11-27), which a fixed order charged to the capture. The ring engine and
    tcpdump, for reference, once each against the mean of the first and the last unwatched runs.
    """
    paired: list[tuple[float, float]] = []
    counted_by = ""
    for n in range(pairs):
        if n % 2 == 0:
            alone = _throughput(seconds)
            watched, counted_by = _watched_throughput("default", seconds, tmp / f"overhead-default-{n}")
        else:
            watched, counted_by = _watched_throughput("default", seconds, tmp / f"overhead-default-{n}")
            alone = _throughput(seconds)
        paired.append((alone, watched))
    under_ring, _ = _watched_throughput("ring", seconds, tmp / "overhead-ring")
    dump = Tcpdump(CLIENT, "san0", tmp / "overhead-tcpdump.pcap")
    try:
        dumped = _throughput(seconds)
    finally:
        dump.stop()
    last = _throughput(seconds)
    alone = (paired[0][0] + last) / 2
    return {
        "iperf_alone_gbit_s": alone / 1e9,
        "iperf_alone_first_last_gbit_s": [paired[0][0] / 1e9, last / 1e9],
        "iperf_default_pairs_gbit_s": [[a / 1e9, w / 1e9] for a, w in paired],
        "iperf_default_gbit_s": statistics.median(w for _a, w in paired) / 1e9,
        "iperf_ring_gbit_s": under_ring / 1e9,
        "iperf_tcpdump_gbit_s": dumped / 1e9,
        "default_engine": counted_by,
    }
