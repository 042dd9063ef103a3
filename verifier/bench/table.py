"""Ratios, the table and the issue's targets, from the cases' raw numbers (pure functions, no I/O).

CPU per GB: ours is the capture process's CPU plus its eBPF programs' kernel run time (run_time_ns),
per GB it counted; tcpdump's is its process CPU per GB it wrote. GB are 10^9 bytes on the wire.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from verifier.bench import pooled
from verifier.bench.programs import instrument_s, ns_per_run, watch_shares

NAN = float("nan")
TSO_CASES = ("one stream san0", "two streams san0+san1")
OFFLOADS_OFF = "offloads off san0"


def _div(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b else NAN


def ours_cpu_s(case: dict[str, Any], setup: bool = True) -> float:
    """Process CPU plus eBPF run time; without SETUP, the engine's start-up cost left out."""
    cpu = float(case["ours_process_cpu_s"]) + float(case.get("ours_bpf_cpu_s") or 0.0)
    return cpu if setup else cpu - float(case.get("ours_setup_cpu_s") or 0.0)


def ratios(case: dict[str, Any]) -> dict[str, float]:
    """An accuracy case's ratios: bytes vs tcpdump, payload vs iperf3 sent, CPU per GB vs tcpdump."""
    ours_gb, theirs_gb = case["ours_bytes"] / 1e9, case["tcpdump_bytes"] / 1e9
    ours_per_gb, theirs_per_gb = _div(ours_cpu_s(case), ours_gb), _div(case["tcpdump_cpu_s"], theirs_gb)
    return {
        "bytes_vs_tcpdump": _div(case["ours_bytes"], case["tcpdump_bytes"]),
        "payload_vs_iperf": _div(case["ours_payload"], case["iperf_sent"]),
        "ours_cpu_s_per_gb": ours_per_gb,
        "tcpdump_cpu_s_per_gb": theirs_per_gb,
        "cpu_per_gb_vs_tcpdump": _div(ours_per_gb, theirs_per_gb),
        # Armed to stopped only: what counting costs per GB once running (tcpdump's figure
        # keeps its own, small, start-up).
        "cpu_per_gb_armed_vs_tcpdump": _div(_div(ours_cpu_s(case, setup=False), ours_gb), theirs_per_gb),
        # Less what the run-time statistics count of their own clock reads in each of our runs, as
        # the empty program beside ours measured it on the same frames (bench/instrument.py).
        "cpu_per_gb_less_instrument_vs_tcpdump": _div(
            _div(ours_cpu_s(case) - instrument_s(case), ours_gb), theirs_per_gb
        ),
        # Our CPU with the ownership sampler's thread / without it (both measured in this case).
        "cpu_with_owners_vs_without": _div(ours_cpu_s(case), ours_cpu_s(case) - float(case["ours_owners_cpu_s"]))
        if case.get("ours_owners_cpu_s") is not None
        else NAN,
    }


def pair_ratios(o: dict[str, Any]) -> list[float]:
    """The default engine's watched / unwatched ratio in each pair (older results: none)."""
    return [_div(w, a) for a, w in o.get("iperf_default_pairs_gbit_s", [])]


def overhead_ratios(o: dict[str, Any]) -> dict[str, float]:
    alone = o["iperf_alone_gbit_s"]
    pairs = pair_ratios(o)
    return {
        "default": statistics.median(pairs) if pairs else _div(o["iperf_default_gbit_s"], alone),
        "ring": _div(o["iperf_ring_gbit_s"], alone),
        "tcpdump": _div(o["iperf_tcpdump_gbit_s"], alone),
    }


def accuracy_table(cases: Iterable[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'case':<22} {'engine':<6} {'Gbit/s':>7} {'ours/tcpdump':>13} {'payload/iperf':>14} {'drops ours':>11} "
        f"{'drops tcpdump':>14} {'CPU/GB ours/tcpdump':>20} {'(armed)':>8} {'owners':>7}"
    ]
    for c in cases:
        r = ratios(c)
        lines.append(
            f"{c['case']:<22} {c['engine']:<6} {c['gbit_s']:>7.2f} {r['bytes_vs_tcpdump']:>13.5f} "
            f"{r['payload_vs_iperf']:>14.5f} {c['ours_drops']:>11} {c['tcpdump_drops']:>14} "
            f"{r['cpu_per_gb_vs_tcpdump']:>20.2f} {r['cpu_per_gb_armed_vs_tcpdump']:>8.2f} "
            + (f"{r['cpu_with_owners_vs_without']:>7.3f}" if c.get("ours_owners_cpu_s") is not None else f"{'-':>7}")
        )
    return lines


def overhead_lines(o: dict[str, Any]) -> list[str]:
    r = overhead_ratios(o)
    pairs = pair_ratios(o)
    how = (
        f"median of {len(pairs)} unwatched/watched pairs: {', '.join(f'{p:.3f}' for p in pairs)}"
        if pairs
        else f"{o['iperf_default_gbit_s']:.2f} / {o['iperf_alone_gbit_s']:.2f} Gbit/s"
    )
    return [
        f"iperf3 throughput with our capture / without: {r['default']:.3f} ({o['default_engine']}; {how}); "
        f"ring engine {r['ring']:.3f}; tcpdump for reference {r['tcpdump']:.3f}"
    ]


