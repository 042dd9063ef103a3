"""Watched against unwatched over every run's samples pooled, and what the lab's noise alone gives.

A bench run has 10 migrations a side and 4 iperf3 pairs; one run's ratio moves by more than the
targets' margins (the lab's migrations vary by 13-15 %, iperf3 by 5-9 % from run to run), so the
table also reports the ratios of all runs' samples together, beside the range that unwatched
samples drawn against each other give.
"""

from __future__ import annotations

import random
import statistics


def ratio_text(plain: list[float], watched: list[float]) -> str:
    """Watched over unwatched, pooled: the medians' and the means' ratios."""
    medians = statistics.median(watched) / statistics.median(plain)
    return f"medians {medians:.3f}, means {statistics.mean(watched) / statistics.mean(plain):.3f}"


def pooled_text(plain: list[float], watched: list[float]) -> str:
    """Watched over unwatched, pooled: medians, means, and the null range of medians of half as many."""
    text = f"{ratio_text(plain, watched)} ({len(plain)} + {len(watched)})"
    half = len(plain) // 2
    noise = null_range(plain, half)
    return text + (f", unwatched against unwatched, medians of {half}: {noise[0]:.2f}-{noise[1]:.2f}" if noise else "")


def null_range(samples: list[float], n: int, draws: int = 4000, seed: int = 0) -> tuple[float, float] | None:
    """What the duration ratio shows with no watcher at all: the median of N samples over the
    median of N others, both drawn from SAMPLES (the unwatched migrations), without overlap; the
    2.5th and 97.5th percentiles of DRAWS such ratios. A watched/unwatched ratio inside it cannot
    be told from the lab's own noise. None below 2N samples."""
    if n < 1 or len(samples) < 2 * n:
        return None
    rng = random.Random(seed)  # the same samples give the same range
    ratios_ = sorted(
        statistics.median(d[:n]) / statistics.median(d[n:]) for d in (rng.sample(samples, 2 * n) for _ in range(draws))
    )
    return ratios_[int(0.025 * draws)], ratios_[int(0.975 * draws) - 1]
