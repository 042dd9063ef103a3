"""bonds: the kernel's transmit hash worked by hand, and predict.bond_reason on a netlink snapshot.

Every expected member below comes from the formulas in verifier/bonds.py's docstring (bonding.rst,
bond_main.c), with the arithmetic written out. Addresses and the port pair are 32-bit words loaded
from network-order bytes: order='big' reads them as written, order='little' byte-reverses them.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from verifier.bonds import (
    BY_NAME,
    GENERATIONS,
    Flow,
    generation_for,
    layer2,
    layer23,
    layer34,
    member_for,
    select,
    xmit_hash,
)
from verifier.model import Connection, Coverage, InterfaceReport, Leg, MigrationResult, Topology
from verifier.predict import bond_reason
from verifier.reconcile import bond_findings
from verifier.topology import parse

DATA = Path(__file__).parent / "data"
LINKS = json.loads((DATA / "host-bond-bridge.links.json").read_text())
ADDRS = json.loads((DATA / "host-bond-bridge.addrs.json").read_text())
TWO, THREE = ("m0", "m1"), ("m0", "m1", "m2")


def flow(src: str, dst: str, sport: int = 40000, dport: int = 49152, smac: str = "01", dmac: str = "02") -> Flow:
    return Flow(f"52:54:00:0b:00:{smac}", f"52:54:00:0c:00:{dmac}", src, dst, sport, dport)


# --- layer2: h = srcMAC[5] ^ dstMAC[5] ^ ethertype -------------------------------------------------

L2_CASES = [
    # 0x01 ^ 0x02 ^ 0x0800 = 0x0803 = 2051; 2051 % 2 = 1; 2051 = 3*683 + 2
    (flow("10.0.0.1", "10.0.0.2", smac="01", dmac="02"), 0x0803, 1, 2),
    # 0x07 ^ 0x00 ^ 0x0800 = 0x0807 = 2055; 2055 % 2 = 1; 2055 = 3*685 + 0
    (flow("10.0.0.1", "10.0.0.2", smac="07", dmac="00"), 0x0807, 1, 0),
    # IPv6: 0x01 ^ 0x02 ^ 0x86DD = 0x86DE = 34526; 34526 % 2 = 0; 34526 = 3*11508 + 2
    (flow("2001:db8::1", "2001:db8::2", smac="01", dmac="02"), 0x86DE, 0, 2),
]


@pytest.mark.parametrize(("f", "want", "of2", "of3"), L2_CASES)
def test_layer2_by_hand(f: Flow, want: int, of2: int, of3: int) -> None:
    assert layer2(f) == want
    assert member_for("layer2", TWO, f) == TWO[of2]
    assert member_for("layer2", THREE, f) == THREE[of3]


def test_layer2_ignores_addresses_and_ports() -> None:
    a = flow("10.0.0.1", "10.0.0.2", sport=40000)
    b = flow("172.16.9.9", "172.16.1.1", sport=55555, dport=49200)
    assert layer2(a) == layer2(b) == 0x0803


# --- layer2+3: h = layer2 ^ saddr ^ daddr; h ^= h >> 16; h ^= h >> 8 -------------------------------

L23_CASES = [
    # 10.0.0.1 -> 10.0.0.2, l2 = 0x0803. Bytes 0a000001 ^ 0a000002 = 00000003.
    #  big:    0x0803 ^ 0x00000003 = 0x00000800; ^>>16 -> 0x00000800; ^>>8 (0x08) -> 0x00000808 = 2056
    #  little: 0x0803 ^ 0x03000000 = 0x03000803; ^>>16 (0x0300) -> 0x03000B03;
    #          ^>>8 (0x0003000B) -> 0x03030B08 = 50531080
    (flow("10.0.0.1", "10.0.0.2"), 0x0808, 0x03030B08),
    # 192.168.1.10 -> 192.168.2.20, macs aa/bb: l2 = 0xaa ^ 0xbb ^ 0x0800 = 0x0811.
    # Bytes c0a8010a ^ c0a80214 = 0000031e.
    #  big:    0x0811 ^ 0x0000031E = 0x00000B0F; ^>>16 -> 0x0B0F; ^>>8 (0x0B) -> 0x0B04 = 2820
    #  little: 0x0811 ^ 0x1E030000 = 0x1E030811; ^>>16 (0x1E03) -> 0x1E031612;
    #          ^>>8 (0x001E0316) -> 0x1E1D1504 = 505222404
    (flow("192.168.1.10", "192.168.2.20", smac="aa", dmac="bb"), 0x0B04, 0x1E1D1504),
    # 10.1.2.3 -> 10.4.5.6, l2 = 0x0803. Bytes 0a010203 ^ 0a040506 = 00050705.
    #  big:    0x0803 ^ 0x00050705 = 0x00050F06; ^>>16 (0x0005) -> 0x00050F03;
    #          ^>>8 (0x0000050F) -> 0x00050A0C = 330252
    #  little: 0x0803 ^ 0x05070500 = 0x05070D03; ^>>16 (0x0507) -> 0x05070804;
    #          ^>>8 (0x00050708) -> 0x05020F0C = 84021004
    (flow("10.1.2.3", "10.4.5.6"), 0x00050A0C, 0x05020F0C),
    # IPv6 folds each address to one word by XOR of its four words (ipv6_addr_hash).
    # 2001:db8::1   -> 20010db8 ^ 00000000 ^ 0 ^ 00000001 = 0x20010DB9 (big)
    # 2001:db8:1::2 -> 20010db8 ^ 00010000 ^ 0 ^ 00000002 = 0x20000DBA (big); xor = 0x00010003.
    # l2 = 0x01 ^ 0x02 ^ 0x86DD = 0x86DE.
    #  big:    0x86DE ^ 0x00010003 = 0x000186DD; ^>>16 (0x0001) -> 0x000186DC;
    #          ^>>8 (0x00000186) -> 0x0001875A = 100186
    #  little: words byte-reversed: 0xB90D0120 ^ 0xBA0D0020 = 0x03000100; 0x86DE ^ that = 0x030087DE;
    #          ^>>16 (0x0300) -> 0x030084DE; ^>>8 (0x00030084) -> 0x0303845A = 50562138
    (flow("2001:db8::1", "2001:db8:1::2"), 0x0001875A, 0x0303845A),
]


@pytest.mark.parametrize(("f", "big", "little"), L23_CASES)
def test_layer23_by_hand(f: Flow, big: int, little: int) -> None:
    assert layer23(f, "big") == big
    assert layer23(f, "little") == little
    for order, h in (("big", big), ("little", little)):
        assert member_for("layer2+3", TWO, f, order) == TWO[h % 2]
        assert member_for("layer2+3", THREE, f, order) == THREE[h % 3]


def test_layer23_members_worked_out() -> None:
    a, c, e, v6 = (case[0] for case in L23_CASES)
    # 2056 % 3 = 1 (3*685 = 2055); 50531080: digit sum 22 -> % 3 = 1
    assert member_for("layer2+3", THREE, a, "big") == member_for("layer2+3", THREE, a, "little") == "m1"
    # 2820 = 3*940 -> 0; 505222404: digit sum 24 -> 0; both even
    assert member_for("layer2+3", THREE, c, "big") == "m0"
    assert member_for("layer2+3", TWO, c, "little") == "m0"
    # 330252: digit sum 15 -> 0; 84021004: digit sum 19 -> 1 -- here the byte order matters
    assert member_for("layer2+3", THREE, e, "big") == "m0"
    assert member_for("layer2+3", THREE, e, "little") == "m1"
    # 100186 is even -> m0 of two; digit sum 16 -> m1 of three; 50562138: digit sum 30 -> m0 of three
    assert member_for("layer2+3", TWO, v6, "big") == "m0"
    assert member_for("layer2+3", THREE, v6, "big") == "m1"
    assert member_for("layer2+3", THREE, v6, "little") == "m0"


def test_layer23_ignores_ports() -> None:
    a = flow("10.0.0.1", "10.0.0.2", sport=40000)
    b = flow("10.0.0.1", "10.0.0.2", sport=40001, dport=49153)
    assert layer23(a, "little") == layer23(b, "little")
    assert layer23(a, "big") == layer23(b, "big")


# --- layer3+4: h = ports ^ saddr ^ daddr; h ^= h >> 16; h ^= h >> 8; h >>= 1 -------------------------

L34_CASES = [
    # 198.18.0.11:40000 -> 198.18.0.12:49152. Port bytes 9c40 c000; address bytes c612000b ^ c612000c = 00000007.
    #  big:    0x9C40C000 ^ 7 = 0x9C40C007; ^>>16 (0x9C40) -> 0x9C405C47; ^>>8 (0x009C405C) -> 0x9CDC1C1B;
    #          >>1 -> 0x4E6E0E0D = 1315835405 (odd; digit sum 35 -> % 3 = 2)
    #  little: int.from_bytes(9c40c000, 'little') = 0x00C0409C; ^ 0x07000000 = 0x07C0409C;
    #          ^>>16 (0x07C0) -> 0x07C0475C; ^>>8 (0x0007C047) -> 0x07C7871B;
    #          >>1 -> 0x03E3C38D = 65258381 (odd; digit sum 38 -> % 3 = 2)
    (flow("198.18.0.11", "198.18.0.12", 40000, 49152), 0x4E6E0E0D, 0x03E3C38D, (1, 2), (1, 2)),
    # Same, sport 40002 = 0x9C42.
    #  big:    0x9C42C007; ^>>16 -> 0x9C425C45; ^>>8 (0x009C425C) -> 0x9CDE1E19; >>1 -> 0x4E6F0F0C = 1315901196
    #          (even; digit sum 36 -> 0)
    #  little: 0x00C0429C ^ 0x07000000 = 0x07C0429C; ^>>16 -> 0x07C0455C; ^>>8 (0x0007C045) -> 0x07C78519;
    #          >>1 -> 0x03E3C28C = 65258124 (even; digit sum 33 -> 0)
    (flow("198.18.0.11", "198.18.0.12", 40002, 49152), 0x4E6F0F0C, 0x03E3C28C, (0, 0), (0, 0)),
    # 10.0.0.1:50000 -> 10.0.0.2:49153. Port bytes c350 c001; addresses xor to 00000003.
    #  big:    0xC350C001 ^ 3 = 0xC350C002; ^>>16 (0xC350) -> 0xC3500352; ^>>8 (0x00C35003) -> 0xC3935351;
    #          >>1 -> 0x61C9A9A8 = 1640606120 (even; digit sum 26 -> 2)
    #  little: 0x01C050C3 ^ 0x03000000 = 0x02C050C3; ^>>16 (0x02C0) -> 0x02C05203;
    #          ^>>8 (0x0002C052) -> 0x02C29251; >>1 -> 0x01614928 = 23152936 (even; digit sum 31 -> 1)
    (flow("10.0.0.1", "10.0.0.2", 50000, 49153), 0x61C9A9A8, 0x01614928, (0, 2), (0, 1)),
]


@pytest.mark.parametrize(("f", "big", "little", "big_idx", "little_idx"), L34_CASES)
def test_layer34_by_hand(f: Flow, big: int, little: int, big_idx: tuple, little_idx: tuple) -> None:
    assert layer34(f, "big") == big
    assert layer34(f, "little") == little
    for order, (of2, of3) in (("big", big_idx), ("little", little_idx)):
        assert member_for("layer3+4", TWO, f, order) == TWO[of2]
        assert member_for("layer3+4", THREE, f, order) == THREE[of3]


def test_layer34_default_order_is_the_hosts() -> None:
    f = L34_CASES[2][0]
    assert layer34(f) == {"big": 0x61C9A9A8, "little": 0x01614928}[sys.byteorder]


def test_unpredictable_policies_and_modes() -> None:
    f = L34_CASES[0][0]
    assert member_for("encap3+4", TWO, f) is None
    assert member_for("encap2+3", TWO, f) is None
    assert member_for("vlan+srcmac", TWO, f) is None
    # active-backup is a bond mode, not a transmit hash policy: nothing to hash.
    assert member_for("active-backup", TWO, f) is None
    assert member_for("layer3+4", (), f) is None


# --- predict.bond_reason on the bond-under-bridge snapshot -------------------------------------------

# The bond's MAC (52:54:00:0b:00:01) talking from br0's address to the peer on the same LAN.
LAN = "203.0.113.11", "203.0.113.12"


def _set(msg: dict[str, Any], name: str, value: Any) -> None:
    for pair in msg["attrs"]:
        if pair[0] == name:
            pair[1] = value
            return
    msg["attrs"].append([name, value])


def _link(links: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(m for m in links if ["IFLA_IFNAME", name] in m["attrs"])


def bond_topology(
    mode: int | None = None, policy: int | None = None, down: tuple[str, ...] = (), eno3: bool = False
) -> Topology:
    links = copy.deepcopy(LINKS)
    bond = _link(links, "bond0")
    info = next(v for k, v in bond["attrs"] if k == "IFLA_LINKINFO")
    data = next(v for k, v in info["attrs"] if k == "IFLA_INFO_DATA")
    if mode is not None:
        _set(data, "IFLA_BOND_MODE", mode)
    if policy is not None:
        _set(data, "IFLA_BOND_XMIT_HASH_POLICY", policy)
    if eno3:
        extra = copy.deepcopy(_link(links, "eno2"))
        extra["index"] = 8
        _set(extra, "IFLA_IFNAME", "eno3")
        links.append(extra)
    for name in down:
        _set(_link(links, name), "IFLA_OPERSTATE", "DOWN")
    return parse(links, ADDRS, hostname="hv1")


def test_active_backup_names_the_active_member() -> None:
    topo = bond_topology()
    reason = bond_reason(topo, "bond0", flow(*LAN))
    assert reason.step == "bond"
    assert "active member eno2" in reason.detail
    assert "members eno1 up, eno2 up" in reason.detail
    assert "hash" not in reason.detail


# Two members: the member index is the hash's low bit, which is the XOR of the pre-fold word's bytes
# (bit 1 for layer3+4) and so the same for either byte order; these predictions hold on any host.
# 203.0.113.11 ^ 203.0.113.12 = 00000007, exactly as 198.18.0.11 ^ .12 above, so with dport 49152:
#   sport 40000 -> 0x4E6E0E0D / 0x03E3C38D: odd -> eno2; % 3 = 2 -> eno3
#   sport 40001: big 0x9C41C007 -> 0x9CDD1D1A -> 0x4E6E8E8D = 1315868301 (odd, digit sum 36 -> 0)
#                little 0x07C0419C -> 0x07C7861A -> 0x03E3C30D = 65258253 (odd, digit sum 36 -> 0)
#   sport 40002 -> 0x4E6F0F0C / 0x03E3C28C: even -> eno1; % 3 = 0


@pytest.mark.parametrize(("sport", "want"), [(40000, "eno2"), (40001, "eno2"), (40002, "eno1")])
def test_8023ad_layer34_picks_the_hashed_member(sport: int, want: str) -> None:
    topo = bond_topology(mode=4, policy=1)
    info = topo.get("bond0").bond
    assert (info.mode, info.xmit_hash_policy) == ("802.3ad", "layer3+4")
    reason = bond_reason(topo, "bond0", flow(*LAN, sport=sport))
    assert f"layer3+4 hash of 203.0.113.11:{sport} -> 203.0.113.12:49152 picks {want}" in reason.detail


@pytest.mark.parametrize(("sport", "want"), [(40000, "eno3"), (40001, "eno1"), (40002, "eno1")])
def test_8023ad_layer34_with_three_members(sport: int, want: str) -> None:
    topo = bond_topology(mode=4, policy=1, eno3=True)
    assert topo.get("bond0").members == ("eno1", "eno2", "eno3")
    assert bond_reason(topo, "bond0", flow(*LAN, sport=sport)).detail.count(f"picks {want}") == 1


def test_8023ad_without_a_flow_says_each_connection_hashes() -> None:
    reason = bond_reason(bond_topology(mode=4, policy=1), "bond0", None)
    assert "layer3+4: each connection hashes separately" in reason.detail
    assert "picks" not in reason.detail


def test_balance_xor_layer23_uses_only_up_members() -> None:
    # l2 = 0x01 ^ 0x02 ^ 0x0800 = 0x0803; bytes 08 ^ 03 ^ 07 (the addresses) = 0x0C: even -> eno1 of (eno1, eno2).
    f = flow(*LAN)
    topo = bond_topology(mode=2, policy=2)
    assert (topo.get("bond0").bond.mode, topo.get("bond0").bond.xmit_hash_policy) == ("balance-xor", "layer2+3")
    assert (
        "layer2+3 hash of 203.0.113.11:40000 -> 203.0.113.12:49152 picks eno1" in bond_reason(topo, "bond0", f).detail
    )
    # layer2+3 ignores ports: another connection between the same hosts lands on the same member.
    assert "picks eno1" in bond_reason(topo, "bond0", flow(*LAN, sport=40001)).detail
    # eno1 down: the hash runs over the usable members only, (eno2,).
    down = bond_topology(mode=2, policy=2, down=("eno1",))
    detail = bond_reason(down, "bond0", f).detail
    assert "picks eno2" in detail
    assert "members eno1 down, eno2 up" in detail
    assert "each connection hashes separately" in bond_reason(topo, "bond0", None).detail


def test_encap_and_round_robin_are_not_predicted() -> None:
    encap = bond_reason(bond_topology(mode=4, policy=4), "bond0", flow(*LAN))
    assert "encap3+4 cannot be predicted, only observed" in encap.detail
    rr = bond_reason(bond_topology(mode=0), "bond0", flow(*LAN))
    assert "mode balance-rr: the member is not predictable per flow" in rr.detail


def _leg_over_bond(sports: tuple[int, ...], eno1: int, eno2: int) -> Leg:
    conns = tuple(Connection(LAN[0], s, LAN[1], 49152, 50_000_000, 0, 1000, ("br0", "bond0")) for s in sports)
    reports = tuple(
        InterfaceReport(n, "x", None, None, b, 0, 10, b, 1.0, 0)
        for n, b in (("br0", eno1 + eno2), ("bond0", eno1 + eno2), ("eno1", eno1), ("eno2", eno2))
    )
    return Leg(
        "outbound",
        "observed",
        "br0",
        ("br0", "bond0", "eno1", "eno2"),
        reports,
        Coverage(1.0, 1, 1, True),
        MigrationResult("completed", None),
        conns,
    )


def test_after_capture_the_report_names_each_flows_member_and_a_shared_member() -> None:
    # 802.3ad layer3+4, worked out above: sports 40000 and 40001 both hash to eno2.
    topo = bond_topology(mode=4, policy=1)
    findings = bond_findings(topo, _leg_over_bond((40000, 40001), eno1=0, eno2=100), "02:00:00:00:00:02")
    members = next(f for f in findings if f.code == "bond-members")
    assert f"{LAN[0]}:40000 -> eno2" in members.message and f"{LAN[0]}:40001 -> eno2" in members.message
    assert "saw the most on eno2" in members.message
    shared = next(f for f in findings if f.code == "bond-member-shared")
    assert "all 2 migration connections hash to eno2" in shared.message
    # 40000 -> eno2 and 40002 -> eno1: spread, so no shared-member note.
    spread = bond_findings(topo, _leg_over_bond((40000, 40002), eno1=50, eno2=50), None)
    assert not any(f.code == "bond-member-shared" for f in spread)
    assert "next hop MAC unknown" in next(f for f in spread if f.code == "bond-members").message


def test_after_capture_active_backup_names_the_active_member() -> None:
    findings = bond_findings(bond_topology(), _leg_over_bond((40000,), eno1=0, eno2=100), None)
    assert f"{LAN[0]}:40000 -> eno2" in findings[0].message


# --- kernel generations ------------------------------------------------------------------------------
# Each formula below is the bond_main.c of that generation (see verifier/bonds.py's docstring).
# One flow, worked through every generation: MACs ..:01 -> ..:02, 10.0.0.1:50000 -> 10.0.0.2:49153.
#   MACs:      0x01 ^ 0x02 = 0x03
#   addresses: 0a000001 ^ 0a000002 = 00000003 -> big 0x00000003, little 0x03000000
#   ports:     bytes c350 c001; 50000 ^ 49153 = 0xC350 ^ 0xC001 = 0x0351
#              as one 32-bit word: big 0xC350C001, little 0x01C050C3
#   EtherType: 0x0800; read as a native __be16 (3.17-5.14): big 0x0800, little 0x0008
A = Flow("52:54:00:0b:00:01", "52:54:00:0c:00:02", "10.0.0.1", "10.0.0.2", 50000, 49153)

GEN_CASES = [
    # pre-3.7 and 3.7-3.12 (3.0.101 bond_xmit_hash_policy_*): ntohl/ntohs, so no byte-order effect.
    #   layer2   = 0x01 ^ 0x02 = 3
    #   layer2+3 = (ntohl(saddr ^ daddr) & 0xffff) ^ 3 = 0x0003 ^ 0x03 = 0
    #   layer3+4 = (sport ^ dport) ^ (ntohl(saddr ^ daddr) & 0xffff) = 0x0351 ^ 0x0003 = 0x0352 = 850
    ("pre-3.7", "layer2", 3, 3),
    ("pre-3.7", "layer2+3", 0, 0),
    ("pre-3.7", "layer3+4", 0x352, 0x352),
    ("3.7-3.12", "layer3+4", 0x352, 0x352),
    # 3.13-3.16 (bond_xmit_hash, bond_eth_hash = MACs only), no >> 1:
    #   layer2   = 3
    #   layer2+3 big:    3 ^ 0x00000003 = 0 -> fold 0
    #            little: 3 ^ 0x03000000 = 0x03000003; ^>>16 (0x0300) -> 0x03000303;
    #                    ^>>8 (0x00030003) -> 0x03030300
    #   layer3+4 big:    0xC350C001 ^ 3 = 0xC350C002; ^>>16 (0xC350) -> 0xC3500352;
    #                    ^>>8 (0x00C35003) -> 0xC3935351
    #            little: 0x01C050C3 ^ 0x03000000 = 0x02C050C3; ^>>16 (0x02C0) -> 0x02C05203;
    #                    ^>>8 (0x0002C052) -> 0x02C29251
    ("3.13-3.16", "layer2", 3, 3),
    ("3.13-3.16", "layer2+3", 0, 0x03030300),
    ("3.13-3.16", "layer3+4", 0xC3935351, 0x02C29251),
    # 3.17-4.13: bond_eth_hash ^ ep->h_proto (native).
    #   layer2   big: 3 ^ 0x0800 = 0x0803; little: 3 ^ 0x0008 = 0x000B
    #   layer2+3 big:    0x0803 ^ 3 = 0x0800; ^>>8 (0x08) -> 0x0808
    #            little: 0x000B ^ 0x03000000 = 0x0300000B; ^>>16 (0x0300) -> 0x0300030B;
    #                    ^>>8 (0x00030003) -> 0x03030308
    #   layer3+4 as 3.13 (no EtherType in it)
    ("3.17-4.13", "layer2", 0x0803, 0x000B),
    ("3.17-4.13", "layer2+3", 0x0808, 0x03030308),
    ("3.17-4.13", "layer3+4", 0xC3935351, 0x02C29251),
    # 4.14-5.14: as 3.17, then `return hash >> 1` for every IP policy (not layer2).
    #   layer2+3 0x0808 >> 1 = 0x0404; 0x03030308 >> 1 = 0x01818184
    #   layer3+4 0xC3935351 >> 1 = 0x61C9A9A8; 0x02C29251 >> 1 = 0x01614928
    ("4.14-5.14", "layer2", 0x0803, 0x000B),
    ("4.14-5.14", "layer2+3", 0x0404, 0x01818184),
    ("4.14-5.14", "layer3+4", 0x61C9A9A8, 0x01614928),
    # 5.15-5.17: be16_to_cpu(h_proto) = 0x0800 on either host; still >> 1 for layer2+3.
    #   layer2+3 little: 0x0803 ^ 0x03000000 = 0x03000803; ^>>16 -> 0x03000B03; ^>>8 -> 0x03030B08;
    #                    >> 1 -> 0x01818584
    ("5.15-5.17", "layer2", 0x0803, 0x0803),
    ("5.15-5.17", "layer2+3", 0x0404, 0x01818584),
    ("5.15-5.17", "layer3+4", 0x61C9A9A8, 0x01614928),
    # 5.18+: the bit is dropped for layer3+4 only (the L23_CASES/L34_CASES above).
    ("5.18+", "layer2", 0x0803, 0x0803),
    ("5.18+", "layer2+3", 0x0808, 0x03030B08),
    ("5.18+", "layer3+4", 0x61C9A9A8, 0x01614928),
]


@pytest.mark.parametrize(("gen", "policy", "big", "little"), GEN_CASES)
def test_xmit_hash_by_generation(gen: str, policy: str, big: int, little: int) -> None:
    assert xmit_hash(policy, A, gen, order="big") == big
    assert xmit_hash(policy, A, BY_NAME[gen], order="little") == little
    for order, h in (("big", big), ("little", little)):
        sel = select(policy, 3, A, gen, order)
        assert (sel.member_index, sel.hash, sel.generation.name) == (h % 3, h, gen)
        assert member_for(policy, THREE, A, order, kernel=gen) == THREE[h % 3]


def test_same_flow_changes_member_across_generations() -> None:
    # layer3+4 of two members, big-endian host: 850 (3.0) even -> m0; 0xC3935351 (3.13) odd -> m1;
    # 0x61C9A9A8 (4.14+) even -> m0. layer2+3: 0 -> m0 (3.0); 0x0808 (3.17) -> m0; 0x0404 -> m0.
    picks = [member_for("layer3+4", TWO, A, "big", kernel=k) for k in ("3.0.101-63-default", "3.16.0-4-amd64", "5.4.0")]
    assert picks == ["m0", "m1", "m0"]


def test_ipv6_by_generation() -> None:
    # 2001:db8::1:50000 -> 2001:db8:1::2:49153.
    v6 = Flow(A.src_mac, A.dst_mac, "2001:db8::1", "2001:db8:1::2", 50000, 49153)
    # 3.0-3.6 hash only ETH_P_IP: IPv6 falls back to the MACs, 0x01 ^ 0x02 = 3.
    assert xmit_hash("layer3+4", v6, "pre-3.7") == xmit_hash("layer2+3", v6, "pre-3.7") == 3
    # 3.7-3.12 use address words 1-3, raw: s1 ^ d1 = 00000000 ^ 00010000, s3 ^ d3 = 1 ^ 2 = 3.
    #  layer2+3 big: v = 0x00010003; v ^= (v>>24 = 0) ^ (v>>16 = 0x1) ^ (v>>8 = 0x0100) -> 0x00010102;
    #           ^ MACs 3 -> 0x00010101
    #  layer3+4 big: v = ports 0x0351 ^ 0x00010003 = 0x00010352; ^ (0 ^ 0x1 ^ 0x0103) -> 0x00010250
    #  little: words byte-reversed: 00 01 00 00 -> 0x00000100, 00 00 00 03 -> 0x03000000; v = 0x03000100
    #  layer2+3: v ^ (0x03 ^ 0x0300 ^ 0x030001 = 0x030302) = 0x03030202; ^ 3 -> 0x03030201
    #  layer3+4: 0x0351 ^ 0x03000100 = 0x03000251; ^ (0x03 ^ 0x0300 ^ 0x030002 = 0x030301) -> 0x03030150
    assert xmit_hash("layer2+3", v6, "3.7-3.12", order="big") == 0x00010101
    assert xmit_hash("layer3+4", v6, "3.7-3.12", order="big") == 0x00010250
    assert xmit_hash("layer2+3", v6, "3.7-3.12", order="little") == 0x03030201
    assert xmit_hash("layer3+4", v6, "3.7-3.12", order="little") == 0x03030150
    # 3.17-4.13 layer2 on little-endian: 3 ^ 0x86DD read natively (0xDD86) = 0xDD85.
    assert xmit_hash("layer2", v6, "3.17-4.13", order="little") == 0xDD85


@pytest.mark.parametrize("gen", [g.name for g in GENERATIONS])
def test_fragments_hash_with_ports_zero_and_udp_like_tcp(gen: str) -> None:
    zero = Flow(A.src_mac, A.dst_mac, A.src, A.dst, 0, 0)
    for order in ("big", "little"):
        frag = xmit_hash("layer3+4", A, gen, fragment=True, order=order)
        assert frag == xmit_hash("layer3+4", zero, gen, order=order)
        udp = Flow(A.src_mac, A.dst_mac, A.src, A.dst, A.sport, A.dport, "udp")
        assert xmit_hash("layer3+4", udp, gen, order=order) == xmit_hash("layer3+4", A, gen, order=order)
        assert xmit_hash("layer3+4", A, gen, proto="udp", order=order) == xmit_hash("layer3+4", A, gen, order=order)


def test_fragment_values_by_hand() -> None:
    # Ports 0. 3.0: h = ntohl(saddr ^ daddr) & 0xffff = 3.
    # 5.18+ big: 0 ^ 3 = 3; folds to 3; >> 1 = 1. little: 0x03000000; ^>>16 -> 0x03000300;
    # ^>>8 (0x00030003) -> 0x03030303; >> 1 -> 0x01818181.
    frag = Flow(A.src_mac, A.dst_mac, A.src, A.dst, A.sport, A.dport, fragment=True)
    assert xmit_hash("layer3+4", frag, "pre-3.7") == 3
    assert xmit_hash("layer3+4", frag, "5.18+", order="big") == 1
    assert xmit_hash("layer3+4", frag, "5.18+", order="little") == 0x01818181
    # The port-less layer2+3 ignores the fragment flag.
    assert xmit_hash("layer2+3", frag, "5.18+", order="big") == 0x0808


RELEASES = [
    ("3.0.101-63-default", "pre-3.7"),  # SLES 11 SP4
    ("2.6.32-754.el6.x86_64", "pre-3.7"),
    ("3.6.0", "pre-3.7"),
    ("3.7.2", "3.7-3.12"),
    ("3.10.0-123.el7.x86_64", "3.7-3.12"),
    ("3.10.0-1160.119.1.el7.x86_64", "4.14-5.14"),  # read in 3.10.0-1160.el7's bond_main.c
    ("3.12.49-11-default", "3.7-3.12"),  # SLES 12
    ("3.13.0-170-generic", "3.13-3.16"),
    ("3.16.0-11-amd64", "3.13-3.16"),
    ("3.17.0", "3.17-4.13"),
    ("4.9.0-19-amd64", "3.17-4.13"),
    ("4.12.14-122.37-default", "3.17-4.13"),  # SLES 12 SP5
    ("4.14.0", "4.14-5.14"),
    ("4.18.0-553.el8_10.x86_64", "4.14-5.14"),
    ("5.14.21-150500.55.19-default", "4.14-5.14"),
    ("5.15.0-91-generic", "5.15-5.17"),
    ("5.15.37", "5.15-5.17"),
    ("5.15.38", "5.18+"),  # 49aefd131739 in the 5.15.38 stable release
    ("5.16.20", "5.15-5.17"),
    ("5.17.5-300.fc36.x86_64", "5.15-5.17"),
    ("5.17.6-300.fc36.x86_64", "5.18+"),
    ("5.18", "5.18+"),
    ("6.18.0-1-amd64", "5.18+"),
    ("5.18+", "5.18+"),
    ("pre-3.7", "pre-3.7"),
]


@pytest.mark.parametrize(("release", "want"), RELEASES)
def test_generation_for_real_releases(release: str, want: str) -> None:
    assert generation_for(release).name == want


@pytest.mark.parametrize("bad", ["", "linux", "v5.4", "5"])
def test_generation_for_rejects_non_releases(bad: str) -> None:
    with pytest.raises(ValueError, match="not a kernel release"):
        generation_for(bad)


def test_member_for_defaults_to_the_running_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        release = "3.0.101-63-default"

    monkeypatch.setattr(os, "uname", lambda: Uname())
    # 3.0 layer3+4: 850 even -> m0 of two; 850 = 3*283 + 1 -> m1 of three.
    assert member_for("layer3+4", TWO, A) == "m0"
    assert member_for("layer3+4", THREE, A) == "m1"
    assert select("layer3+4", 3, A).generation.name == "pre-3.7"


def test_bad_hash_inputs() -> None:
    with pytest.raises(ValueError, match="not predictable"):
        xmit_hash("encap3+4", A, "5.18+")
    with pytest.raises(ValueError, match="tcp or udp"):
        xmit_hash("layer3+4", A, "5.18+", proto="sctp")
    with pytest.raises(ValueError, match="address family"):
        xmit_hash("layer3+4", Flow(A.src_mac, A.dst_mac, "10.0.0.1", "::1", 1, 2), "5.18+")
    with pytest.raises(ValueError, match="at least one slave"):
        select("layer2", 0, A, "5.18+")


def test_a_member_other_than_the_hash_predicts_is_a_hash_model_mismatch() -> None:
    # 802.3ad layer3+4: 40000 and 40001 both hash to eno2 with this kernel's formula (above).
    topo = bond_topology(mode=4, policy=1)
    agree = bond_findings(topo, _leg_over_bond((40000, 40001), eno1=0, eno2=100), "02:00:00:00:00:02")
    assert not any(f.code == "hash-model-mismatch" for f in agree)
    # The sniffers saw the stream on eno1 instead: the model (or the assumed kernel) is wrong here.
    disagree = bond_findings(topo, _leg_over_bond((40000, 40001), eno1=100, eno2=0), "02:00:00:00:00:02")
    (mismatch,) = [f for f in disagree if f.code == "hash-model-mismatch"]
    assert "picks eno2" in mismatch.message and "saw the stream on eno1" in mismatch.message
    assert "kernel 5.18+ formula" in mismatch.message or "kernel " in mismatch.message
    assert mismatch.severity == "warning"
    members = next(f for f in disagree if f.code == "bond-members")
    assert "kernel hash" in members.message


def test_the_explanation_names_the_kernel_generation_assumed() -> None:
    reason = bond_reason(bond_topology(mode=4, policy=1), "bond0", flow(*LAN))
    assert f"(kernel {bonds_running_generation()} formula)" in reason.detail


def bonds_running_generation() -> str:
    from verifier.bonds import running_generation

    return running_generation().name
