"""The capture engine under load in the lab: misses are visible, and the benchmark's smoke run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import guest_home, verify_path

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
