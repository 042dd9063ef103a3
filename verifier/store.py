"""The store stage: the one place a run's record is written, run.json and its chart together.

run.json first: it is the evidence; a chart that cannot be drawn (a full disk) costs the chart,
never the record or the verdict.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from verifier import runs
from verifier.errors import NotStored
from verifier.model import Report


@dataclass(frozen=True)
class Stored:
    chart: Path | None  # where the chart was written (run dir, and a copy at --chart)
    note: str = ""  # why the chart is missing, when it is


_warming: threading.Thread | None = None


def prepare() -> None:
    """Load and warm the chart's modules (matplotlib: about 1 s of CPU) in a background thread
    while the job plans (libvirt's answers, the dirty-rate probe), so that the verdict does not
    wait for them when the migration ends; `prepared()` waits for it before the migration starts
    (its second of CPU is then not taken from the migration on a small host).
    store_run waits too (pyplot is not thread-safe); a failure there shows again, in the open,
    when the chart is drawn."""
    global _warming

    def load() -> None:
        try:
            # Not niced: a low-priority thread holding the GIL while the CPUs are busy with the
            # migration stalls the ownership sampler for seconds (seen: attribution lost).
            from verifier.render import chart

            chart.warm()
        except Exception:  # noqa: BLE001, S110 - store_run draws again and reports the error
            pass

    _warming = threading.Thread(target=load, name="chart-warm", daemon=True)
    _warming.start()


def prepared() -> None:
    """Return once prepare()'s warm-up is over (at once when none runs)."""
    if _warming is not None:
        _warming.join()


def store_run(report: Report, extra_chart: Path | None = None) -> Stored:
    """Write REPORT's run.json and chart into its run directory (and the chart to EXTRA_CHART)."""
    if not report.run_dir:
        return Stored(None)
    run_dir = Path(report.run_dir)
    try:
        runs.store(report, run_dir)
    except OSError as exc:
        raise NotStored(
            f"could not write {run_dir / 'run.json'}: {exc.strerror or exc}",
            report,
            hint="the report follows on stdout; free space or choose another --captures-dir",
        ) from None
    prepared()
    from verifier.render import chart  # matplotlib: loaded only when a run is stored

    try:
        png = chart.render(report, run_dir / "chart.png")
        if extra_chart is not None and extra_chart.suffix.lower() == ".svg":
            chart.render(report, extra_chart)  # SVG on request: drawn again, not a renamed PNG
        elif extra_chart is not None:
            shutil.copyfile(png, extra_chart)
    except OSError as exc:
        return Stored(None, f"chart not written: {exc.strerror or exc}")
    return Stored(extra_chart or png)
