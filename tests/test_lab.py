"""The lab itself: nodes, links, hosts files, real migrations, idempotent up/down, clean teardown."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, VP, in_node, lab_up, running_on, virsh

from verifier.errors import UsageError
from verifier.lab import commands, control, spec
from verifier.lab.system import netns_pids

pytestmark = pytest.mark.lab


def _status() -> dict:
    out = subprocess.run([VP, "lab", "status", "--json"], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


def test_status_shows_both_nodes_links_up_and_guest_on_node1(lab: None) -> None:
    st = _status()
    assert st["phase"] == "up"
    assert [n["name"] for n in st["nodes"]] == ["node1", "node2"]
    for node in st["nodes"]:
        assert node["netns"] and node["libvirtd"]["running"]
        links = {link["name"]: link for link in node["links"]}
        assert set(links) >= {"br0", "eth0", "ring1", "san0", "san1"}
        assert all(link["state"] == "UP" for link in links.values()), links
        assert links["eth0"]["master"] == "br0"
        assert links["br0"]["addresses"] == [f"{spec.link('br0').address(node['name'])}/24"]
        assert links["san0"]["addresses"] == [f"{spec.link('san0').address(node['name'])}/24"]
    assert st["guests"]["vm01"] == {"node1": "running"}
    assert any("bond" in note for note in st["notes"])


@pytest.mark.parametrize("node", spec.NODES)
def test_hosts_files_resolve_as_specified(lab: None, node: str) -> None:
    expected = {
        "node1": "203.0.113.11",
        "node2": "203.0.113.12",
        "node1-san": "198.18.0.11",
        "node2-san": "198.18.0.12",
        "node1-san1": "198.18.1.11",
        "node2-san1": "198.18.1.12",
    }
    for name, address in expected.items():
        out = in_node(node, "getent", "hosts", name, check=True).stdout.split()
        assert out[0] == address, (node, name, out)


def test_exec_keeps_cwd_and_points_libvirt_at_the_node(lab: None, tmp_path: Path) -> None:
    proc = in_node("node2", "sh", "-c", 'echo "$PWD $LIBVIRT_DEFAULT_URI"', check=True)
    assert proc.stdout.split() == [str(REPO), "qemu+tcp://node2/system"]
    links = in_node("node1", "ip", "-br", "link", check=True).stdout
    assert "san0" in links and "br0" in links


def _qemu_cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _guest_option(cmdline: list[str]) -> str:
    """The guest= part of QEMU's `-name guest=NAME,debug-threads=on`."""
    parts = cmdline[cmdline.index("-name") + 1].split(",")
    return next(p.removeprefix("guest=") for p in parts if p.startswith("guest="))


def test_exec_exports_the_run_dir_whose_pid_file_names_vm01s_qemu(lab: None) -> None:
    script = 'echo "$VERIFY_PATH_LIBVIRT_RUN_DIR"; cat "$VERIFY_PATH_LIBVIRT_RUN_DIR/qemu/vm01.pid"'
    run_dir, pid = in_node("node1", "sh", "-c", script, check=True).stdout.split()
    assert run_dir == str(spec.run_dir("node1")) == str(spec.STATE_DIR / "node1" / "run")
    assert _guest_option(_qemu_cmdline(int(pid))) == "vm01"
    assert int(pid) in netns_pids("node1")  # the live QEMU, in node1's network namespace
    other = in_node("node2", "printenv", "VERIFY_PATH_LIBVIRT_RUN_DIR", check=True).stdout.strip()
    assert other == str(spec.run_dir("node2"))


def test_real_live_migration_there_and_back(lab: None) -> None:
    virsh("node1", "migrate", "--live", "--p2p", "vm01", "qemu+tcp://node2/system")
    assert "running" in virsh("node2", "domstate", "vm01").stdout
    assert "vm01" not in virsh("node1", "list").stdout
    virsh("node2", "migrate", "--live", "--p2p", "vm01", "qemu+tcp://node1/system")
    assert "running" in virsh("node1", "domstate", "vm01").stdout
    assert "vm01" not in virsh("node2", "list").stdout
    info = virsh("node1", "domjobinfo", "--completed", "vm01").stdout
    assert "Data processed" in info


def test_up_twice_is_a_noop_and_keeps_the_same_daemons(lab: None) -> None:
    before = control.read_state()
    assert before is not None
    assert control.up(control.LabOptions(), progress=lambda _m: None) == "already up"
    assert (control.read_state() or {}).get("pids") == before["pids"]


