"""roles: labels from a corosync.conf, from iSCSI hosts' local addresses, and from the user.

The corosync.conf is written the way corosync 2 (udpu) lays it out: the totem section, with an
interface's bindnetaddr, before the nodelist with each node's ring0_addr and ring1_addr. iSCSI hosts
are directories under tmp_path shaped like /sys/class/iscsi_host/hostN/ipaddress.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from verifier import roles
from verifier.model import Interface, Topology

COROSYNC = """\
totem {
    version: 2
    cluster_name: lab
    transport: udpu
    interface {
        ringnumber: 0
        bindnetaddr: 198.51.100.0
        mcastport: 5405
    }
}

nodelist {
    node {
        ring0_addr: 198.51.100.11
        ring1_addr: 203.0.113.11
        name: node1
        nodeid: 1
    }
    node {
        ring0_addr: 198.51.100.12
        ring1_addr: 203.0.113.12
        name: node2
        nodeid: 2
    }
}
"""


def topology() -> Topology:
    return Topology(
        "node1",
        (
            Interface("lo", 1, "loopback", addresses=("127.0.0.1/8",)),
            Interface("eth0", 2, "veth", master="br0"),
            Interface("br0", 3, "bridge", members=("eth0",), addresses=("203.0.113.11/24",)),
            Interface("ring1", 4, "veth", addresses=("198.51.100.11/24", "fe80::1/64")),
            Interface("san0", 5, "veth", addresses=("198.18.0.11/24", "fe80::2/64")),
            Interface("san1", 6, "veth", addresses=("198.18.1.11/24",), role="spare"),
        ),
    )


def iscsi_root(tmp_path: Path) -> Path:
    root = tmp_path / "iscsi_host"
    for host, value in (("host3", "198.18.0.11\n"), ("host4", "198.18.0.11\n"), ("host7", "")):
        (root / host).mkdir(parents=True)
        (root / host / "ipaddress").write_text(value)
    (root / "host9").mkdir()  # no ipaddress attribute (an offloaded HBA): skipped
    return root


def roles_of(topo: Topology) -> dict[str, str | None]:
    return {i.name: i.role for i in topo.interfaces}


def test_corosync_lines_are_read() -> None:
    assert roles.corosync_addresses(COROSYNC) == [
        ("198.51.100.0", "corosync"),
        ("198.51.100.11", "corosync ring0"),
        ("203.0.113.11", "corosync ring1"),
        ("198.51.100.12", "corosync ring0"),
        ("203.0.113.12", "corosync ring1"),
    ]
    assert roles.corosync_addresses("totem {\n  version: 2\n}\n") == []


def test_ring_addresses_label_their_interfaces() -> None:
    got = roles_of(roles.label(topology(), corosync_text=COROSYNC))
    # The ring address names the ring, although bindnetaddr (same subnet) comes first in the file.
    assert got["ring1"] == "corosync ring0"
    assert got["br0"] == "corosync ring1"
    assert got["san0"] is None and got["eth0"] is None and got["lo"] is None
    assert got["san1"] == "spare"  # a role already set stays when nothing is discovered


def test_bindnetaddr_alone_labels_the_subnet_holder() -> None:
    conf = "totem {\n  interface {\n    bindnetaddr: 198.18.1.0\n  }\n}\n"
    assert roles_of(roles.label(topology(), corosync_text=conf))["san1"] == "corosync"


def test_peer_only_addresses_map_by_subnet_and_names_do_not() -> None:
    conf = "nodelist {\n node {\n  ring0_addr: 198.51.100.12\n  ring1_addr: node2-san\n }\n}\n"
    got = roles_of(roles.label(topology(), corosync_text=conf))
    assert got["ring1"] == "corosync ring0"
    assert [n for n, r in got.items() if r and r.startswith("corosync")] == ["ring1"]


def test_iscsi_addresses_from_sysfs_shape(tmp_path: Path) -> None:
    root = iscsi_root(tmp_path)
    assert roles.iscsi_addresses(root) == ["198.18.0.11"]  # once, though two sessions use it
    assert roles.iscsi_addresses(tmp_path / "absent") == []
    got = roles_of(roles.label(topology(), iscsi=roles.iscsi_addresses(root)))
    assert got["san0"] == "iscsi"
    assert got["ring1"] is None


def test_user_labels_win(tmp_path: Path) -> None:
    user = {"san0": "storage", "ring1": "heartbeat", "eth0": "lan port"}
    got = roles_of(roles.label(topology(), user, COROSYNC, ["198.18.0.11"]))
    assert got["san0"] == "storage"  # over iscsi
    assert got["ring1"] == "heartbeat"  # over corosync ring0
    assert got["eth0"] == "lan port"
    assert got["br0"] == "corosync ring1"


def test_discover_reads_the_conf_named_in_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(COROSYNC)
    # discover() reads the real /sys/class/iscsi_host; point it at the imitation instead.
    monkeypatch.setattr(roles, "iscsi_addresses", functools.partial(roles.iscsi_addresses, iscsi_root(tmp_path)))
    got = roles_of(roles.discover(topology(), {"br0": "lan"}, env={"VERIFY_PATH_COROSYNC_CONF": str(conf)}))
    assert got == {
        "lo": None,
        "eth0": None,
        "br0": "lan",
        "ring1": "corosync ring0",
        "san0": "iscsi",
        "san1": "spare",
    }


def test_discover_without_a_readable_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roles, "iscsi_addresses", lambda: [])
    env = {"VERIFY_PATH_COROSYNC_CONF": str(tmp_path / "missing.conf")}
    got = roles_of(roles.discover(topology(), None, env=env))
    assert [n for n, r in got.items() if r] == ["san1"]
