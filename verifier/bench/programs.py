"""What our eBPF programs cost per run, as the bench's cases measured it (kernel run-time statistics),
and what those statistics count of themselves (the empty program beside ours, bench/instrument.py).
Pure functions on the cases' raw numbers, for table.py."""

from __future__ import annotations

from typing import Any

NAN = float("nan")


def ns_per_run(case: dict[str, Any], who: str = "ours") -> float:
    """Our programs' (or the empty program's, WHO="instrument") mean run time, ns; NaN if unmeasured."""
    runs = case.get(f"{who}_bpf_runs")
    return float(case.get(f"{who}_bpf_cpu_s") or 0.0) * 1e9 / runs if runs else NAN


def instrument_s(case: dict[str, Any]) -> float:
    """The empty program's run time per run times our programs' runs: what our eBPF figure holds
    of the statistics' own clock reads; NaN where the case did not measure it."""
    return ns_per_run(case, "instrument") * float(case.get("ours_bpf_runs") or 0) / 1e9


def watch_shares(run: dict[str, Any]) -> list[float]:
    """Each watched migration's bound on what watching took from it, over its wall time: the watch
    process's CPU, plus one eBPF run per frame on the node's interfaces at the slowest run time of
    this bench run's cases (which includes the statistics' own clock reads)."""
    m = run.get("migration") or {}
    per_run = [ns_per_run(c) / 1e9 for c in run["accuracy"] if c.get("ours_bpf_runs")]
    if not per_run or not m.get("watch_cpu_s"):
        return []
    runs = zip(m["watch_cpu_s"], m["watch_frames"], m["migrations_watched_s"], strict=True)
    return [(cpu + frames * max(per_run)) / took for cpu, frames, took in runs]
