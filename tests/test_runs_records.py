"""Reading run records back: schema versions, damaged files, and the listing of a captures dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sample_reports as samples

from verifier import __version__, runs
from verifier.errors import ExitCode, UsageError
from verifier.model import SCHEMA_VERSION


def _record(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def _rewrite(run_dir: Path, data: dict[str, Any]) -> None:
    (run_dir / "run.json").write_text(json.dumps(data))


def test_load_reads_the_current_schema_from_the_directory_or_the_file(tmp_path: Path) -> None:
    report = samples.san_pass(with_return=True)
    run_dir = samples.stored(report, tmp_path)
    loaded = runs.load(run_dir)
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.verdict == "pass" and loaded.observed_path == ("san0",)
    assert loaded.return_leg == report.return_leg
    assert runs.load(run_dir / "run.json") == loaded
    assert loaded == type(report)(**{**report.__dict__, "run_dir": str(run_dir)})


def test_load_points_run_dir_at_where_the_record_is_now(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.lan_fail(), tmp_path / "captures")
    moved = tmp_path / "samples" / run_dir.name
    moved.parent.mkdir()
    run_dir.rename(moved)
    assert runs.load(moved).run_dir == str(moved)
    assert _record(moved)["run_dir"] == str(run_dir)  # the file itself is left alone


def test_an_older_schema_goes_through_the_upgrade_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = samples.stored(samples.lan_fail(), tmp_path)
    data = _record(run_dir)
    data["schema_version"] = SCHEMA_VERSION - 1
    data["vm_name"] = data.pop("vm")  # what an older layout might have called it
    _rewrite(run_dir, data)

    seen: list[int] = []

    def older_to_current(old: dict[str, Any]) -> dict[str, Any]:
        seen.append(old["schema_version"])
        new = dict(old)
        new["vm"] = new.pop("vm_name")
        return new

    monkeypatch.setitem(runs.UPGRADES, SCHEMA_VERSION - 1, older_to_current)
    loaded = runs.load(run_dir)
    assert seen == [SCHEMA_VERSION - 1]
    assert loaded.vm == "vm01" and loaded.schema_version == SCHEMA_VERSION


def test_an_older_schema_without_a_rule_says_so(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.lan_fail(), tmp_path)
    data = _record(run_dir)
    data["schema_version"] = 0
    _rewrite(run_dir, data)
    assert 0 not in runs.UPGRADES  # version 1 is the first schema: the v0 -> v1 slot is empty
    with pytest.raises(UsageError) as err:
        runs.load(run_dir)
    line = err.value.one_line()
    assert str(run_dir / "run.json") in line and "schema_version 0" in line and "no rule" in line


def test_a_newer_schema_names_the_file_the_version_and_the_verify_path_needed(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.lan_fail(), tmp_path)
    data = _record(run_dir)
    data["schema_version"] = SCHEMA_VERSION + 1
    data["tool_version"] = "9.4.0"
    _rewrite(run_dir, data)
    with pytest.raises(UsageError) as err:
        runs.load(run_dir)
    line = err.value.one_line()
    assert "\n" not in line
    assert str(run_dir / "run.json") in line
    assert f"schema_version {SCHEMA_VERSION + 1}" in line
    assert __version__ in line and "verify-path 9.4.0 or newer" in line
    assert err.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "JSON list, not a run record"),
        ('{"verdict": "pass"}', "no usable schema_version"),
        ('{"schema_version": "1"}', "no usable schema_version"),
        ('{"schema_version": 1, "verdict": "pass"}', "does not match it"),
        ('{"schema_version": 1, "vm": "x", "interfaces": 5}', "does not match it"),
    ],
)
def test_a_garbled_record_is_a_usage_error_naming_the_file(tmp_path: Path, content: str, words: str) -> None:
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(UsageError) as err:
        runs.load(tmp_path)
    line = err.value.one_line()
    assert words in line and str(tmp_path / "run.json") in line and "\n" not in line


def test_a_missing_record_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        runs.load(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="run.json does not exist"):
        runs.load(tmp_path)


def test_list_runs_orders_by_time_skips_strays_and_flags_unreadable(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    late = samples.stored(samples.san_pass(started=samples.T0 + 7200), captures, chart=False)
    early = samples.stored(samples.lan_fail(started=samples.T0), captures, chart=False)
    middle = samples.stored(samples.observed(started=samples.T0 + 3600), captures, chart=False)
    broken = runs.create(captures, "vm02", "node3", now=samples.T0 + 5400)
    (broken / "run.json").write_text("{truncated")
    (captures / "bench").mkdir()
    (captures / "bench" / "latest.json").write_text("{}")
    (captures / "README.md").write_text("not a run")

    listed = runs.list_runs(captures)
    assert [r.run_dir for r in listed] == [early, middle, broken, late]
    first = listed[0]
    assert first == runs.RunSummary(early, "2025-01-01T00:00:00Z", "vm01", "node2", "fail", "br0", ("san0",))
    assert listed[1].verdict == "observed" and listed[1].expected == ()
    assert listed[3].expected == ("san0", "198.18.0.0/24")
    bad = listed[2]
    assert bad.verdict == "unreadable" and bad.time == "2025-01-01T01:30:00Z"
    assert "not valid JSON" in bad.error and bad.observed_interface is None


def test_list_runs_never_raises(tmp_path: Path) -> None:
    assert runs.list_runs(tmp_path / "missing") == []
    (tmp_path / "file").write_text("x")
    assert runs.list_runs(tmp_path / "file") == []
