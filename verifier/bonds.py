"""Which bond member carries a flow: the bonding driver's transmit hash, by kernel generation.

One TCP stream stays on one member; member = hash % slaves. The arithmetic changed with the kernel,
so every formula here is tied to the bond_main.c it was read from (drivers/net/bonding/):
  pre-3.7    3.0.101, 3.5.0, 3.6.0  bond_xmit_hash_policy_l2/_l23/_l34; IPv6 falls back to layer2
  3.7-3.12   3.7.2, 3.10.99         the same for IPv4; IPv6 hashed from address words 1-3
  3.13-3.16  3.13.10, 3.16.0        bond_xmit_hash + bond_flow_dissect + bond_eth_hash (MACs only)
  3.17-4.13  3.17.0                 bond_eth_hash adds ep->h_proto, read as a native 16-bit word
  4.14-5.14  4.14.0, 5.14-rc5       bond_xmit_hash ends `return hash >> 1` (every IP policy)
  5.15-5.17  5.17-rc5               bond_eth_hash uses be16_to_cpu(ep->h_proto) (XDP refactor)
  5.18+      5.15.55, 5.19.0        bond_ip_hash drops the bit only for layer3+4 (commit 49aefd131739,
                                    also in stable 5.15.38 and 5.17.6)
Since 3.13 the kernel loads addresses and the port pair as native 32-bit words (`(__force u32)`),
so the result depends on the host's byte order; before 3.13 IPv4 went through ntohl/ntohs and does
not. Distribution kernels backport: 3.10.0-1160.el7 carries the 4.14-5.14 code, and the >> 1 reached
stable 3.18/4.4/4.9 in Nov 2017, so a stable or vendor release can hash like a later generation.
encap2+3/encap3+4 and vlan+srcmac are not modelled (flow dissector / socket hash / VLAN id).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from typing import Literal, NamedTuple

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
POLICIES = ("layer2", "layer2+3", "layer3+4")
PROTOS = ("tcp", "udp")
ByteOrder = Literal["little", "big"]


@dataclass(frozen=True)
class Flow:
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    sport: int
    dport: int
    proto: str = "tcp"  # UDP ports hash exactly like TCP's in every generation read
    fragment: bool = False  # an IP fragment hashes with ports 0 (ip_is_fragment / frag_off check)


@dataclass(frozen=True)
class KernelGeneration:
    """One stretch of mainline releases whose bonding transmit hash is the same arithmetic."""

    name: str
    first: tuple[int, int]  # first mainline release of this generation
    source: str  # the bond_main.c read for it
    dissector: bool  # 3.13+: one bond_xmit_hash with the >>16, >>8 fold
    ipv6: bool  # 3.7+: IPv6 hashed from addresses (before: layer2 fallback)
    ethertype: Literal["none", "native", "host"]  # how bond_eth_hash mixes in h_proto
    drop_bit: frozenset[str]  # policies whose hash ends `>> 1`

    def __str__(self) -> str:
        return self.name


_IP = frozenset({"layer2+3", "layer3+4"})
GENERATIONS = (
    KernelGeneration("pre-3.7", (0, 0), "3.0.101 bond_xmit_hash_policy_l2/l23/l34", False, False, "none", frozenset()),
    KernelGeneration("3.7-3.12", (3, 7), "3.10.99 bond_xmit_hash_policy_l23/l34", False, True, "none", frozenset()),
    KernelGeneration("3.13-3.16", (3, 13), "3.13.10 bond_xmit_hash", True, True, "none", frozenset()),
    KernelGeneration("3.17-4.13", (3, 17), "3.17.0 bond_xmit_hash, bond_eth_hash", True, True, "native", frozenset()),
    KernelGeneration("4.14-5.14", (4, 14), "4.14.0 bond_xmit_hash", True, True, "native", _IP),
    KernelGeneration("5.15-5.17", (5, 15), "5.17-rc5 bond_eth_hash, bond_ip_hash", True, True, "host", _IP),
    KernelGeneration("5.18+", (5, 18), "5.19.0 bond_ip_hash", True, True, "host", frozenset({"layer3+4"})),
)
BY_NAME = {g.name: g for g in GENERATIONS}
RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
# Stable releases that took 49aefd131739 ("do not discard lowest hash bit for non layer3+4 hashing"):
# the 5.15.38-rc1 and 5.17.6-rc1 review series of 4 May 2022 carry it.
STABLE_5_18_HASH = {(5, 15): 38, (5, 17): 6}


def generation_for(release: str | KernelGeneration) -> KernelGeneration:
    """The generation of a `uname -r` string ("3.0.101-63-default") or of a generation name.

    Only the version numbers are read: Ubuntu's "5.15.0-91-generic" hides the stable sublevel it is
    built from, so give the generation name (or the upstream x.y.z) when the distribution backports."""
    if isinstance(release, KernelGeneration):
        return release
    text = release.strip()
    if text in BY_NAME:
        return BY_NAME[text]
    m = RELEASE.match(text)
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    version = (int(m.group(1)), int(m.group(2)))
    sub = int(m.group(3) or 0)
    el7 = re.search(r"^3\.10\.0-(\d+)[.\w]*\.el7", text)
    if el7 and int(el7.group(1)) >= 1160:
        return BY_NAME["4.14-5.14"]  # read in 3.10.0-1160.el7: h_proto native and `hash >> 1`
    if version in STABLE_5_18_HASH and sub >= STABLE_5_18_HASH[version]:
        return BY_NAME["5.18+"]
    return [g for g in GENERATIONS if g.first <= version][-1]


def running_generation() -> KernelGeneration:
    return generation_for(os.uname().release)


def _order(order: str) -> ByteOrder:
    if order == "little":
        return "little"
    if order == "big":
        return "big"
    raise ValueError(f"byte order must be 'little' or 'big', not {order!r}")


def _word(data: bytes, order: str) -> int:
    return int.from_bytes(data, _order(order))


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def _ip_word(address: str, order: str) -> int:
    packed = _packed(address)
    if len(packed) == 16:  # ipv6_addr_hash: XOR of the four native 32-bit words
        words = [_word(packed[i : i + 4], order) for i in range(0, 16, 4)]
        return words[0] ^ words[1] ^ words[2] ^ words[3]
    return _word(packed, order)


def _mac_last(mac: str) -> int:
    return int(re.split(r"[:-]", mac)[-1], 16)


def _fold(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h ^= h >> 8
    return h & 0xFFFFFFFF


def _legacy(policy: str, flow: Flow, gen: KernelGeneration, with_ports: bool, order: str) -> int:
    """3.0-3.12 bond_xmit_hash_policy_l2/_l23/_l34, before `% count`."""
    l2 = _mac_last(flow.src_mac) ^ _mac_last(flow.dst_mac)  # h_dest[5] ^ h_source[5]
    src, dst = _packed(flow.src), _packed(flow.dst)
    v6 = len(src) == 16
    if policy == "layer2" or (v6 and not gen.ipv6):  # 3.0-3.6 only know ETH_P_IP
        return l2
    l4 = flow.sport ^ flow.dport if with_ports and policy == "layer3+4" else 0  # ntohs(l4[0] ^ l4[1])
    if not v6:
        l3 = (int.from_bytes(src, "big") ^ int.from_bytes(dst, "big")) & 0xFFFF  # ntohl(saddr ^ daddr) & 0xffff
        return l3 ^ l2 if policy == "layer2+3" else l4 ^ l3
    # 3.7-3.12 IPv6: (s[1]^d[1]) ^ (s[2]^d[2]) ^ (s[3]^d[3]) on the raw __be32 words, then a byte fold.
    h = l4
    for i in (4, 8, 12):
        h ^= _word(src[i : i + 4], order) ^ _word(dst[i : i + 4], order)
    h ^= (h >> 24) ^ (h >> 16) ^ (h >> 8)
    return h ^ l2 if policy == "layer2+3" else h


def _eth_hash(flow: Flow, gen: KernelGeneration, order: str) -> int:
    """bond_eth_hash: h_dest[5] ^ h_source[5] (^ h_proto from 3.17)."""
    h = _mac_last(flow.src_mac) ^ _mac_last(flow.dst_mac)
    ethertype = ETH_P_IPV6 if len(_packed(flow.src)) == 16 else ETH_P_IP
    if gen.ethertype == "native":  # __be16 used as a number: 0x0800 reads 0x0008 on little-endian
        h ^= _word(ethertype.to_bytes(2, "big"), order)
    elif gen.ethertype == "host":  # be16_to_cpu(ep->h_proto)
        h ^= ethertype
    return h


def xmit_hash(
    policy: str,
    flow: Flow,
    generation: str | KernelGeneration,
    proto: str | None = None,
    fragment: bool | None = None,
    order: str = sys.byteorder,
) -> int:
    """The transmit hash before `% slaves`. proto/fragment default to the flow's own."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not predictable here; use one of {', '.join(POLICIES)}")
    gen = generation_for(generation)
    proto = flow.proto if proto is None else proto
    if proto not in PROTOS:
        raise ValueError(f"protocol {proto!r} is not hashed by ports here; use tcp or udp")
    fragment = flow.fragment if fragment is None else fragment
    if len(_packed(flow.src)) != len(_packed(flow.dst)):
        raise ValueError(f"{flow.src} and {flow.dst} are not the same address family")
    with_ports = not fragment
    if not gen.dissector:
        return _legacy(policy, flow, gen, with_ports, order)
    if policy == "layer2":  # bond_xmit_hash returns bond_eth_hash unshifted
        return _eth_hash(flow, gen, order)
    if policy == "layer2+3":
        h = _eth_hash(flow, gen, order)
    else:  # flow.ports: sport then dport as one native 32-bit word; 0 for a fragment
        ports = flow.sport.to_bytes(2, "big") + flow.dport.to_bytes(2, "big")
        h = _word(ports, order) if with_ports else 0
    h = _fold(h ^ _ip_word(flow.src, order) ^ _ip_word(flow.dst, order))
    return h >> 1 if policy in gen.drop_bit else h


