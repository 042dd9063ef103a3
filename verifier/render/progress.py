"""Progress while a migration runs: percent from job statistics and current throughput, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from verifier.model import JobProgress
from verifier.render.units import human_bytes, mbit


class ProgressPrinter:
    """A rich bar on a terminal; one plain line every few seconds otherwise (logs, CI)."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 2.0) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self._started = False
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
                console=Console(file=stream),
                transient=True,
            )

    def __call__(self, job: JobProgress) -> None:
        total = job.data_total
        processed = job.data_processed
        pct = job.percent
        self._started = self._started or job.started
        rate = mbit(job.memory_bps)
        if self._bar is not None:
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task("migrate", total=100, rate=rate)
            self._bar.update(self._task, completed=pct, rate=rate)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            if not total and not self._started:
                # libvirt's begin/prepare phase: the destination QEMU is starting, nothing sent yet.
                msg = "preparing the destination"
            elif not total:
                msg = "the job has ended, collecting its results"
            else:
                msg = f"migrating {pct:5.1f}% ({human_bytes(processed)} sent, {rate})"
            print(f"verify-path: {msg}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.stop()
            self._task = None

    def log(self, message: str) -> None:
        print(f"verify-path: {message}", file=self.stream, flush=True)
