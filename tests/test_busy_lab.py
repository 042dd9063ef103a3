"""A true verdict on a busy host, in the real lab: other programs on the migration ports, load on
every link, another guest migrating at the same time. Each test asserts the numbers."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, VP, guest_home, verify_path, virsh, wait_for

from verifier.lab import load, spec

pytestmark = pytest.mark.lab

LAN2 = spec.link("br0").address("node2")
SAN2 = spec.link("san0").address("node2")


def _findings(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["code"] == code]


def test_bulk_tcp_on_49152_over_the_lan_is_foreign(lab: None, tmp_path: Path) -> None:
    with load.foreign_flow("node2", "node1", LAN2, 49152, 40):
        code, report, err = verify_path("node1", "vm01", "node2", "--via", "san0", "--expect", "san0", tmp=tmp_path)
    guest_home()
    assert code == 0, err
    assert report["attribution"] == "ownership"
    assert report["observed_interface"] == "san0" and report["verdict"] == "pass"
    assert 0.95 <= report["coverage"]["ratio"] <= 1.05
    lan = [f for f in report["foreign"] if "br0" in f["interfaces"]]
    assert lan and lan[0]["server_port"] == 49152 and lan[0]["owner"] == "iperf3" and lan[0]["pid"]
    assert lan[0]["bytes"] > 10_000_000  # it really was bulk
    (shared,) = _findings(report, "port-range-shared")
    assert "iperf3 (pid" in shared["message"] and "migration_port_min" in shared["fix"]
    assert not _findings(report, "impossible-count")
    # libvirt skipped the busy port: the migration's own connection went to the next one.
    assert report["stream"]["server_ports"] == [49153]


def _ephemeral_ports(node: str, low: int, high: int) -> None:
    """NODE's outgoing connections take local ports from LOW-HIGH (a per-namespace sysctl)."""
    argv = [VP, "lab", "exec", node, "--", "sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={low} {high}"]
    subprocess.run(argv, check=True, cwd=REPO)


def test_a_source_connecting_from_ports_inside_the_range_is_not_a_program_on_them(lab: None, tmp_path: Path) -> None:
    """node1's own connections (verify-path's and libvirtd's to node2's libvirtd, QEMU's migration
    stream) all from ports inside 49152-49215, as one connection in about 440 is on any host. One
    opened before the capture was called a server on a migration port (a false port-range-shared
    naming verify-path itself) until this host's listening sockets put it the right way round."""
    _ephemeral_ports("node1", 49160, 49215)
    try:
        code, report, err = verify_path("node1", "vm01", "node2", "--via", "san0", "--expect", "san0", tmp=tmp_path)
    finally:
        _ephemeral_ports("node1", 32768, 60999)
        guest_home()
    assert code == 0, err
    assert report["attribution"] == "ownership" and report["observed_interface"] == "san0"
    assert 0.95 <= report["coverage"]["ratio"] <= 1.05
    (stream,) = report["stream"]["endpoints"]  # the setting took: QEMU connected from inside the range
    assert 49160 <= int(stream.split(" -> ")[0].rsplit(":", 1)[1]) <= 49215, stream
    assert not _findings(report, "port-range-shared"), report["foreign"]
    assert all(f["server_port"] == 16509 for f in report["foreign"]), report["foreign"]


def test_mirror_lan_migration_with_bulk_on_the_san_port_range_fails_naming_br0(lab: None, tmp_path: Path) -> None:
    with load.foreign_flow("node2", "node1", SAN2, 49152, 40):
        code, report, err = verify_path("node1", "vm01", "node2", "--expect", "san0", tmp=tmp_path)
    guest_home()
    assert code == 1, err
    assert report["verdict"] == "fail" and report["observed_interface"] == "br0"
    (wrong,) = _findings(report, "wrong-path")
    assert "br0" in wrong["message"]
    assert any("san0" in f["interfaces"] and f["owner"] == "iperf3" for f in report["foreign"])
    assert not _findings(report, "impossible-count")


def test_background_load_on_every_link_never_gives_impossible_counts(lab: None, tmp_path: Path) -> None:
    verdicts = []
    with load.background_load(120):
        for i, via in enumerate(("san0", None, "san0", None, "san1")):
            args = ["--via", via, "--expect", via] if via else ["--expect", "br0"]
            code, report, err = verify_path("node1", "vm01", "node2", *args, tmp=tmp_path / str(i))
            guest_home()
            assert code == 0, err
            assert not _findings(report, "impossible-count"), report["findings"]
            assert 0.95 <= report["coverage"]["ratio"] <= 1.05
            verdicts.append((report["observed_interface"], report["attribution"]))
    assert verdicts == [
        ("san0", "ownership"),
        ("br0", "ownership"),
        ("san0", "ownership"),
        ("br0", "ownership"),
        ("san1", "ownership"),
    ]


