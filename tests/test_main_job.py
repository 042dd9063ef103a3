"""The main job end to end in the lab: real libvirtd, real QEMU, real sniffers, real kernel routing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import VP, guest_home, in_node, lab_up, verify_path, virsh
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from verifier.capture import readers
from verifier.capture.frames import header_length

pytestmark = pytest.mark.lab


def _iface(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in report["interfaces"] if i["name"] == name)


def _coverage_ok(report: dict[str, Any]) -> None:
    ratio = report["coverage"]["ratio"]
    assert ratio is not None and 0.9 <= ratio <= 1.1, report["coverage"]


def test_default_path_takes_the_lan_and_fails_the_san_expectation(lab: None, tmp_path: Path) -> None:
    # --capture full: every frame's headers in the pcaps, so that tshark can count them too.
    code, report, err = verify_path("node1", "vm01", "node2", "--expect", "san0", "--capture", "full", tmp=tmp_path)
    assert code == 1, err
    assert report["verdict"] == "fail"
    assert report["observed_interface"] == "br0"
    assert "eth0" in report["observed_path"]
    assert _iface(report, "br0")["share"] >= 0.95 and _iface(report, "eth0")["share"] >= 0.95
    for quiet in ("san0", "san1", "ring1"):
        assert _iface(report, quiet)["share"] < 0.01
    _coverage_ok(report)
    assert report["prediction"]["interface"] == "br0" and report["prediction"]["path"] == ["br0", "eth0"]
    wrong = [f for f in report["findings"] if f["code"] == "wrong-path"]
    assert wrong, report["findings"]
    assert "node2" in wrong[0]["message"] and "203.0.113.12" in wrong[0]["message"]
    assert 'migration_host = "node2-san"' in wrong[0]["fix"] and "--via san0" in wrong[0]["fix"]
    assert report["stream"]["kinds"]["qemu-main"]["connections"] == 1
    _check_run_dir(report)


def _check_run_dir(report: dict[str, Any]) -> None:
    assert report["capture"]["pcaps"] == "every frame", report["capture"]
    run = Path(report["run_dir"])
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for name in ("run.json", "chart.png"):
        assert (run / name).is_file()
    for iface in report["interfaces"]:
        pcap = iface.get("pcap")
        if iface["packets"]:
            assert pcap and Path(pcap).parent == run
        if not pcap:
            continue
        assert stat.S_IMODE(os.stat(pcap).st_mode) == 0o600
        # Independent oracle: tshark's frame-length total for the file vs our count.
        out = subprocess.run(
            ["tshark", "-r", pcap, "-T", "fields", "-e", "frame.len"], capture_output=True, text=True, check=True
        ).stdout
        tshark_bytes = sum(int(x) for x in out.split())
        ours = iface["bytes_tx"] + iface["bytes_rx"]
        assert abs(tshark_bytes - ours) <= 0.01 * max(ours, 1), (iface["name"], tshark_bytes, ours)


def _check_sampled_pcaps(report: dict[str, Any]) -> None:
    """The default capture's evidence, written by the eBPF program: headers only (no guest memory),
    private, the migration connection's handshake on san0, and a sample, not the stream."""
    assert (report["capture"]["engine"], report["capture"]["pcaps"]) == ("ebpf", "sampled"), report["capture"]
    san0 = _iface(report, "san0")
    assert stat.S_IMODE(os.stat(san0["pcap"]).st_mode) == 0o600
    linktype, records = readers.read_pcap(Path(san0["pcap"]))
    frames = list(records)
    assert all(len(data) == header_length(data, linktype) for _ts, data, _orig in frames)
    tcp = [Ether(data)[TCP] for _ts, data, _orig in frames if TCP in Ether(data)]
    assert any(t.flags.S and not t.flags.A and 49152 <= t.dport <= 49215 for t in tcp)
    assert 3 <= len(frames) < san0["packets"] / 10, (len(frames), san0["packets"])


