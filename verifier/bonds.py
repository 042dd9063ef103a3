"""Which bond member carries a flow: the kernel's transmit hash (bonding.rst, xmit_hash_policy).

One TCP stream stays on one member. Formulas (kernel Documentation/networking/bonding.rst and
bond_main.c `__bond_xmit_hash`/`bond_ip_hash`):
  layer2:    h = srcMAC[5] ^ dstMAC[5] ^ ethertype
  layer2+3:  h = layer2 ^ saddr ^ daddr;  h ^= h >> 16;  h ^= h >> 8
  layer3+4:  h = ports ^ saddr ^ daddr;   h ^= h >> 16;  h ^= h >> 8;  h >>= 1 (kernels since 2017)
  member = members[h % len(members)]
The kernel loads addresses and the port pair as native 32-bit words straight from the packet
(`(__force u32)`), so on little-endian hosts the network-order bytes are read little-endian.
That byte order is modelled here; verify it against a real capture before trusting a prediction
on a production bond. encap3+4 uses a socket hash that cannot be predicted, only observed.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


@dataclass(frozen=True)
class Flow:
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    sport: int
    dport: int


def _word(data: bytes, order: str = sys.byteorder) -> int:
    return int.from_bytes(data, order)  # type: ignore[arg-type]


def _ip_word(address: str, order: str) -> int:
    packed = ipaddress.ip_address(address).packed
    if len(packed) == 16:  # IPv6: the kernel folds the address to 32 bits with XOR (ipv6_addr_hash)
        words = [_word(packed[i : i + 4], order) for i in range(0, 16, 4)]
        return words[0] ^ words[1] ^ words[2] ^ words[3]
    return _word(packed, order)


def _mac_last(mac: str) -> int:
    return int(mac.split(":")[-1], 16)


def layer2(flow: Flow) -> int:
    proto = ETH_P_IPV6 if ":" in flow.src else ETH_P_IP
    return _mac_last(flow.src_mac) ^ _mac_last(flow.dst_mac) ^ proto


def _fold(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h ^= h >> 8
    return h & 0xFFFFFFFF


def layer23(flow: Flow, order: str = sys.byteorder) -> int:
    return _fold(layer2(flow) ^ _ip_word(flow.src, order) ^ _ip_word(flow.dst, order))


def layer34(flow: Flow, order: str = sys.byteorder) -> int:
    ports = flow.sport.to_bytes(2, "big") + flow.dport.to_bytes(2, "big")
    return _fold(_word(ports, order) ^ _ip_word(flow.src, order) ^ _ip_word(flow.dst, order)) >> 1


HASHES = {"layer2": lambda f, o: layer2(f), "layer2+3": layer23, "layer3+4": layer34}


def member_for(policy: str, members: tuple[str, ...], flow: Flow, order: str = sys.byteorder) -> str | None:
    """The member the hash picks, or None when the policy cannot be predicted (encap*, vlan+srcmac)."""
    fn = HASHES.get(policy)
    if fn is None or not members:
        return None
    return members[fn(flow, order) % len(members)]
