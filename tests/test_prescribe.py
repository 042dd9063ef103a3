"""prescribe: each prescription built from its situation; predict.slower_links and chain_mbps.

The host is node1 of a lab-like layout: br0 (LAN, port eth0 shaped to 1000 Mbit/s), ring1 (corosync),
san0 and san1 (storage). The hosts file in tmp_path is the only name source the code reads here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from verifier import bonds, prescribe
from verifier.model import (
    BondInfo,
    Connection,
    Finding,
    Interface,
    MemberPick,
    PolicyRule,
    Prediction,
    Reason,
    Topology,
)
from verifier.predict import chain_mbps, slower_links
from verifier.reconcile.bonds import shared_finding

HOSTS = """\
127.0.0.1     localhost
203.0.113.12  node2 node2-mig
198.51.100.12 node2-ring
198.18.0.12   node2-san
198.18.0.13   node3-san
"""

TOPO = Topology(
    "node1",
    (
        Interface("lo", 1, "loopback", addresses=("127.0.0.1/8",)),
        Interface("eth0", 2, "veth", master="br0", speed_mbps=10000, rate_limit_mbps=1000),
        Interface("br0", 3, "bridge", members=("eth0",), addresses=("203.0.113.11/24", "fe80::1/64")),
        Interface("ring1", 4, "veth", speed_mbps=25000, addresses=("198.51.100.11/24",), role="corosync ring0"),
        Interface("san0", 5, "veth", speed_mbps=10000, addresses=("198.18.0.11/24",)),
        Interface("san1", 6, "veth", speed_mbps=10000, addresses=("198.18.1.11/24",)),
    ),
)


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return path


def path_fix(
    topo: Topology,
    dest: str,
    expected: str,
    pred: Prediction | None,
    hosts: Path,
    vm: str = "VM",
    dest_uri: str | None = None,
) -> str:
    return prescribe.path_fix(prescribe.Context(topo, dest, vm, dest_uri, pred, hosts), expected)


def bond_share(
    topo: Topology, conns: tuple[Connection, ...], member_of: dict[tuple[str, int], str], bond: str
) -> Finding | None:
    """The reconcile stage's shared-member check on picks made from MEMBER_OF, with fixes attached."""
    picks = tuple(MemberPick(bond, "802.3ad", None, member_of.get((c.client, c.client_port)), "hash") for c in conns)
    found = shared_finding(topo, bond, picks)
    return prescribe.attach((found,), prescribe.Context(topo, "node2"))[0] if found else None


def prediction(host: str, address: str, iface: str, origin: str, *reasons: Reason, table: int = 254) -> Prediction:
    return Prediction(
        host, address, iface, path=TOPO.chain_down(iface), table=table, reasons=reasons, uri_origin=origin
    )


def test_hostname_on_the_lan_gets_the_naming_fix(hosts: Path) -> None:
    why = Reason("migration URI", "none given: node2's libvirtd hands out its hostname 'node2'")
    pred = prediction("node2", "203.0.113.12", "br0", "hostname", why)
    fix = path_fix(TOPO, "node2", "san0", pred, hosts=hosts, vm="vm01")
    assert 'on node2: migration_host = "node2-san" and migration_address = "198.18.0.12"' in fix
    assert "virsh migrate --live --p2p vm01 qemu+ssh://node2/system --migrateuri tcp://198.18.0.12" in fix
    assert "(verify-path: --via san0)" in fix
    assert "pcs resource update vm01 migration_network_suffix=-san" in fix
    assert "migrateuri=tcp://%n-san" in fix
    assert "ip rule" not in fix and "ip route" not in fix
    # The destination URI the user gave is the one repeated, and an FQDN keeps the same suffix.
    fix = path_fix(TOPO, "node2.example.com", "san0", pred, hosts=hosts, vm="vm01", dest_uri="qemu+tcp://n2/system")
    assert "vm01 qemu+tcp://n2/system --migrateuri tcp://198.18.0.12" in fix
    assert "migration_network_suffix=-san" in fix


def test_without_a_prediction_the_naming_fix_is_given(hosts: Path) -> None:
    fix = path_fix(TOPO, "node2", "ring1", None, hosts=hosts)
    assert 'migration_host = "node2-ring"' in fix and "--migrateuri tcp://198.51.100.12" in fix
    assert "migration_network_suffix=-ring" in fix


