"""The JSON of the stored sample runs is a contract: re-rendering them, and re-analysing their
pcaps, must give what the first release wrote (tests/data/sample-reports/): every key keeps its
value, in the same order. Keys added since are allowed only where ADDED names them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "captures" / "samples"
GOLDEN = REPO / "tests" / "data" / "sample-reports"
# Keys added by later releases (issue "A true verdict on a busy host"): who owns each connection,
# the flows that were not the migration's, and how the migration's own flows were found.
# Issue "Why is it slow": the diagnosis, the time series behind it, the forecast per link.
# Issue "Trust at the edges": the command line and options a run was made with.
# Issue "One throughput figure that means one thing": `figures` (wire rate, job duration, libvirt's
# rate, each with its unit in its name), derived from the run, in the report and its return leg.
# Issue "Count in the kernel": `capture` says which engine counted and what the pcaps hold.
ADDED = {
    *("owner", "foreign", "attribution", "diagnosis", "timeline", "forecasts", "command", "options", "migrations"),
    "figures",
    "capture",
}


def assert_kept(old: Any, new: Any, where: str = "$") -> None:
    """NEW holds everything OLD held, unchanged and in the same order; it may add ADDED keys."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        extra = [k for k in new if k not in old]
        assert set(extra) <= ADDED, f"{where}: unexpected new keys {extra}"
        assert [k for k in new if k in old] == list(old), f"{where}: keys reordered or lost"
        for key, value in old.items():
            assert_kept(value, new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            assert_kept(a, b, f"{where}[{i}]")
    else:
        assert new == old, f"{where}: {old!r} became {new!r}"


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env={}, stdout=out, stderr=err)
    return code, out.getvalue()


@pytest.mark.parametrize("sample", ["lan-default", "via-san0"])
def test_report_json_of_a_stored_sample_is_unchanged(sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the golden files were written from the repository root: run_dir is relative
    code, out = run("report", f"captures/samples/{sample}", "--format", "json")
    assert code == 0
    assert_kept(json.loads((GOLDEN / f"{sample}.json").read_text()), json.loads(out))


@pytest.mark.parametrize(
    ("golden", "argv", "exit_code"),
    [
        (
            "analyze-lan-default.json",
            ["lan-default/br0.pcap", "lan-default/eth0.pcap", "--master", "eth0=br0", "--expect", "san0"],
            1,
        ),
        ("analyze-via-san0.json", ["via-san0/san0.pcap", "--data-processed", "101700000"], 0),
    ],
)
def test_analyze_of_the_sample_pcaps_is_unchanged(
    golden: str, argv: list[str], exit_code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # file names are part of the report (pcap paths, the source reason)
    args = [f"captures/samples/{a}" if a.endswith(".pcap") else a for a in argv]
    code, out = run("analyze", *args, "--captures-dir", str(tmp_path), "--json")
    assert code == exit_code
    data = json.loads(out)
    assert data["run_dir"].startswith(str(tmp_path))
    data["run_dir"] = None
    assert_kept(json.loads((GOLDEN / golden).read_text()), data)
