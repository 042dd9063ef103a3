"""Background load on the lab's links: it really moves bytes, the lab still migrates under it,
and nothing it started outlives it (verifier/lab/load.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, VP, guest_home, running_on, virsh

from verifier.errors import UsageError
from verifier.lab import flows, load, spec
from verifier.lab.system import netns_pids

LINKS = ("br0", "ring1", "san0", "san1")
# Half of each link's configured TCP rate (bytes/s); measured here: ~300, 110, 1000 and
# 1000 Mbit/s, so half leaves room for a busy CI machine without letting a dead flow pass.
MIN_BYTES_PER_S = {name: flows.DEFAULT_RATES_MBIT[name] * 1e6 / 8 / 2 for name in LINKS}


def _iperf3_in_lab() -> list[int]:
    """PIDs of iperf3 processes in either lab namespace."""
    found = []
    for node in spec.NODES:
        for pid in netns_pids(node):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "iperf3":
                    found.append(pid)
            except OSError:
                continue  # exited between the listing and the read
    return found


def _gone(pids: list[int]) -> bool:
    return all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_plan_covers_every_link_in_and_out_of_the_migration_range() -> None:
    planned = flows.plan()
    tcp = {(f.link, f.port) for f in planned if f.protocol == "tcp"}
    assert tcp == {(link, port) for link in LINKS for port in (49152, 5201)}
    udp = [f for f in planned if f.protocol == "udp"]
    assert [(f.link, f.port, f.rate_mbit) for f in udp] == [("ring1", 5405, 10)]
    assert all(f.server_node == "node2" and f.client_node == "node1" for f in planned)
    br0 = [f for f in planned if f.link == "br0"]
    assert {f.address for f in br0} == {spec.link("br0").address("node2")}
    assert sum(f.rate_mbit or 0 for f in br0) == flows.DEFAULT_RATES_MBIT["br0"]
    argv = br0[0].client_argv(7.2)
    assert argv[:4] == ["ip", "netns", "exec", "node1"] and argv[argv.index("-t") + 1] == "8"
    with pytest.raises(UsageError, match="unknown lab link"):
        flows.plan(["eth9"])


@pytest.mark.lab
def test_load_fills_every_link_and_a_lan_migration_still_completes(lab: None) -> None:
    try:
        with load.background_load(40) as running:
            pids = running.pids()
            rates = load.measure_tx_rates("node1", LINKS, 2.0)
            assert all(rates[name] >= MIN_BYTES_PER_S[name] for name in LINKS), rates
            # No migrate URI: the stream goes over the LAN (node2 resolves to br0), under load,
            # to port 49153 since the load holds 49152.
            virsh("node1", "migrate", "--live", "--p2p", "vm01", "qemu+tcp://node2/system")
            assert running_on()["vm01"] == ["node2"]
            assert running.running() == pids  # the load outlived the migration
    finally:
        guest_home()
    assert _gone(pids)
    assert _iperf3_in_lab() == []


@pytest.mark.lab
def test_load_ends_everything_it_started_on_an_exception(lab: None) -> None:
    with pytest.raises(RuntimeError, match="test failure"), load.background_load(40, links=("san0",)) as running:
        pids = running.pids()
        assert len(pids) == 4  # two servers, two clients
        raise RuntimeError("test failure")
    assert _gone(pids)
    assert _iperf3_in_lab() == []
    assert not list(spec.STATE_DIR.glob("load-*"))  # its scratch directory went too


@pytest.mark.lab
def test_foreign_flow_on_49152_over_the_lan_is_bulk_and_ends_on_its_own(lab: None) -> None:
    address = spec.link("br0").address("node2")
    with load.foreign_flow("node2", "node1", address, 49152, 3) as flow:
        assert [str(f) for f in flow.flows] == [f"TCP node1 -> {address}:49152 on br0 (unlimited)"]
        # Unlimited TCP fills the 1 Gbit/s shaped LAN: at least half of it.
        assert load.measure_tx_rates("node1", ["br0"], 1.0)["br0"] >= 60e6
        deadline = time.monotonic() + 10
        while not flow.clients_done() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flow.clients_done()  # -t 3: the client ends by itself
        pids = flow.pids()
    assert _gone(pids)
    assert _iperf3_in_lab() == []


@pytest.mark.lab
def test_lab_load_command_reports_each_link_and_leaves_nothing(lab: None) -> None:
    proc = subprocess.run(
        [VP, "lab", "load", "--seconds", "2", "--links", "san0,ring1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["ring1", "san0"]
    assert "UDP node1 -> 198.51.100.12:5405 on ring1 (10 Mbit/s)" in proc.stderr
    assert _iperf3_in_lab() == []