def test_migration_host_resolving_to_the_wrong_link(hosts: Path) -> None:
    why = Reason("migration URI", "none given: node2 hands out its migration_host 'node2-mig'")
    pred = prediction("node2-mig", "203.0.113.12", "br0", "migration_host", why)
    fix = path_fix(TOPO, "node2", "san0", pred, hosts=hosts, vm="vm01")
    assert fix.startswith("node2's migration_host 'node2-mig' resolves here to 203.0.113.12, not to its san0 address")
    assert "point that name at 198.18.0.12 (hosts file or DNS)" in fix
    assert 'or set migration_host = "node2-san" in node2\'s /etc/libvirt/qemu.conf' in fix
    assert "virsh migrate" not in fix


def test_policy_rule_sending_the_right_address_out_of_the_wrong_interface(hosts: Path) -> None:
    text = "100: from all to 198.18.0.12/32 lookup 100"
    pred = prediction("198.18.0.12", "198.18.0.12", "br0", "migrate-uri", Reason("policy rule", text), table=100)
    pred = replace(pred, rule=PolicyRule(100, text, 100))
    fix = path_fix(TOPO, "node2", "san0", pred, hosts=hosts)
    assert fix.startswith("policy rule `100: from all to 198.18.0.12/32 lookup 100` sends 198.18.0.12 to table 100")
    assert "out of br0" in fix
    assert "(`ip rule del priority 100`)" in fix
    assert "make that table route 198.18.0.12 dev san0" in fix
    assert "migration_host" not in fix


@pytest.mark.parametrize(
    "rule",
    [
        PolicyRule(32766, "32766: from all lookup main", 254),
        PolicyRule(0, "0: from all lookup local", 255),
        None,  # predict found no rule that explains the answer
    ],
)
def test_main_table_route_out_of_the_wrong_interface(hosts: Path, rule: PolicyRule | None) -> None:
    pred = replace(prediction("node2-san", "198.18.0.12", "br0", "via"), rule=rule)
    fix = path_fix(TOPO, "node2", "san0", pred, hosts=hosts)
    assert fix.startswith("the route to 198.18.0.12 leaves by br0: `ip route replace 198.18.0.12 dev san0`")
    assert "ip rule del" not in fix


def test_no_name_on_the_expected_subnet(hosts: Path) -> None:
    pred = prediction("node2", "203.0.113.12", "br0", "hostname")
    fix = path_fix(TOPO, "node2", "san1", pred, hosts=hosts)
    assert fix.startswith("give node2 a name on 198.18.1.11/24 (a hosts entry such as 'node2-san1' or DNS)")
    assert "set migration_host to it in node2's /etc/libvirt/qemu.conf" in fix
    assert "--migrate-uri tcp://<its address there>" in fix
    # An interface without an address of its own cannot be named at all.
    assert path_fix(TOPO, "node2", "eth0", pred, hosts=hosts).startswith("eth0 has no address on this host")


# --- several migration connections on one bond member --------------------------------------------

BONDED = Topology(
    "node1",
    (
        Interface("eno1", 2, "physical", master="bond0", operstate="UP"),
        Interface("eno2", 3, "physical", master="bond0", operstate="UP"),
        Interface(
            "bond0",
            4,
            "bond",
            members=("eno1", "eno2"),
            addresses=("203.0.113.11/24",),
            bond=BondInfo("802.3ad", "layer2+3"),
        ),
    ),
)
MULTIFD = tuple(
    Connection("203.0.113.11", 40000 + i, "203.0.113.12", 49152, 10**8, 0, 70000, ("bond0",), kind="multifd")
    for i in range(4)
)


def hashed(policy: str) -> dict[tuple[str, int], str]:
    members = BONDED.get("bond0").members
    out = {}
    for c in MULTIFD:
        flow = bonds.Flow("52:54:00:0b:00:01", "52:54:00:0c:00:02", c.client, c.server, c.client_port, c.server_port)
        out[(c.client, c.client_port)] = bonds.member_for(policy, members, flow, "big")
    return out


def test_layer23_puts_every_connection_on_one_member() -> None:
    member_of = hashed("layer2+3")
    # layer2+3 ignores ports: 0x0803 ^ 0x00000007 folds to 0x080C, even -> eno1 for all four.
    assert set(member_of.values()) == {"eno1"}
    finding = bond_share(BONDED, MULTIFD, member_of, "bond0")
    assert finding is not None
    assert (finding.code, finding.severity) == ("bond-member-shared", "warning")
    assert finding.message == "all 4 migration connections hash to eno1 of bond0 (802.3ad, layer2+3)"
    assert "xmit_hash_policy=layer3+4" in finding.fix