def _virsh_migrate_async(node: str, vm: str, *extra: str) -> subprocess.Popen[str]:
    argv = [VP, "lab", "exec", node, "--", "virsh", "-c", f"qemu+tcp://{node}/system"]
    argv += ["migrate", "--live", "--p2p", *extra, vm, "qemu+tcp://node2/system"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _lan_busy() -> bool:
    """node1's LAN is sending more than 500 kB in half a second: a migration stream is on the wire
    now (libvirt's job statistics count bytes before the stream starts, the link does not)."""
    before = load.tx_bytes("node1", ["eth0"])["eth0"]
    time.sleep(0.5)
    return load.tx_bytes("node1", ["eth0"])["eth0"] - before > 500_000


def test_a_concurrent_migration_is_listed_as_foreign_with_its_owner(lab_two_guests: None, tmp_path: Path) -> None:
    # vm02 crawls over the LAN at 2 MiB/s (about 50 s of stream once its destination QEMU has
    # started: whatever the machine's load, it is still sending while vm01 goes over san0).
    other = _virsh_migrate_async("node1", "vm02", "--bandwidth", "2")
    try:
        assert wait_for(_lan_busy, timeout=60), "vm02's migration never started sending"
        code, report, err = verify_path("node1", "vm01", "node2", "--via", "san0", "--expect", "san0", tmp=tmp_path)
    finally:
        other.wait(240)
        guest_home()
    assert other.returncode == 0, other.stderr
    assert code == 0, err
    assert report["observed_interface"] == "san0" and report["attribution"] == "ownership"
    vm02 = [f for f in report["foreign"] if f["owner"] == "qemu (vm02)"]
    assert vm02 and "br0" in vm02[0]["interfaces"] and vm02[0]["bytes"] > 1_000_000
    assert 0.95 <= report["coverage"]["ratio"] <= 1.05  # vm02's bytes are not vm01's


def _armed(watch: subprocess.Popen[str]) -> None:
    """Until watch says it is watching (every sniffer armed, the chart's modules warm)."""
    assert watch.stderr is not None
    line = watch.stderr.readline()
    assert "watching" in line, line


def test_watch_reports_each_concurrent_migration_on_its_own(lab_two_guests: None, tmp_path: Path) -> None:
    # The source's QEMUs connect from ports inside the migration range, as one connection in about
    # 440 does on any host (Linux's ephemeral range 32768-60999 contains 49152-49215): the way of a
    # migration is who connected, not which end sits in the range.
    _ephemeral_ports("node1", 49160, 49215)
    watch = subprocess.Popen(
        [VP, "lab", "exec", "node1", "--", VP, "watch", "--duration", "25", "--json", "--captures-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        _armed(watch)
        one = _virsh_migrate_async("node1", "vm01", "--migrateuri", f"tcp://{SAN2}")
        two = _virsh_migrate_async("node1", "vm02")
        assert one.wait(120) == 0 and two.wait(120) == 0
    finally:
        out, err = watch.communicate(timeout=120)
        _ephemeral_ports("node1", 32768, 60999)
        guest_home()
    report = json.loads(out)
    seen = {m["domain"]: m for m in report["migrations"]}
    assert set(seen) == {"vm01", "vm02"}, err
    assert seen["vm01"]["observed_interface"] == "san0" and seen["vm01"]["direction"] == "outbound"
    assert seen["vm02"]["observed_interface"] == "br0" and seen["vm02"]["direction"] == "outbound"
    assert seen["vm01"]["bytes"] > 50_000_000 and seen["vm02"]["bytes"] > 50_000_000
    # Both QEMUs' connections ("client:port -> server:port"), from ports inside the range.
    sources = [int(e.split(" -> ")[0].rsplit(":", 1)[1]) for e in report["stream"]["endpoints"]]
    assert len(sources) >= 2 and all(49160 <= port <= 49215 for port in sources), report["stream"]["endpoints"]


def test_watch_on_the_destination_attributes_the_stream_to_the_incoming_qemu(lab: None, tmp_path: Path) -> None:
    watch = subprocess.Popen(
        [VP, "lab", "exec", "node2", "--", VP, "watch", "--duration", "15", "--json", "--expect", "san0"]
        + ["--captures-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        _armed(watch)
        virsh("node1", "migrate", "--live", "--p2p", "--migrateuri", f"tcp://{SAN2}", "vm01", "qemu+tcp://node2/system")
    finally:
        out, err = watch.communicate(timeout=120)
        guest_home()
    assert watch.returncode == 0, err
    report = json.loads(out)
    (vm01,) = report["migrations"]
    assert vm01["domain"] == "vm01" and vm01["direction"] == "inbound"
    assert vm01["observed_interface"] == "san0" and vm01["verdict"] == "pass"
    assert report["attribution"] == "ownership"
