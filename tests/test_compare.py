"""Comparing two runs: path change, leaving or reaching the expected link, slowdown, the chart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sample_reports as samples

from verifier import compare, runs
from verifier.render import chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLES = Path(__file__).resolve().parent.parent / "captures" / "samples"


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
    # 100 MB in 8 s, then in 4 s: twice the wire rate (long enough for exact rates)
    c = compare.compare(samples.lan_fail(duration=8.0), samples.san_pass(duration=4.0), max_slowdown_pct=10)
    assert c.path_changed and c.moved_onto_expected and not c.moved_away_from_expected
    assert c.exit_code == 0
    assert [f.code for f in c.findings_removed] == ["wrong-path"]
    assert c.wire_rate_a_bps == 107_625_000 and c.wire_rate_b_bps == 215_250_000  # frames, both ways
    assert c.wire_rate_change_pct == pytest.approx(100.0)
    assert c.rate_comparable and not c.slowed_down
    text = compare.render_text(c)
    assert text.startswith("path changed: br0 -> eth0 => san0\nmoved onto the expected link (san0)")
    assert "108 Mbit/s" in text and "215 Mbit/s" in text and "+100.0%" in text
    assert "job duration" in text


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
    assert c.wire_rate_change_pct == 0.0
    assert compare.render_text(c).splitlines()[0] == "path unchanged: san0"
    assert all(r.bytes_a == r.bytes_b and r.share_a == r.share_b for r in c.interfaces)


def test_identical_streams_with_a_slower_start_up_are_not_a_slowdown() -> None:
    # The same stream; QEMU took 2 s longer to start on the destination. data_processed over the
    # job's duration called that 17 % slower; the wire rate sees the same stream.
    a = samples.san_pass(duration=10.0)
    b = replace(a, started_at=a.started_at + 60, migration=replace(a.migration, duration_s=12.0))
    c = compare.compare(a, b, max_slowdown_pct=10)
    assert c.wire_rate_change_pct == 0.0 and not c.slowed_down and c.exit_code == 0
    assert c.job_duration_a_s == 10.0 and c.job_duration_b_s == 12.0


def test_a_slowdown_over_the_limit_exits_1() -> None:
    fast = samples.san_pass(duration=10.0)
    slow = samples.san_pass(duration=12.5, started=samples.T0 + 9000)  # 20% lower wire rate
    over = compare.compare(fast, slow, max_slowdown_pct=10)
    assert over.wire_rate_change_pct == pytest.approx(-20.0, abs=0.01)
    assert over.slowed_down and not over.path_changed and over.exit_code == 1
    assert "slower by 20.0% (wire rate), more than the 10% allowed" in compare.render_text(over)
    within = compare.compare(fast, slow, max_slowdown_pct=25)
    assert not within.slowed_down and within.exit_code == 0
    assert compare.compare(fast, slow, max_slowdown_pct=None).exit_code == 0


def test_a_bandwidth_cap_in_one_run_is_not_a_slowdown() -> None:
    fast = samples.san_pass(duration=4.0)
    capped = replace(samples.san_pass(duration=12.0, started=samples.T0 + 9000), options={"bandwidth": 20})
    c = compare.compare(fast, capped, max_slowdown_pct=10)
    assert (c.wire_rate_change_pct or 0) < -60  # the old report: "slower by 65 %"
    assert not c.slowed_down and c.exit_code == 0 and not c.rate_comparable
    assert c.options_changed == ("bandwidth: none => 20",)
    text = compare.render_text(c)
    assert "slower by" not in text
    assert "different options (bandwidth: none => 20): not a slowdown" in text


@pytest.mark.parametrize("key", ["via", "parallel", "migrate_uri"])
def test_other_rate_options_are_named_too(key: str) -> None:
    a = samples.san_pass(duration=4.0)
    b = replace(samples.san_pass(duration=8.0), options={key: "x"})
    c = compare.compare(a, b, max_slowdown_pct=10)
    assert c.options_changed == (f"{key}: none => x",) and not c.slowed_down


def test_streams_too_short_for_an_exact_rate_are_not_judged() -> None:
    a = runs.load(SAMPLES / "via-san0")  # one busy bin: a lower bound
    slow = samples.san_pass(duration=5.0)
    c = compare.compare(a, slow, max_slowdown_pct=10)
    assert (c.wire_rate_change_pct or 0) < -10 and not c.slowed_down and c.exit_code == 0
    assert "A's stream flowed within fewer than 3 bins of 1 s" in compare.render_text(c)


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
        assert b"<svg" in data and b"vm01 from node1 to node2" in data


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


@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_compare_into_a_closed_pipe_ends_quietly(tmp_path: Path, reader: str) -> None:
    # A real pipe: `true` leaves before anything is written, so every write meets a closed pipe.
    import shlex
    import subprocess
    import sys

    a = samples.stored(samples.lan_fail(), tmp_path / "a", chart=False)
    b = samples.stored(samples.san_pass(), tmp_path / "b", chart=False)
    vp = f"{shlex.quote(sys.executable)} -m verifier compare {shlex.quote(str(a))} {shlex.quote(str(b))}"
    proc = subprocess.run(
        ["bash", "-c", f'set -o pipefail; {vp} 2>{tmp_path}/err | {reader}; echo "${{PIPESTATUS[0]}}" >{tmp_path}/rc'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert (tmp_path / "rc").read_text().strip() in ("0", "1")  # 1: B moved away; never a crash
    if reader == "head -1":
        assert proc.stdout == "path changed: br0 -> eth0 => san0\n"
