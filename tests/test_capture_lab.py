"""The capture engine under load in the lab: misses are visible, and the benchmark's smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, guest_home, verify_path

pytestmark = pytest.mark.lab


def test_an_overwhelmed_sniffer_reports_drops_and_the_verdict_is_inconclusive(lab: None, tmp_path: Path) -> None:
    # --capture-buffer (hidden, for tests) shrinks each ring to two pages: the kernel must drop.
    # The ring engine counts here (the eBPF engine counts in the kernel and cannot fall behind).
    code, report, err = verify_path(
        "node1", "vm01", "node2", "--via", "san0", "--expect", "san0", "--engine", "ring",
        "--capture-buffer", "8192", tmp=tmp_path,
    )  # fmt: skip
    guest_home()
    san0 = next(i for i in report["interfaces"] if i["name"] == "san0")
    assert san0["drops"] > 0, report["interfaces"]
    assert code == 3 and report["verdict"] == "inconclusive", err
    assert any(f["code"] == "capture-drops" and "san0" in f["message"] for f in report["findings"])
    assert "dropped" in report["coverage"]["reason"]


def test_interface_counters_bound_what_was_captured(lab: None, tmp_path: Path) -> None:
    code, report, err = verify_path("node1", "vm01", "node2", "--via", "san0", tmp=tmp_path)
    guest_home()
    assert code == 0, err
    for iface in report["interfaces"]:
        assert iface["counter_tx"] is not None and iface["counter_rx"] is not None
        assert iface["bytes_tx"] <= iface["counter_tx"] * 1.001 + 262144
        assert iface["bytes_rx"] <= iface["counter_rx"] * 1.001 + 262144
    san0 = next(i for i in report["interfaces"] if i["name"] == "san0")
    assert san0["bytes_tx"] > 0.9 * san0["counter_tx"]  # the stream is most of what san0 sent


def test_bench_smoke_run_matches_tcpdump(lab: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "verifier.bench", "--seconds", "3", "--analyze-mb", "30", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    cases = {c["case"]: c for c in results["accuracy"]}
    assert set(cases) == {"one stream san0", "two streams san0+san1", "offloads off san0"}
    one = cases["one stream san0"]
    assert one["accuracy_vs_tcpdump"] >= 0.999 and one["ours_drops"] == 0, one
    assert one["counter_ok"]
    assert 0.99 <= one["payload_vs_iperf"] <= 1.01
    assert results["migration"]["time_to_verdict_beyond_migration_s"] > 0
    analyze = results["analyze"]
    assert analyze["ours_frames"] == analyze["frames"] and analyze["tshark_rows"] == 1
    assert analyze["time_ratio"] < 1, analyze  # faster than tshark on the same conversation statistics
    assert "ours/tcpdump" in proc.stdout  # the table
    guest_home()
