"""topology.parse on a pyroute2-shaped snapshot (bond under a bridge), and topology.discover on this machine.

tests/data/host-bond-bridge.{links,addrs}.json are `[m.dump() for m in ...]` lists: each message was built
with pyroute2's ifinfmsg/ifaddrmsg, encoded to netlink bytes and decoded again before dumping, because this
kernel has no bonding driver to dump a real bond from.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from verifier.model import Topology
from verifier.topology import HASH_POLICIES, discover, parse

DATA = Path(__file__).parent / "data"
LINKS = json.loads((DATA / "host-bond-bridge.links.json").read_text())
ADDRS = json.loads((DATA / "host-bond-bridge.addrs.json").read_text())
SPEEDS = {"eno1": 10000, "eno2": 10000, "san0": 25000, "ring1": 25000}


@pytest.fixture(scope="module")
def topo() -> Topology:
    return parse(LINKS, ADDRS, hostname="hv1", speeds=SPEEDS)


@pytest.mark.parametrize(("cls", "messages"), [(ifinfmsg, LINKS), (ifaddrmsg, ADDRS)])
def test_snapshot_survives_a_pyroute2_round_trip(cls: type, messages: list[dict]) -> None:
    for dumped in messages:
        msg = cls()
        # deepcopy: pyroute2 turns the attribute lists it is given into tuples in place.
        msg.load({k: copy.deepcopy(v) for k, v in dumped.items() if k not in ("header", "event", "state", "__align")})
        msg.encode()
        again = cls(msg.data)
        again.decode()
        assert json.loads(json.dumps(again.dump()["attrs"])) == dumped["attrs"]


def test_kinds_masters_and_members(topo: Topology) -> None:
    kinds = {i.name: i.kind for i in topo.interfaces}
    assert kinds == {
        "lo": "loopback",
        "eno1": "physical",
        "eno2": "physical",
        "bond0": "bond",
        "br0": "bridge",
        "san0": "physical",
        "ring1": "physical",
    }
    masters = {i.name: i.master for i in topo.interfaces if i.master}
    assert masters == {"eno1": "bond0", "eno2": "bond0", "bond0": "br0"}
    assert topo.get("br0").members == ("bond0",)
    assert topo.get("bond0").members == ("eno1", "eno2")
    assert topo.get("san0").members == ()
    assert [i.index for i in topo.interfaces] == sorted(m["index"] for m in LINKS)
    assert topo.hostname == "hv1"


def test_addresses_mtu_and_speed(topo: Topology) -> None:
    assert topo.get("br0").addresses == ("203.0.113.11/24",)
    assert topo.get("san0").addresses == ("198.51.100.11/24",)
    assert topo.get("ring1").addresses == ("192.0.2.11/30",)
    assert topo.get("bond0").addresses == () and topo.get("eno1").addresses == ()
    assert topo.get("san0").mtu == 9000
    assert topo.get("san0").speed_mbps == SPEEDS["san0"]
    assert topo.get("br0").speed_mbps is None
    assert topo.get("eno2").operstate == "UP"
    assert topo.get("lo").addresses == ("127.0.0.1/8",)


def test_l3_and_chain(topo: Topology) -> None:
    assert topo.l3_of("eno1") == "br0"
    assert topo.l3_of("bond0") == "br0"
    assert topo.l3_of("san0") == "san0"
    assert topo.chain_down("br0") == ("br0", "bond0", "eno1", "eno2")
    assert topo.chain_down("ring1") == ("ring1",)


def test_bond_details(topo: Topology) -> None:
    bond = topo.get("bond0").bond
    assert bond is not None
    assert bond.mode == "active-backup"
    assert bond.active_member == "eno2"
    assert bond.xmit_hash_policy == "layer3+4"
    assert topo.get("br0").bond is None and topo.get("eno2").bond is None


def bond_link(mode: int, policy: int) -> dict:
    data = {"attrs": [["IFLA_BOND_MODE", mode], ["IFLA_BOND_XMIT_HASH_POLICY", policy]]}
    info = {"attrs": [["IFLA_INFO_KIND", "bond"], ["IFLA_INFO_DATA", data]]}
    return {"index": 9, "flags": 0x1043, "attrs": [["IFLA_IFNAME", "bond9"], ["IFLA_LINKINFO", info]]}


@pytest.mark.parametrize(
    ("mode", "policy", "want_mode", "want_policy"),
    [(4, 2, "802.3ad", "layer2+3"), (0, 0, "balance-rr", "layer2"), (2, 4, "balance-xor", "encap3+4")],
)
def test_bond_mode_and_hash_policy_mapping(mode: int, policy: int, want_mode: str, want_policy: str) -> None:
    bond = parse([bond_link(mode, policy)], [], hostname="h").get("bond9").bond
    assert bond is not None
    assert (bond.mode, bond.xmit_hash_policy, bond.active_member) == (want_mode, want_policy, None)
    assert HASH_POLICIES[policy] == want_policy


def test_discover_this_machine() -> None:
    topo = discover()
    lo = topo.get("lo")
    assert lo is not None
    assert lo.kind == "loopback"
    assert "127.0.0.1/8" in lo.addresses
    assert topo.l3_of("lo") == "lo"
    assert len({i.index for i in topo.interfaces}) == len(topo.interfaces)
