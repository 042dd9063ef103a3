"""The run chart says it at a glance: the expected link even in a failed run, each chain counted
once, capacity and cap lines, passes over memory, memory remaining, verdict and bottleneck."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import sample_diagnosed
import sample_reports as samples

from verifier import runs
from verifier.model import Coverage
from verifier.render import chart, chartdata

LAN = Path(__file__).resolve().parent.parent / "captures" / "samples" / "lan-default"


def _labels(ax: Any) -> list[str]:
    return list(ax.get_legend_handles_labels()[1])


def _texts(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_a_failed_run_still_marks_the_expected_link() -> None:
    report = samples.lan_fail()
    fig = chart.figure(report)
    ax_t, ax_b = fig.axes[0], fig.axes[1]
    assert any(label.startswith("san0") and "[expected]" in label for label in _labels(ax_t))
    ticks = [t.get_text() for t in ax_b.get_xticklabels()]
    assert any(t.startswith("san0") and "[expected]" in t for t in ticks)
    bars = {b[0].split("\n")[0]: b[2] for b in chartdata.totals(report, report.expected.interfaces)}
    assert bars["san0"] == "expected" and bars["br0"] == "path"


def test_a_bridge_and_its_port_count_once() -> None:
    report = runs.load(LAN)
    totals = chartdata.totals(report, report.expected.interfaces)
    names = [label.split("\n")[0] for label, _, _ in totals]
    assert "eth0" not in names and names[0] == "br0"
    br0 = next(r for r in report.interfaces if r.name == "br0")
    assert sum(mb for _, mb, _ in totals) == (br0.bytes_tx + br0.bytes_rx) / 1e6  # not twice
    lines = [s.name for s in chartdata.series(report, report.expected.interfaces)]
    assert "eth0" not in lines  # the port's line would lie exactly on its bridge's
    assert any(label.startswith("br0 via eth0") for label in _labels(chart.figure(report).axes[0]))


def test_an_empty_run_has_no_negative_axis() -> None:
    empty = replace(
        samples.observed(),
        interfaces=(),
        observed_interface=None,
        observed_path=(),
        coverage=Coverage(None, 0, None, False, "nothing seen"),
    )
    fig = chart.figure(empty)
    for ax in (fig.axes[0], fig.axes[1]):
        assert ax.get_ylim()[0] >= 0 and ax.get_xlim()[0] >= -0.5
    assert fig.axes[0].get_ylim()[0] == 0


def test_capacity_cap_wire_rate_iterations_and_remaining_memory() -> None:
    report = sample_diagnosed.diagnosed()
    fig = chart.figure(report)
    ax_t = fig.axes[0]
    labels = _labels(ax_t)
    assert "slowest link on the path 1000 Mbit/s" in labels
    assert "cap 168 Mbit/s (--bandwidth 20 MiB/s)" in labels
    assert "wire rate 172 Mbit/s" in labels
    assert chartdata.iterations(report.timeline) == [(6.0, 2), (9.0, 3)]
    assert " pass 2" in _texts(ax_t) and " pass 3" in _texts(ax_t)
    twin = [ax for ax in fig.axes if ax.get_ylabel() == "memory remaining (MB)"]
    assert len(twin) == 1 and twin[0].get_ylim()[0] == 0
    assert ax_t.get_xlabel() == "seconds since the job started"
    # The capture's bins moved onto the job's clock: the first busy second meets the first wire bin.
    san0 = next(s for s in chartdata.series(report, ("san0",)) if s.name == "san0")
    assert san0.xs[0] == 1.0
    title = fig._suptitle.get_text()
    assert title.startswith("PASS: vm01 from node1 to node2") and "bottleneck: cap-bound" in title


def test_link_speeds_far_above_the_stream_are_named_not_drawn() -> None:
    fig = chart.figure(runs.load(LAN))
    ax_t = fig.axes[0]
    assert "link 10000 Mbit/s: br0, san0 (above the scale)" in " ".join(_texts(ax_t))
    assert ax_t.get_ylim()[1] < 2000  # the 640 Mbit/s stream is not flattened against 10 Gbit/s
    speeds = chartdata.levels(runs.load(LAN), runs.load(LAN), chartdata.series(runs.load(LAN), ("san0",)))
    assert [lv.mbit for lv in speeds if lv.kind == "link"] == [10000.0]


def test_the_return_leg_has_its_own_panel() -> None:
    report = samples.san_pass(with_return=True)
    fig = chart.figure(report)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("return leg: PASS: the stream took san0") for t in titles)
    assert len([t for t in titles if t.startswith("bytes per interface")]) == 2
