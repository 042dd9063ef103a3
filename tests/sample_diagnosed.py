"""A run as the diagnosis leaves it (timeline, bottleneck, streams, cap, foreign flows), built on
sample_reports's hand-made captures: the chart, text and HTML tests draw on it."""

from __future__ import annotations

from dataclasses import replace

import sample_reports as samples
from sample_reports import MB

from verifier.model import (
    Attribution,
    Bottleneck,
    Diagnosis,
    Expectation,
    ForeignFlow,
    JobProgress,
    JobSample,
    KindCount,
    Report,
    StreamSummary,
    Timeline,
)


def diagnosed(started: float = samples.T0 + 18000) -> Report:
    """A 10 s pass run as the diagnosis leaves it: --parallel 2 (1 main + 2 multifd connections),
    --bandwidth 20 MiB/s holding the stream, three passes over memory polled every 0.5 s, the
    wire bins on the job's clock (1 s after the capture's), another program's flow on the ports."""
    report = samples._report(
        {"br0": 0, "eth0": 0, "san0": 200 * MB, "ring1": 0},
        processed=200 * MB,
        duration=10.0,
        prediction=samples.SAN_PREDICTION,
        expectation=Expectation(interfaces=("san0",)),
        started=started,
    )
    san0 = next(r for r in report.interfaces if r.name == "san0")
    wire = tuple((b.second + 1.0, b.bytes_tx + b.bytes_rx) for b in san0.bins)
    polls = []
    for tick in range(24):
        t = tick * 0.5
        iteration = 1 if t < 6 else (2 if t < 9 else 3)
        remaining = max(0, 240 * MB - int(t * 20 * MB)) if iteration == 1 else 30 * MB // iteration
        polls.append(
            JobSample(
                t,
                JobProgress(
                    data_total=256 * MB,
                    data_processed=int(t * 20 * MB),
                    data_remaining=remaining,
                    memory_bps=21_000_000.0,
                    memory_iteration=iteration,
                    memory_remaining=remaining,
                ),
            )
        )
    diagnosis = Diagnosis(
        bottleneck=Bottleneck.CAP,
        converged=True,
        iterations=3,
        downtime_ms=42,
        wire_rate_bps=172_000_000,
        link_rate_bps=1_000_000_000,
        cap_bps=20 * 1048576 * 8,
        dirty_rate_bps=None,
        evidence=("a cap of 21 MB/s (168 Mbit/s) was in effect (--bandwidth 20 MiB/s)",),
        cap_source="--bandwidth 20 MiB/s",
        transfer_rate_bps=168_000_000,
    )
    return replace(
        report,
        stream=StreamSummary(
            ((49152, 49215),),
            (),
            (49152,),
            3,
            {"qemu-main": KindCount(1, 40 * MB), "multifd": KindCount(2, 60 * MB)},
        ),
        timeline=Timeline(samples=tuple(polls), wire_bins=wire, bin_s=1.0),
        diagnosis=diagnosis,
        options={"bandwidth": 20, "parallel": 2, "via": "san0", "migrate_uri": None},
        attribution=Attribution.OWNERSHIP,
        foreign=(
            ForeignFlow(
                "198.18.0.11",
                50412,
                "198.18.0.12",
                49153,
                ("san0",),
                5 * MB,
                4 * MB,
                "unknown",
                "iperf3",
                4242,
            ),
        ),
    )
