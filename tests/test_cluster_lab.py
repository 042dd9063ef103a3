"""The whole cluster on a real three-node lab: probe, the playbook, the matrix and compare.

One three-node lab serves the whole module (building it is the slow part); the playbook runs inside
node1, which reaches every node over the lab's sshd. At the end the lab is taken down, so the next
test module rebuilds the default two-node lab it expects.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, VP, in_node, lab_up, require_lab, wait_for

from verifier.lab import control, daemon, spec

pytestmark = pytest.mark.lab

NODES = spec.nodes(3)
PLAYBOOK = [".venv/bin/ansible-playbook", "-i", "ansible/inventory/lab.ini", "ansible/verify-cluster.yml"]
EXPECT_SAN0 = '{"verify_path_probe_args": ["--expect", "san0"], "verify_path_memory": 64}'


@pytest.fixture(scope="module")
def cluster(lab_session: None) -> Iterator[None]:
    require_lab()
    lab_up(nodes=3)
    yield
    control.down(progress=lambda _m: None)


def probes() -> dict[str, list[str]]:
    """node -> probe guests libvirt knows there, running or not."""
    out = {}
    for node in NODES:
        names = in_node(node, "virsh", "-c", spec.socket_uri(node), "list", "--all", "--name", check=True).stdout
        out[node] = [n for n in names.split() if n.startswith("verify-path-probe-")]
    return out


def no_probes() -> bool:
    return not any(probes().values())


def playbook(captures: Path, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = in_node("node1", *PLAYBOOK, "-e", f"verify_path_captures={captures}", *extra, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc


def matrix_dir(captures: Path) -> Path:
    found = sorted(captures.glob("matrix-*"))
    assert len(found) == 1, found
    return found[0]


def matrix(path: Path) -> dict[str, Any]:
    proc = subprocess.run([VP, "matrix", str(path), "--json"], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def cells(m: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["source"], c["destination"]): c for c in m["cells"]}


def test_probe_round_trip_then_failed_migration_leaves_nothing(cluster: None, tmp_path: Path) -> None:
    proc = in_node(
        "node1", VP, "probe", "node1", "node2", "--round-trip", "--json", "--memory", "64",
        "--captures-dir", str(tmp_path),
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["options"]["probe"] is True and report["vm"].startswith("verify-path-probe-")
    assert report["migration"]["status"] == "completed"
    assert report["return_leg"]["migration"]["status"] == "completed"
    assert no_probes(), probes()
    # A migration that fails: node2's libvirtd dies while the probe's stream is on its way.
    state = control.read_state() or {}
    victim = int(state["pids"]["node2"])
    run = subprocess.Popen(
        [VP, "lab", "exec", "node1", "--", VP, "probe", "node1", "node2", "--json", "--memory", "200",
         "--captures-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert wait_for(lambda: any(probes()["node2"]) or run.poll() is not None, timeout=120, interval=0.1)
    assert daemon.stop_pids([victim]) == []
    out, err = run.communicate(timeout=300)
    assert run.returncode != 0, out[-1000:]
    restart_libvirtd("node2")
    assert wait_for(no_probes, timeout=60), probes()


def restart_libvirtd(node: str) -> None:
    """A new libvirtd for NODE in the lab (its sshd keeps the old mount namespace, same tree)."""
    pid = daemon.start(node, spec.STATE_DIR)
    daemon.wait_ready(node, spec.STATE_DIR, pid)
    state = control.read_state() or {}
    state["pids"][node] = pid
    (spec.STATE_DIR / "lab.json").write_text(json.dumps(state))
    assert control.healthy()


def test_matrix_before_and_after_migration_host_and_compare(cluster: None, tmp_path: Path) -> None:
    started = time.monotonic()
    playbook(tmp_path / "before", "-e", EXPECT_SAN0)
    before = matrix(matrix_dir(tmp_path / "before"))
    assert len(before["cells"]) == 6 and not before["missing"], before
    for cell in before["cells"]:
        assert cell["interface"] == "br0", cell  # the LAN: nodeN resolves to its br0 address
        assert cell["verdict"] == "fail" and cell["expected"] == ["san0"], cell
    assert no_probes()

    lab_up(nodes=3, migration_hosts=(("node2", "node2-san"),))
    playbook(tmp_path / "after", "-e", EXPECT_SAN0)
    after = matrix(matrix_dir(tmp_path / "after"))
    assert len(after["cells"]) == 6, after
    into_node2 = {("node1", "node2"), ("node3", "node2")}
    for pair, cell in cells(after).items():
        if pair in into_node2:
            assert (cell["interface"], cell["verdict"]) == ("san0", "pass"), cell
        else:
            assert (cell["interface"], cell["verdict"]) == ("br0", "fail"), cell
    compared = subprocess.run(
        [VP, "compare", str(matrix_dir(tmp_path / "before")), str(matrix_dir(tmp_path / "after"))],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    text = compared.stdout
    assert "node1 -> node2" in text and "node3 -> node2" in text, text
    for other in ("node1 -> node3", "node2 -> node1", "node2 -> node3", "node3 -> node1"):
        assert other not in text, text
    print(f"two matrices in {time.monotonic() - started:.0f}s")


def test_interrupting_the_playbook_leaves_no_probe(cluster: None, tmp_path: Path) -> None:
    run = subprocess.Popen(
        [VP, "lab", "exec", "node1", "--", *PLAYBOOK, "-e", f"verify_path_captures={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert wait_for(lambda: any(probes().values()), timeout=180, interval=0.2)
    os.kill(run.pid, signal.SIGINT)  # `lab exec` execs ansible-playbook: the same PID
    run.communicate(timeout=120)
    assert wait_for(no_probes, timeout=180, interval=1), probes()
    assert wait_for(lambda: not _probe_processes(), timeout=120, interval=1), _probe_processes()


def _probe_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # verify-path probe, run directly or by the venv's Python. (A destination's `watch`
            # holds no guest and ends by its own --duration.)
            tool = any(c.endswith(b"/verify-path") for c in cmd[:2])
            if tool and b"probe" in cmd:
                found.append(" ".join(c.decode(errors="replace") for c in cmd))
    return found


def test_broken_route_to_storage_shows_the_pair_that_fell_back_to_the_lan(cluster: None, tmp_path: Path) -> None:
    lab_up(nodes=3, migration_hosts=(("node2", "node2-san"),))
    san = spec.link("san0")
    subnet = san.subnet
    # node3 loses its route to the storage network: node2-san is reached through node2's LAN address.
    in_node("node3", "ip", "route", "del", subnet, "dev", "san0", check=True)
    in_node("node3", "ip", "route", "add", subnet, "via", spec.link("br0").address("node2"), check=True)
    pairs = '{"verify_path_pairs": [["node1", "node2"], ["node3", "node2"]]}'
    playbook(tmp_path, "-e", EXPECT_SAN0, "-e", pairs)
    m = cells(matrix(matrix_dir(tmp_path)))
    assert set(m) == {("node1", "node2"), ("node3", "node2")}
    assert (m["node1", "node2"]["interface"], m["node1", "node2"]["verdict"]) == ("san0", "pass")
    broken = m["node3", "node2"]
    assert (broken["interface"], broken["verdict"]) == ("br0", "fail"), broken
    text = subprocess.run([VP, "matrix", str(matrix_dir(tmp_path))], capture_output=True, text=True).stdout
    assert "route" in text, text