def migration_lines(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return [
            "migration duration watched / unwatched: not measured (needs --lab)",
            "time to verdict beyond the migration: not measured (needs --lab)",
        ]
    return [
        f"migration duration watched / unwatched ({m['guest_memory_mib']} MiB guest, {m['guest_data_mib']} MiB data, "
        f"san0, medians): {m['duration_ratio']:.3f} ({m['migration_watched_s']:.2f} s / {m['migration_s']:.2f} s)",
        *_job_line(m),
        f"time to verdict beyond the migration: {m['time_to_verdict_beyond_migration_s']:.2f} s",
    ]


def _job_line(m: dict[str, Any]) -> list[str]:
    plain, watched = m.get("jobs_unwatched_s"), m.get("jobs_watched_s")
    if not plain or not watched:
        return []
    a, b = statistics.median(watched), statistics.median(plain)
    return [f"libvirt's job time watched / unwatched (medians): {a / b:.3f} ({a:.2f} s / {b:.2f} s)"]


def analyze_lines(a: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    return [
        f"analyze {a['file_mb']:.0f} MB headers-only pcap ({a['frames']} frames): "
        f"{a['ours_s']:.1f} s vs tshark -z conv,tcp {a['tshark_s']:.1f} s, ratio {a['time_ratio']:.2f}"
    ]


def run_table(run: dict[str, Any]) -> str:
    """One run's table, in the format of the README's."""
    lines = accuracy_table(run["accuracy"]) + overhead_lines(run["overhead"])
    lines += migration_lines(run.get("migration")) + analyze_lines(run.get("analyze"))
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    name: str
    met: bool | None  # None: not measured in these runs
    detail: str


def _fmt(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _cases(runs: list[dict[str, Any]], names: tuple[str, ...], engine: str = "default") -> list[dict[str, Any]]:
    return [c for run in runs for c in run["accuracy"] if c["case"] in names and c["engine_asked"] == engine]


def targets(runs: list[dict[str, Any]]) -> list[Target]:
    """The issue's targets for the default engine, over every run (a target holds only if every run meets it)."""
    out = []
    tso = _cases(runs, TSO_CASES)
    tso_bytes = [ratios(c)["bytes_vs_tcpdump"] for c in tso]
    tso_drops = [c["ours_drops"] for c in tso]
    ok = bool(tso) and all(f"{b:.5f}" == "1.00000" for b in tso_bytes) and not any(tso_drops)
    out.append(
        Target(
            "bytes 1.00000 of tcpdump's, TSO, 1 and 2 streams, 0 drops",
            ok,
            f"{_fmt(tso_bytes, 5)}, drops {_fmt([float(d) for d in tso_drops], 0)}, {len(tso)} cases",
        )
    )
    off = _cases(runs, (OFFLOADS_OFF,))
    good = [c for c in off if ratios(c)["bytes_vs_tcpdump"] >= 0.999 and c["ours_drops"] == 0]
    out.append(
        Target(
            "offloads off: >= 0.999 of tcpdump's bytes, 0 drops, every run",
            bool(off) and len(good) == len(off),
            f"{len(good)} of {len(off)} runs; {_fmt([ratios(c)['bytes_vs_tcpdump'] for c in off], 5)}, "
            f"drops {_fmt([float(c['ours_drops']) for c in off], 0)}",
        )
    )
    names = (*TSO_CASES, OFFLOADS_OFF)
    cpu = {name: [ratios(c)["cpu_per_gb_vs_tcpdump"] for c in _cases(runs, (name,))] for name in names}
    armed = {name: [ratios(c)["cpu_per_gb_armed_vs_tcpdump"] for c in _cases(runs, (name,))] for name in names}
    every = [v for vs in cpu.values() for v in vs]
    out.append(
        Target(
            "CPU per GB <= 1.0x tcpdump's (process + eBPF run time, start-up included)",
            bool(every) and all(v <= 1.0 for v in every),
            "; ".join(f"{k} {_fmt(v, 2)}x (armed only {_fmt(armed[k], 2)}x)" for k, v in cpu.items())
            + _instrument_text(runs, names),
        )
    )
    out.append(_owners_target(runs, names))
    thr = [overhead_ratios(run["overhead"])["default"] for run in runs if run.get("overhead")]
    pairs = [r for run in runs if run.get("overhead") for r in pair_ratios(run["overhead"])]
    detail = _fmt(thr, 3) + (f"; pooled, median of {len(pairs)} pairs: {statistics.median(pairs):.3f}" if pairs else "")
    # A sender bound by its CPU loses at most the CPU we take: our CPU per second of iperf3 in the
    # one-stream case (its eBPF run time measured with the statistics' clock reads, so an upper bound).
    one = [c for c in _cases(runs, (TSO_CASES[0],)) if c.get("seconds")]
    if taken := [ours_cpu_s(c, setup=False) / float(c["seconds"]) for c in one]:
        detail += f"; our CPU while counting one stream: {_fmt([100 * t for t in taken], 1)} % of a CPU"
    met = bool(thr) and all(t >= 0.97 for t in thr)
    out.append(Target("iperf3 throughput with capture / without >= 0.97", met, detail))
    mig = [run["migration"] for run in runs if run.get("migration")]
    dur = [m["duration_ratio"] for m in mig]
    ttv = [m["time_to_verdict_beyond_migration_s"] for m in mig]
    plain = [t for m in mig for t in m.get("migrations_unwatched_s", ())]
    watched = [t for m in mig for t in m.get("migrations_watched_s", ())]
    extra = ""
    if plain and watched:
        extra = f"; pooled ({len(plain)} + {len(watched)}): {pooled.ratio_text(plain, watched)}"
        per_run = len(mig[0].get("migrations_unwatched_s", ()))
        noise = pooled.null_range(plain, per_run)
        if noise:
            extra += f"; unwatched against unwatched, medians of {per_run}: {noise[0]:.2f}-{noise[1]:.2f} (95 %)"
    jobs_plain = [t for m in mig for t in m.get("jobs_unwatched_s", ())]
    jobs_watched = [t for m in mig for t in m.get("jobs_watched_s", ())]
    if jobs_plain and jobs_watched:
        extra += f"; libvirt's job time alone: {pooled.pooled_text(jobs_plain, jobs_watched)}"
    if shares := [100 * s for run in runs for s in watch_shares(run)]:
        extra += f"; watching's own CPU during each watched migration: at most {_fmt(shares, 1)} % of its time"
    out.append(
        Target(
            "migration duration watched / unwatched <= 1.03 (1 GiB guest, san0)",
            (all(d <= 1.03 for d in dur)) if dur else None,
            _fmt(dur, 3) + extra if dur else "not run (--lab)",
        )
    )
    out.append(
        Target(
            "time to verdict beyond the migration <= 1 s",
            (all(t <= 1.0 for t in ttv)) if ttv else None,
            f"{_fmt(ttv, 2)} s" if ttv else "not run (--lab)",
        )
    )
    return out


def _instrument_text(runs: list[dict[str, Any]], names: tuple[str, ...]) -> str:
    """The empty program's run time per run beside ours, and the CPU ratios less it per case (cases
    that measured it; older results did not)."""
    measured = [c for c in _cases(runs, names) if c.get("instrument_bpf_runs")]
    if not measured:
        return ""
    empty = _fmt([ns_per_run(c, "instrument") for c in measured], 0)
    ours = _fmt([ns_per_run(c) for c in measured], 0)
    less = {
        name: [ratios(c)["cpu_per_gb_less_instrument_vs_tcpdump"] for c in measured if c["case"] == name]
        for name in names
    }
    return (
        f"; an empty program beside ours, on the same frames: {empty} ns per run against our {ours};"
        " our CPU per GB less that (the statistics' clock reads and the call): "
        + "; ".join(f"{name} {_fmt(v, 2)}x" for name, v in less.items() if v)
    )


def _owners_target(runs: list[dict[str, Any]], names: tuple[str, ...]) -> Target:
    """Issue 11: ownership sampling adds no measurable CPU to the bench's figures. Measurable means
    more than the figures' own noise: the sampler's CPU in a case against the spread (largest minus
    smallest) of our CPU in that case between runs, the same capture on the same traffic. The
    ratio, our CPU with the sampler's thread / without it, is reported beside."""
    owned = [c for c in _cases(runs, names) if c.get("ours_owners_cpu_s") is not None]
    if not owned:
        return Target("ownership sampling adds no measurable CPU (issue 11)", None, "not measured")
    checks, spreads = [], []
    for name in names:
        cases = [c for c in owned if c["case"] == name]
        if len(cases) >= 2:
            cpu = [ours_cpu_s(c) for c in cases]
            spreads.append((max(cpu) - min(cpu)) * 1000)
            checks += [float(c["ours_owners_cpu_s"]) * 1000 < spreads[-1] for c in cases]
    with_owners = [ratios(c)["cpu_with_owners_vs_without"] for c in owned]
    return Target(
        "ownership sampling adds no measurable CPU (issue 11): its CPU per case < the spread of our CPU"
        " in that case between runs",
        all(checks) if checks else None,
        f"{_fmt([float(c['ours_owners_cpu_s']) * 1000 for c in owned], 1)} ms per case against spreads of "
        f"{_fmt(spreads, 0)} ms; with / without {_fmt(with_owners, 3)} over {len(owned)} cases"
        + ("" if checks else " (one run: the spread needs two or more)"),
    )


def targets_text(runs: list[dict[str, Any]]) -> str:
    words = {True: "met", False: "NOT MET", None: "not measured"}
    return "\n".join(f"- {t.name}: {words[t.met]} ({t.detail})" for t in targets(runs))
