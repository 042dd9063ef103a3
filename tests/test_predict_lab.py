"""`verify-path predict` in the lab: the chain before migrating, and that the main job agrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import VP, guest_home, in_node, lab_up, verify_path

pytestmark = pytest.mark.lab


def predict(*argv: str) -> tuple[int, dict[str, Any]]:
    proc = in_node("node1", VP, "predict", "vm01", "node2", "--json", *argv)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _reason(report: dict[str, Any], step: str) -> dict[str, Any]:
    return next(r for r in report["prediction"]["reasons"] if r["step"] == step)


def test_predict_default_names_the_hosts_entry_the_route_and_the_fix(lab: None) -> None:
    code, report = predict("--expect", "san0")
    assert code == 1 and report["verdict"] == "fail"
    assert report["prediction"]["interface"] == "br0" and report["prediction"]["path"] == ["br0", "eth0"]
    resolution = _reason(report, "name resolution")
    assert "hosts file" in resolution["detail"] and "203.0.113.12 node2" in resolution["evidence"]
    assert "dev br0" in _reason(report, "route")["detail"]
    assert "lookup main" in _reason(report, "policy rule")["detail"]
    assert "shaped to 1000 Mbit/s" in _reason(report, "link")["detail"]
    codes = {f["code"]: f for f in report["findings"]}
    assert 'migration_host = "node2-san"' in codes["predicted-wrong-path"]["fix"]
    assert "san0" in codes["slower-link"]["message"] and "ring1" not in codes["slower-link"]["message"]
    roles = {i["name"]: i["role"] for i in report["interfaces"]}
    assert roles["ring1"] == "corosync ring0"  # from the lab's corosync.conf


def test_dry_run_is_predict_and_moves_nothing(lab: None, tmp_path: Path) -> None:
    proc = in_node(
        "node1", VP, "vm01", "node2", "--dry-run", "--via", "san0", "--expect", "san0", "--captures-dir", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PREDICTED PASS") and "will take san0" in proc.stdout
    assert not any(tmp_path.iterdir())
    code, report = predict("--via", "san0")
    assert code == 0 and report["prediction"]["interface"] == "san0"


def test_predict_reads_the_destination_migration_host(lab: None) -> None:
    lab_up(migration_hosts=(("node2", "node2-san"),))
    guest_home()
    code, report = predict("--expect", "san0")
    assert code == 0 and report["prediction"]["interface"] == "san0"
    assert "migration_host" in _reason(report, "migration URI")["detail"]
    lab_up()


def test_policy_rule_sends_the_san_address_through_san1(lab: None, tmp_path: Path) -> None:
    in_node("node1", "ip", "rule", "add", "to", "198.18.0.12/32", "lookup", "100", "priority", "100", check=True)
    try:
        in_node("node1", "ip", "route", "add", "198.18.0.12/32", "dev", "san1", "table", "100", check=True)
        code, report = predict("--via", "san0", "--expect", "san0")
        assert code == 1
        assert report["prediction"]["interface"] == "san1" and report["prediction"]["table"] == 100
        assert _reason(report, "policy rule")["detail"] == "100: from all to 198.18.0.12/32 lookup 100"
        code, run, err = verify_path("node1", "vm01", "node2", "--via", "san0", "--expect", "san0", tmp=tmp_path)
        assert code == 1, err
        assert run["observed_interface"] == "san1" == run["prediction"]["interface"]
        wrong = next(f for f in run["findings"] if f["code"] == "wrong-path")
        assert "ip rule del priority 100" in wrong["fix"]
    finally:
        in_node("node1", "ip", "rule", "del", "priority", "100")
        in_node("node1", "ip", "route", "flush", "table", "100")
        guest_home()