def _lab_leftovers() -> list[str]:
    left = []
    for ns in (*spec.ALL_NODES, spec.HUB):
        if os.path.exists(f"/run/netns/{ns}"):
            left.append(f"namespace {ns}")
        if Path(f"/etc/netns/{ns}").exists():
            left.append(f"/etc/netns/{ns}")
    if spec.STATE_DIR.exists():
        left.append(str(spec.STATE_DIR))
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(spec.STATE_DIR) in mounts:
        left.append("mount")
    for pid in control.lab_pids(spec.STATE_DIR):
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if stat and stat.rsplit(")", 1)[1].split()[0] != "Z":
            left.append(f"process {pid}")
    return left


def test_down_twice_leaves_nothing_and_up_comes_back(lab: None) -> None:
    assert control.down(progress=lambda _m: None) == []
    assert _lab_leftovers() == []
    assert control.down(progress=lambda _m: None) == []
    assert _lab_leftovers() == []
    lab_up()
    assert control.healthy()


def test_down_cleans_up_after_a_killed_up(lab: None) -> None:
    """A crash of `up` midway (here: libvirtd killed and the state left 'building') still cleans."""
    state = control.read_state()
    assert state is not None
    os.kill(int(state["pids"]["node2"]), 9)
    state["phase"] = "building"
    (spec.STATE_DIR / "lab.json").write_text(json.dumps(state))
    assert not control.healthy()
    assert control.down(progress=lambda _m: None) == []
    assert _lab_leftovers() == []
    lab_up()
    assert control.healthy()


def test_sshd_per_node_answers_by_name_in_the_nodes_libvirt_namespaces(lab: None) -> None:
    """ssh from node1 reaches node2's sshd, whose session sees node2's hostname and libvirtd."""
    out = in_node("node1", "ssh", "node2", "hostname; virsh -c qemu:///system list --name", check=True).stdout
    assert out.split()[0] == "node2"
    remote = in_node("node1", "virsh", "-c", "qemu+ssh://node2/system", "hostname", check=True).stdout
    assert remote.strip() == "node2"
    st = _status()
    assert all(n["sshd"]["running"] for n in st["nodes"])


def test_links_are_bridged_in_the_hub_and_no_lab_address_is_on_the_host(lab: None) -> None:
    hub = subprocess.run(["ip", "-n", spec.HUB, "-br", "addr"], capture_output=True, text=True, check=True).stdout
    assert "hub-san0" in hub and "n1-san0" in hub and "n2-eth0" in hub
    assert not [ln for ln in hub.splitlines() if len(ln.split()) > 2 and not ln.startswith("lo")], hub
    host = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, check=True).stdout
    for link in spec.LINKS:
        assert link.address("node1") not in host and link.subnet.rsplit(".", 1)[0] + "." not in host


def test_node_count_and_migration_host_node_are_validated() -> None:
    assert spec.nodes(3) == ("node1", "node2", "node3")
    assert spec.link("san0").address("node3") == "198.18.0.13"
    assert "198.18.0.13\tnode3-san" in spec.hosts_file("node1", spec.nodes(3))
    assert "node3" not in spec.hosts_file("node1")
    for bad in (1, 4):
        with pytest.raises(UsageError, match="--nodes"):
            control.validate(control.LabOptions(nodes=bad))
    with pytest.raises(UsageError, match="node3"):
        control.validate(control.LabOptions(migration_hosts=(("node3", "node3-san"),)))
    control.validate(control.LabOptions(nodes=3, migration_hosts=(("node3", "node3-san"),)))


def test_guest_count_is_validated() -> None:
    assert spec.guest_names(3) == ("vm01", "vm02", "vm03")
    for bad in (0, spec.GUESTS_MAX + 1):
        with pytest.raises(UsageError, match="--guests"):
            control.validate(control.LabOptions(guests=bad))


def test_two_guests_run_on_node1_are_told_apart_and_migrate_there_and_back(lab_two_guests: None) -> None:
    st = _status()
    assert st["options"]["guests"] == 2
    assert {name: where.get("node1") for name, where in st["guests"].items()} == {"vm01": "running", "vm02": "running"}
    data_files = set()
    for name in ("vm01", "vm02"):
        pid = int((spec.run_dir("node1") / "qemu" / f"{name}.pid").read_text())
        cmdline = _qemu_cmdline(pid)
        assert _guest_option(cmdline) == name
        data_files |= {arg for arg in cmdline if arg.startswith("loader,file=")}
    assert len(data_files) == 2, data_files  # each guest its own random data
    for name in ("vm01", "vm02"):
        virsh("node1", "migrate", "--live", "--p2p", name, "qemu+tcp://node2/system")
    assert running_on() == {"vm01": ["node2"], "vm02": ["node2"]}
    shown = [ln for ln in commands.render_status(_status()).splitlines() if ln.startswith("guest vm02:")]
    assert len(shown) == 1 and "running on node2" in shown[0], shown
    for name in ("vm01", "vm02"):
        virsh("node2", "migrate", "--live", "--p2p", name, "qemu+tcp://node1/system")
    assert running_on() == {"vm01": ["node1"], "vm02": ["node1"]}