def test_spread_connections_are_fine() -> None:
    member_of = {(c.client, c.client_port): ("eno1", "eno2")[c.client_port % 2] for c in MULTIFD}
    assert bond_share(BONDED, MULTIFD, member_of, "bond0") is None
    # layer3+4 hashes ports. With dport 49152 (c0 00) and addresses xoring to 00000007, the member is bit 1
    # of the XOR of all bytes: sport 9c40 -> 9c^40^c0^07 = 0x1b (eno2), 9c41 -> 0x1a (eno2),
    # 9c42 -> 0x19 (eno1), 9c43 -> 0x18 (eno1).
    assert list(hashed("layer3+4").values()) == ["eno2", "eno2", "eno1", "eno1"]
    assert bond_share(BONDED, MULTIFD, hashed("layer3+4"), "bond0") is None


def test_shared_member_under_layer34_suggests_more_connections() -> None:
    l34 = replace(
        BONDED,
        interfaces=tuple(
            replace(i, bond=BondInfo("balance-xor", "layer3+4")) if i.bond else i for i in BONDED.interfaces
        ),
    )
    member_of = {(c.client, c.client_port): "eno2" for c in MULTIFD}
    finding = bond_share(l34, MULTIFD, member_of, "bond0")
    assert finding is not None and "(balance-xor, layer3+4)" in finding.message
    assert "--parallel" in finding.fix and "layer3+4 on the bond" not in finding.fix


def test_bond_share_needs_a_bond_and_two_connections() -> None:
    member_of = {(c.client, c.client_port): "eno1" for c in MULTIFD}
    assert bond_share(BONDED, MULTIFD[:1], member_of, "bond0") is None
    assert bond_share(BONDED, MULTIFD, member_of, "eno1") is None
    assert bond_share(BONDED, MULTIFD, {}, "bond0") is None


# --- slower links ----------------------------------------------------------------------------------


def test_chain_mbps_is_the_slowest_known_link() -> None:
    assert chain_mbps(TOPO, ("br0", "eth0")) == 1000  # the bridge has no speed; its port is shaped
    assert chain_mbps(TOPO, ("san0",)) == 10000
    assert chain_mbps(TOPO, ("lo",)) is None
    members = replace(
        BONDED, interfaces=tuple(i if i.bond else replace(i, speed_mbps=10000) for i in BONDED.interfaces)
    )
    assert chain_mbps(members, ("bond0", "eno1", "eno2")) == 10000  # one stream: one member, not the sum
    slow_member = replace(members.get("eno2"), rate_limit_mbps=2500)
    shaped = replace(members, interfaces=(members.get("eno1"), slow_member, members.get("bond0")))
    assert chain_mbps(shaped, ("bond0", "eno1", "eno2")) == 2500


def slower(topo: Topology, egress: str, dest: str, hosts: Path) -> list[Finding]:
    """predict's slower-link findings with prescribe's fixes, as the conductor puts them together."""
    found = tuple(slower_links(topo, egress, dest, hosts))
    return list(prescribe.attach(found, prescribe.Context(topo, dest, hosts=hosts)))


def test_shaped_lan_with_a_faster_san(hosts: Path) -> None:
    findings = slower(TOPO, "br0", "node2", hosts)
    assert len(findings) == 1
    (f,) = findings
    assert (f.code, f.severity) == ("slower-link", "warning")
    assert f.message == (
        "the stream will take br0 (1000 Mbit/s) although faster links also reach node2: "
        "san0 (10000 Mbit/s, node2-san = 198.18.0.12)"
    )
    assert f.fix == 'migrate over san0: --via san0, or migration_host = "node2-san" on node2'
    # san1 is as fast but node2 has no name there; ring1 is faster still but carries corosync.
    assert "san1" not in f.message and "ring1" not in f.message + f.fix


def test_corosync_link_is_never_suggested(hosts: Path) -> None:
    unlabelled = replace(TOPO, interfaces=tuple(replace(i, role=None) for i in TOPO.interfaces))
    (f,) = slower(unlabelled, "br0", "node2", hosts)
    assert "--via ring1" in f.fix  # without the label the 25000 Mbit/s ring link would be chosen
    assert slower_links(TOPO, "san0", "node2", hosts) == []  # only the corosync link is faster than san0


def test_no_finding_without_a_known_speed_or_a_faster_named_link(hosts: Path) -> None:
    unknown = replace(
        TOPO, interfaces=tuple(replace(i, speed_mbps=None, rate_limit_mbps=None) for i in TOPO.interfaces)
    )
    assert slower_links(unknown, "br0", "node2", hosts) == []
    assert slower_links(TOPO, "br0", "node3", hosts) != []  # node3-san is on san0's subnet too
    assert slower_links(TOPO, "br0", "node4", hosts) == []