class Selection(NamedTuple):
    member_index: int  # 0-based, in the order the driver lists the slaves (enslave order)
    hash: int
    generation: KernelGeneration


def select(
    policy: str,
    slaves: int,
    flow: Flow,
    kernel: str | KernelGeneration | None = None,
    order: str = sys.byteorder,
) -> Selection:
    """Member index, hash and generation for a bond of SLAVES members (default: the running kernel)."""
    if slaves < 1:
        raise ValueError("a bond needs at least one slave")
    gen = running_generation() if kernel is None else generation_for(kernel)
    h = xmit_hash(policy, flow, gen, order=order)
    return Selection(h % slaves, h, gen)


# The 5.18+ formulas, kept by name for callers and tests written against them.
def layer2(flow: Flow) -> int:
    return xmit_hash("layer2", flow, BY_NAME["5.18+"])


def layer23(flow: Flow, order: str = sys.byteorder) -> int:
    return xmit_hash("layer2+3", flow, BY_NAME["5.18+"], order=order)


def layer34(flow: Flow, order: str = sys.byteorder) -> int:
    return xmit_hash("layer3+4", flow, BY_NAME["5.18+"], order=order)


def member_for(
    policy: str,
    members: tuple[str, ...],
    flow: Flow,
    order: str = sys.byteorder,
    kernel: str | KernelGeneration | None = None,
) -> str | None:
    """The member the hash picks, or None when the policy cannot be predicted (encap*, vlan+srcmac).

    The list is the members the hash runs over. 3.0.101-3.17.0 bond_xmit_xor reduced it over every
    enslaved slave and walked on to the next one up; 4.14.0 keeps an array of usable slaves."""
    if policy not in POLICIES or not members:
        return None
    return members[select(policy, len(members), flow, kernel, order).member_index]
