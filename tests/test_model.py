"""JSON round trip of the report: what run.json stores is what a reader gets back."""

from __future__ import annotations

import json

from verifier.model import (
    Bin,
    Coverage,
    Expectation,
    Finding,
    InterfaceReport,
    KindCount,
    MigrationResult,
    Prediction,
    Reason,
    Report,
    StreamSummary,
    from_dict,
    to_dict,
)


def test_report_round_trips_through_json() -> None:
    report = Report(
        schema_version=1,
        tool_version="0",
        verdict="fail",
        vm="vm01",
        source="node1",
        destination="node2",
        expected=Expectation(("san0",), ()),
        observed_interface="br0",
        observed_path=("br0", "eth0"),
        interfaces=(InterfaceReport("br0", "bridge", None, None, 10, 2, 3, 9, 1.0, 0, bins=(Bin(0, 10, 2),)),),
        stream=StreamSummary(((49152, 49215),), ("a:1 -> b:49152",), (49152,), 1, {"qemu-main": KindCount(1, 9)}),
        migration=MigrationResult("completed", None, data_processed=9, duration_s=1.5),
        prediction=Prediction("node2", "203.0.113.12", "br0", ("br0", "eth0"), reasons=(Reason("route", "x", "y"),)),
        coverage=Coverage(1.0, 9, 9, True),
        findings=(Finding("wrong-path", "error", "m", "f"),),
        run_dir="/tmp/x",
        started_at=1.0,
        expected_share=0.0,
    )
    data = json.loads(json.dumps(to_dict(report)))
    assert data["interfaces"][0]["bins"] == [{"second": 0, "bytes_tx": 10, "bytes_rx": 2}]
    assert from_dict(Report, data) == report
