"""Progress while a migration runs, on stderr: how much of what will be sent is sent, and the rate.

The percentage is verifier.figures.sent_fraction (data_processed against processed + remaining:
what will actually be sent, not the guest's whole RAM). The rate is libvirt's memory_bps (bytes/s)
shown in Mbit/s; the completed job's statistics report 0 there, so the last rate seen while the
job ran is kept rather than printing "0 Mbit/s" for a migration that has just finished.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from verifier.figures import sent_fraction
from verifier.model import JobProgress
from verifier.render.units import human_bytes


def rate_text(memory_bps: float) -> str:
    """libvirt's memory_bps (bytes/s) in Mbit/s."""
    return f"{memory_bps * 8 / 1e6:.0f} Mbit/s"


def line(job: JobProgress, last_bps: float, started: bool) -> str:
    """One progress line; LAST_BPS is the last non-zero memory_bps (0 when none was seen yet)."""
    fraction = sent_fraction(job)
    if fraction is None:
        # libvirt's begin/prepare phase: the destination QEMU is starting, nothing sent yet.
        return "the job has ended, collecting its results" if started else "preparing the destination"
    rate = job.memory_bps or last_bps
    speed = f", {rate_text(rate)}" if rate else ""
    if job.data_remaining == 0 and job.data_processed:
        return f"sent {human_bytes(job.data_processed)}, 100%" + (f" (last rate {rate_text(rate)})" if rate else "")
    return f"migrating {100 * fraction:5.1f}% ({human_bytes(job.data_processed)} sent{speed}){convergence(job)}"


def convergence(job: JobProgress) -> str:
    """Whether it is converging, in the line itself: pass, memory still to send, dirty rate,
    expected downtime, auto-converge throttle (what the diagnosis later judges)."""
    parts = []
    if job.memory_iteration:
        parts.append(f"pass {job.memory_iteration}")
    if job.memory_remaining:
        parts.append(f"{human_bytes(job.memory_remaining)} of memory left")
    if job.memory_dirty_rate:
        dirty = job.memory_dirty_rate * (job.memory_page_size or 4096)
        parts.append(f"dirtied {human_bytes(dirty)}/s")
    if job.downtime_ms:
        parts.append(f"expected downtime {job.downtime_ms} ms")
    if job.auto_converge_throttle:
        parts.append(f"throttled {job.auto_converge_throttle} %")
    return "; " + ", ".join(parts) if parts else ""


class ProgressPrinter:
    """A rich bar on a terminal; one plain line every few seconds otherwise (logs, CI)."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 2.0) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self._started = False
        self._last_bps = 0.0
        self._bar: Any = None
        self._task: Any = None
        if stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("migrating"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[detail]}"),
                console=Console(file=stream),
                transient=True,
            )

    def __call__(self, job: JobProgress) -> None:
        self._started = self._started or job.started
        if job.memory_bps > 0:
            self._last_bps = job.memory_bps
        fraction = sent_fraction(job)
        if self._bar is not None:
            rate = rate_text(job.memory_bps or self._last_bps)
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task("migrate", total=100, rate=rate, detail="")
            detail = convergence(job).removeprefix("; ")
            self._bar.update(self._task, completed=100 * (fraction or 0.0), rate=rate, detail=detail)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(f"verify-path: {line(job, self._last_bps, self._started)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.stop()
            self._task = None

    def log(self, message: str) -> None:
        print(f"verify-path: {message}", file=self.stream, flush=True)
