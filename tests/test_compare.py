"""Comparing two runs: path change, leaving or reaching the expected link, slowdown, the chart."""

from __future__ import annotations

from pathlib import Path

import pytest
import sample_reports as samples

from verifier import compare, runs
from verifier.render import chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_san_then_lan_moved_away_from_the_expected_link() -> None:
    c = compare.compare(samples.san_pass(), samples.lan_fail(), max_slowdown_pct=None)
    assert c.path_changed and c.path_a == ("san0",) and c.path_b == ("br0", "eth0")
    assert c.moved_away_from_expected and not c.moved_onto_expected
    assert c.exit_code == 1
    assert [f.code for f in c.findings_added] == ["wrong-path"] and c.findings_removed == ()
    text = compare.render_text(c)
    assert text.splitlines()[0] == "path changed: san0 => br0 -> eth0"
    assert "moved AWAY from the expected link (san0)" in text and "exit code 1" in text


def test_lan_then_san_improved() -> None:
    c = compare.compare(samples.lan_fail(), samples.san_pass(), max_slowdown_pct=10)
    assert c.path_changed and c.moved_onto_expected and not c.moved_away_from_expected
    assert c.exit_code == 0
    assert [f.code for f in c.findings_removed] == ["wrong-path"]
    # 100 MB in 4 s, then in 2 s: twice as fast
    assert c.throughput_a == 25_000_000 and c.throughput_b == 50_000_000
    assert c.throughput_change_pct == pytest.approx(100.0)
    assert not c.slowed_down
    text = compare.render_text(c)
    assert text.startswith("path changed: br0 -> eth0 => san0\nmoved onto the expected link (san0)")
    assert "200 Mbit/s" in text and "400 Mbit/s" in text and "+100.0%" in text


def test_losing_the_link_to_an_unexpected_run_still_counts_as_moving_away() -> None:
    # B had no --expect (verdict observed) but left A's expected san0
    lan_observed = samples.lan_fail()
    from dataclasses import replace

    from verifier.model import Expectation

    b = replace(lan_observed, verdict="observed", expected=Expectation(), expected_share=None)
    c = compare.compare(samples.san_pass(), b, None)
    assert c.moved_away_from_expected and c.exit_code == 1


def test_same_path_and_speed_is_unchanged_and_exit_0() -> None:
    a = samples.san_pass()
    c = compare.compare(a, a, max_slowdown_pct=5)
    assert not c.path_changed and not c.moved_away_from_expected and c.exit_code == 0
    assert c.throughput_change_pct == 0.0
    assert compare.render_text(c).splitlines()[0] == "path unchanged: san0"
    assert all(r.bytes_a == r.bytes_b and r.share_a == r.share_b for r in c.interfaces)


def test_a_slowdown_over_the_limit_exits_1() -> None:
    fast = samples.san_pass(duration=2.0)
    slow = samples.san_pass(duration=2.5, started=samples.T0 + 9000)  # 20% less throughput
    over = compare.compare(fast, slow, max_slowdown_pct=10)
    assert over.throughput_change_pct == pytest.approx(-20.0)
    assert over.slowed_down and not over.path_changed and over.exit_code == 1
    assert "slower by 20.0%, more than the 10% allowed" in compare.render_text(over)
    within = compare.compare(fast, slow, max_slowdown_pct=25)
    assert not within.slowed_down and within.exit_code == 0
    assert compare.compare(fast, slow, max_slowdown_pct=None).exit_code == 0


def test_interface_rows_cover_both_runs() -> None:
    a = samples.lan_fail()
    b = samples.san_pass(with_return=True)
    from dataclasses import replace

    b = replace(b, interfaces=b.interfaces[2:3])  # only san0 watched in B
    c = compare.compare(a, b, None)
    rows = {r.name: r for r in c.interfaces}
    assert list(rows) == ["br0", "eth0", "san0", "ring1"]
    assert rows["br0"].bytes_b is None and rows["br0"].share_a == 1.0
    assert rows["san0"].bytes_b == 107_500_000 and rows["san0"].share_b == 1.0
    assert "  br0 " in compare.render_text(c)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_compare_chart_is_written(tmp_path: Path, suffix: str) -> None:
    a = runs.load(samples.stored(samples.lan_fail(), tmp_path / "a"))
    b = runs.load(samples.stored(samples.san_pass(), tmp_path / "b"))
    out = chart.render_compare(a, b, tmp_path / f"compare{suffix}")
    assert out == tmp_path / f"compare{suffix}"
    data = out.read_bytes()
    assert data
    assert out.stat().st_mode & 0o777 == 0o600
    if suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        assert b"<svg" in data and b"vm01: node1 -&gt; node2" in data


def test_compare_chart_of_runs_without_traffic(tmp_path: Path) -> None:
    from dataclasses import replace

    empty = replace(samples.observed(), interfaces=(), observed_interface=None, observed_path=())
    out = chart.render_compare(empty, samples.san_pass(), tmp_path / "c.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_the_run_chart_honours_the_suffix(tmp_path: Path, suffix: str) -> None:
    out = chart.render(samples.lan_fail(), tmp_path / f"chart{suffix}")
    assert out == tmp_path / f"chart{suffix}"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) if suffix == ".png" else b"<svg" in data
    assert out.stat().st_mode & 0o777 == 0o600
