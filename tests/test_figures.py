"""One throughput figure that means one thing: the wire rate, the job duration, libvirt's rate,
computed once (verifier.figures) and shown with the same numbers in text, JSON, chart and compare."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import sample_diagnosed
import sample_reports as samples

from verifier import figures, runs
from verifier.diagnose.classify import wire_rate
from verifier.model import JobProgress, Timeline
from verifier.render import chart, formats, progress, text
from verifier.render.formats import Format

REPO = Path(__file__).resolve().parent.parent
LAN = REPO / "captures" / "samples" / "lan-default"
SAN = REPO / "captures" / "samples" / "via-san0"


def test_the_wire_rate_is_the_diagnosis_definition_on_the_observed_l3_interface() -> None:
    report = runs.load(LAN)
    fig = figures.figures(report)
    br0 = next(r for r in report.interfaces if r.name == "br0")
    expected, flowed = wire_rate(
        Timeline(wire_bins=tuple((float(b.second), b.bytes_tx + b.bytes_rx) for b in br0.bins))
    )
    assert (fig.wire_rate_bps, fig.wire_flow_s) == (expected, flowed)
    assert fig.wire_interface == "br0" and fig.wire_source == "capture bins"
    # Two bins: the edges cannot be left out, so the rate is a lower bound, and says so.
    assert fig.wire_rate_lower_bound and not fig.wire_rate_exact
    assert fig.job_duration_s == report.migration.duration_s
    # peak_bps is libvirt's bytes/s: kept as bytes/s under a name that says so.
    assert fig.libvirt_memory_bytes_per_s == report.migration.peak_bps
    assert fig.libvirt_memory_rate_basis == "peak"


def test_a_run_with_a_timeline_uses_its_wire_bins_and_the_diagnosis_rate() -> None:
    report = sample_diagnosed.diagnosed()
    fig = figures.figures(report)
    assert fig.wire_source == "timeline"
    assert fig.wire_rate_bps == wire_rate(report.timeline or Timeline())[0]
    assert fig.wire_rate_exact and fig.wire_flow_s == 10.0
    assert fig.libvirt_memory_bytes_per_s == 168_000_000 / 8


def test_the_text_header_no_longer_divides_the_whole_job() -> None:
    report = runs.load(LAN)
    out = text.render(report, 120)
    m = report.migration
    assert m.data_processed and m.duration_s
    old = f"{m.data_processed / m.duration_s * 8 / 1e6:.0f} Mbit/s"  # 312: QEMU's start-up counted in
    assert old not in out
    fig = figures.figures(report)
    assert f"wire rate: at least {(fig.wire_rate_bps or 0) / 1e6:.0f} Mbit/s" in out
    assert "job: 2.6 s from start to end (QEMU start-up included)" in out
    assert "libvirt memory_bps: 142 MB/s (1134 Mbit/s)" in out


@pytest.mark.parametrize("run_dir", [LAN, SAN], ids=["lan-default", "via-san0"])
def test_json_has_the_same_figures_with_units_in_their_names(run_dir: Path) -> None:
    report = runs.load(run_dir)
    data = json.loads(formats.render(report, Format.JSON, run_dir))
    assert data["figures"] == figures.figures(report).to_dict()
    assert set(data["figures"]) >= {"wire_rate_bps", "job_duration_s", "libvirt_memory_bytes_per_s"}
    assert report.return_leg is not None
    assert data["return_leg"]["figures"] == figures.figures(report.return_leg).to_dict()


def test_the_cli_json_is_the_report_json() -> None:
    from verifier.cli.output import report_json

    report = runs.load(SAN)
    assert report_json(report) == formats.render(report, Format.JSON, None)


def test_the_chart_shows_the_text_report_wire_rate() -> None:
    report = sample_diagnosed.diagnosed()
    fig = chart.figure(report)
    rate = f"{(figures.figures(report).wire_rate_bps or 0) / 1e6:.0f} Mbit/s"
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert f"wire rate {rate}" in labels
    assert rate in fig._suptitle.get_text()
    assert f"wire rate: {rate}" in text.render(report)


def test_progress_shows_a_share_of_what_will_be_sent_and_the_last_rate_when_done() -> None:
    running = JobProgress(data_total=268 * 10**6, data_processed=50 * 10**6, data_remaining=50 * 10**6, memory_bps=1e8)
    assert figures.sent_fraction(running) == 0.5  # (total - remaining) / total said 81 %
    assert progress.line(running, 0.0, True) == "migrating  50.0% (50.0 MB sent, 800 Mbit/s)"
    done = JobProgress(data_total=268 * 10**6, data_processed=102 * 10**6, data_remaining=0, memory_bps=0.0)
    line = progress.line(done, 1e8, True)
    assert "0 Mbit/s" not in line.replace("800 Mbit/s", "")
    assert line == "sent 102.0 MB, 100% (last rate 800 Mbit/s)"
    assert progress.line(JobProgress(), 0.0, False) == "preparing the destination"


def test_the_progress_printer_keeps_the_rate_seen_while_running() -> None:
    import io

    out = io.StringIO()
    printer = progress.ProgressPrinter(out, interval=0.0)
    printer(JobProgress(data_total=100, data_processed=40, data_remaining=60, memory_bps=125_000_000.0))
    printer(JobProgress(data_total=100, data_processed=100, data_remaining=0, memory_bps=0.0))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("40.0% (40 B sent, 1000 Mbit/s)")
    assert lines[1].endswith("(last rate 1000 Mbit/s)")


def test_a_leg_has_figures_of_its_own() -> None:
    report = samples.san_pass(with_return=True, duration=5.0)
    assert report.return_leg is not None
    back = figures.figures(report.return_leg)
    assert back.wire_rate_exact and back.wire_interface == "san0"
    assert back.job_duration_s == 5.0
    # Without an observed path the observed interface stands in for the L3 interface.
    assert figures.figures(replace(report.return_leg, observed_path=())).wire_interface == "san0"