@pytest.mark.parametrize("route", [["--via", "san0"], ["--migrate-uri", "tcp://node2-san"]])
def test_fixed_path_takes_san0_and_passes(lab: None, tmp_path: Path, route: list[str]) -> None:
    code, report, err = verify_path(
        "node1", "vm01", "node2", "--expect", "san0", *route, "--capture", "full", tmp=tmp_path
    )
    assert code == 0, err
    assert report["verdict"] == "pass"
    assert report["observed_interface"] == "san0"
    assert _iface(report, "san0")["share"] >= 0.95
    assert report["prediction"]["interface"] == "san0"
    assert report["migration"]["migrate_uri"] in ("tcp://198.18.0.12", "tcp://node2-san")
    _coverage_ok(report)
    _check_run_dir(report)


def test_migration_host_on_destination_needs_no_options(lab: None, tmp_path: Path) -> None:
    lab_up(migration_hosts=(("node2", "node2-san"),))
    guest_home()
    code, report, err = verify_path("node1", "vm01", "node2", "--expect", "san0", tmp=tmp_path)
    assert code == 0, err
    assert report["observed_interface"] == "san0"
    assert report["prediction"]["interface"] == "san0"
    assert any("migration_host" in r["detail"] for r in report["prediction"]["reasons"])
    _coverage_ok(report)
    _check_sampled_pcaps(report)
    guest_home()
    lab_up()  # back to the default lab for the next tests


def test_watch_reports_the_link_of_a_migration_started_by_virsh(lab: None, tmp_path: Path) -> None:
    # A bad duration is one line, exit 2; --until-idle with --duration is a window with a limit.
    bad = in_node("node1", VP, "watch", "--until-idle", "3", "--duration", "-1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1
    proc = subprocess.Popen(
        [VP, "lab", "exec", "node1", "--", VP, "watch", "--until-idle", "3", "--duration", "120", "--json"]
        + ["--captures-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    armed = proc.stderr.readline()  # printed once every sniffer is armed
    assert "watching" in armed, armed
    virsh("node1", "migrate", "--live", "--p2p", "vm01", "qemu+tcp://node2/system", "--migrateuri", "tcp://node2-san")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["mode"] == "watch"
    assert report["observed_interface"] == "san0"
    assert _iface(report, "san0")["share"] >= 0.95
    assert _iface(report, "br0")["share"] < 0.01
    guest_home()


def test_round_trip_via_san0_reports_both_legs_and_leaves_the_guest_home(lab: None, tmp_path: Path) -> None:
    code, report, err = verify_path(
        "node1", "vm01", "node2", "--expect", "san0", "--via", "san0", "--round-trip", tmp=tmp_path
    )
    assert code == 0, err
    assert report["observed_interface"] == "san0"
    back = report["return_leg"]
    assert back["direction"] == "return"
    assert back["observed_interface"] == "san0"
    assert back["migration"]["status"] == "completed"
    # The return leg arrives here: the stream's payload is received, not sent.
    san0 = next(i for i in back["interfaces"] if i["name"] == "san0")
    assert san0["bytes_rx"] > 0.9 * back["migration"]["data_processed"]
    assert "running" in virsh("node1", "domstate", "vm01").stdout


def test_parallel_migration_is_recognised_as_multifd_channels(lab: None, tmp_path: Path) -> None:
    code, report, err = verify_path(
        "node1", "vm01", "node2", "--via", "san0", "--parallel", "2", "--round-trip", tmp=tmp_path
    )
    assert code == 0, err
    kinds = report["stream"]["kinds"]
    assert kinds["qemu-main"]["connections"] == 1
    assert kinds["multifd"]["connections"] == 2
    # The RAM travels on the multifd channels; the main stream carries device state.
    assert kinds["multifd"]["bytes"] > 0.9 * report["migration"]["data_processed"]
    _coverage_ok(report)
