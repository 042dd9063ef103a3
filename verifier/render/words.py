"""The phrases every format shares: the headline, the throughput figures, streams, cap, diagnosis.

Plain text; Markdown and HTML escape it. One wording per fact, so the terminal, a ticket and the
HTML page say the same thing with the same numbers (verifier.figures computes those).
"""

from __future__ import annotations

from verifier.diagnose.units import MIB, bytes_rate
from verifier.figures import Figures, Run, figures
from verifier.model import Expectation, Leg, Report

VERDICT_WORDS = {
    "pass": "PASS",
    "fail": "FAIL",
    "inconclusive": "INCONCLUSIVE",
    "observed": "OBSERVED",
}

BOTTLENECK_WORDS = {
    "not-converging": "the guest dirtied memory about as fast as it was sent",
    "cap-bound": "a bandwidth limit held the stream",
    "link-bound": "the slowest link on the path was full",
    "sender-bound": "neither the link nor a cap: the sending side set the pace",
}

# How `StreamSummary.kinds` reads: the main stream first, then what --parallel added.
KIND_WORDS = {
    "qemu-main": "main",
    "multifd": "multifd",
    "nbd": "NBD (disks)",
    "tls": "TLS",
    "libvirtd-tunnel": "libvirtd tunnel",
    "ssh-tunnel": "SSH tunnel",
    "unknown": "unclassified",
}

# What `analyze` labels a run with when --vm/--dest were not given (verifier/analyze.py).
ANALYZE_VM, ANALYZE_DEST = "analyze", "pcap"


def word(verdict: str) -> str:
    return VERDICT_WORDS.get(verdict, verdict.upper())


def path_text(path: tuple[str, ...]) -> str:
    return " -> ".join(path) if path else "nothing seen"


def known_labels(report: Report) -> list[tuple[str, str]]:
    """(label, value) for the VM and the two ends where they are known: no empty watch labels,
    no analyze placeholders."""
    vm, dest, source = report.vm, report.destination, report.source
    if report.mode == "analyze":
        vm = "" if vm == ANALYZE_VM else vm
        dest = "" if dest == ANALYZE_DEST else dest
        source = "pcap files"
    pairs = [("VM", vm), ("source", source), ("destination", dest)]
    return [(k, v) for k, v in pairs if v]


def subject(report: Report) -> str:
    """What the run is about, from what is known: watch runs may have no VM or destination,
    analyze runs carry placeholder labels that are not names."""
    vm, dest = report.vm, report.destination
    if report.mode == "analyze":
        vm = "" if vm == ANALYZE_VM else vm
        dest = "" if dest == ANALYZE_DEST else dest
    moving = " ".join(p for p in (vm or ("a migration" if dest else ""), f"to {dest}" if dest else "") if p)
    if report.mode == "analyze":
        return f"pcap files ({moving})" if moving else "pcap files"
    if report.mode == "watch":
        where = f"watch on {report.source}" if report.source else "watch"
        return f"{where} ({moving})" if moving else where
    source = f" from {report.source}" if report.source else ""
    return f"{vm or 'a migration'}{source} to {dest}" if dest else f"{vm or 'a migration'}{source}"


def stream_phrase(path: tuple[str, ...]) -> str:
    return f"the stream took {path_text(path)}" if path else "no migration stream seen"


def expected_text(expected: Expectation) -> str:
    return ", ".join(expected.interfaces + expected.networks)


def share_phrase(share: float | None, expected: Expectation) -> str:
    if not expected.given:
        return ""
    if share is None:
        return f"; not checked against expected {expected_text(expected)}"
    return f"; {share:.1%} on expected {expected_text(expected)}"


def headline(report: Report) -> str:
    """FAIL: vm01 from node1 to node2: the stream took br0 -> eth0; 0.0% on expected san0."""
    return f"{word(report.verdict)}: {subject(report)}: {stream_phrase(report.observed_path)}" + share_phrase(
        report.expected_share, report.expected
    )


def leg_headline(leg: Leg, expected: Expectation) -> str:
    """The return leg checked against the same --expect: PASS: the stream took san0; 100.0% ..."""
    return f"{word(leg.verdict)}: {stream_phrase(leg.observed_path)}" + share_phrase(leg.expected_share, expected)


def mbit(bps: float) -> str:
    return f"{bps / 1e6:.0f} Mbit/s"


def figure_lines(fig: Figures) -> list[str]:
    """The throughput figures, each saying what it is: wire rate, job duration, libvirt's rate."""
    lines = []
    if fig.wire_rate_bps is not None:
        rate = f"{mbit(fig.wire_rate_bps)} ({bytes_rate(fig.wire_rate_bps / 8)}) on {fig.wire_interface}"
        if fig.wire_rate_lower_bound:
            lines.append(
                f"wire rate: at least {rate}: the stream flowed within {fig.wire_flow_s:g} s of "
                f"{fig.bin_s:g} s bins, too few for an exact rate"
            )
        else:
            lines.append(f"wire rate: {rate} while the stream flowed ({fig.wire_flow_s:g} s)")
    else:
        lines.append("wire rate: unknown (no capture bins carried the stream)")
    job = []
    if fig.job_duration_s:
        job.append(f"{fig.job_duration_s:.1f} s from start to end (QEMU start-up included)")
    if fig.data_processed_bytes is not None:
        job.append(f"data_processed {fig.data_processed_bytes / 1e6:.1f} MB")
    if job:
        lines.append("job: " + ", ".join(job))
    if fig.libvirt_memory_bytes_per_s:
        basis = "the highest it reported" if fig.libvirt_memory_rate_basis == "peak" else "median while it ran"
        lines.append(
            f"libvirt memory_bps: {bytes_rate(fig.libvirt_memory_bytes_per_s)} "
            f"({mbit(fig.libvirt_memory_bytes_per_s * 8)}), {basis}"
        )
    return lines


def run_figure_lines(run: Run) -> list[str]:
    return figure_lines(figures(run))


def streams_text(report: Report) -> str | None:
    """ "3 connections: 1 main + 2 multifd (--parallel 2)"; None when nothing was classified."""
    kinds = report.stream.kinds
    if not kinds:
        return None
    order = [k for k in KIND_WORDS if k in kinds] + sorted(k for k in kinds if k not in KIND_WORDS)
    parts = " + ".join(f"{kinds[k].connections} {KIND_WORDS.get(k, k)}" for k in order)
    total = sum(c.connections for c in kinds.values())
    parallel = report.options.get("parallel")
    asked = f" (--parallel {parallel})" if parallel else ""
    return f"{total} connection{'s' if total != 1 else ''}: {parts}{asked}"


def cap_text(report: Report) -> str | None:
    """The bandwidth limit the migration ran under, and where it was set; None without one."""
    d = report.diagnosis
    if d is not None and d.cap_bps:
        held = ", and it held the stream" if d.bottleneck == "cap-bound" else ""
        return f"{mbit(d.cap_bps)} ({d.cap_source or 'source unknown'}){held}"
    bandwidth = report.options.get("bandwidth")
    if bandwidth:
        return f"{mbit(float(bandwidth) * MIB * 8)} (--bandwidth {bandwidth} MiB/s)"
    return None


def diagnosis_lines(report: Report) -> list[str]:
    """The bottleneck class and its evidence; empty for runs made before the diagnosis."""
    d = report.diagnosis
    if d is None:
        return []
    lines = [f"bottleneck: {d.bottleneck}: {BOTTLENECK_WORDS.get(d.bottleneck, '')}".rstrip(": ")]
    lines += list(d.evidence)
    return lines
