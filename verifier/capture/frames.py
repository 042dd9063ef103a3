"""Decode just enough of a frame (Ethernet/VLAN, IPv4/IPv6, TCP) to count it; no scapy per packet.

Link layers: Ethernet, Linux cooked captures v1 (SLL, 16-byte header) and v2 (SLL2, 20-byte
header, as `tcpdump -i any` writes by default since libpcap 1.10), and raw IP.

The payload length comes from the IP length fields when they are set, so Ethernet padding on
short frames never counts as payload, and from the frame's original length when they are 0
(BIG TCP and GSO super-packets; design.md section 4).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_RAW = 101

_ETH_VLAN = (0x8100, 0x88A8)
_IPV4, _IPV6 = 0x0800, 0x86DD
_TCP = 6
TCP_SYN, TCP_ACK = 0x02, 0x10


@dataclass(frozen=True, slots=True)
class Segment:
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    payload_len: int
    payload_offset: int  # where the TCP payload starts in the captured bytes


def decode(data: bytes | memoryview, orig_len: int, linktype: int = LINKTYPE_ETHERNET) -> Segment | None:
    """Return the TCP segment in DATA (a possibly truncated frame), or None if it is not TCP/IP."""
    buf = bytes(data[:256])
    if linktype == LINKTYPE_ETHERNET:
        if len(buf) < 14:
            return None
        off = 12
        (ethertype,) = struct.unpack_from("!H", buf, off)
        off += 2
        while ethertype in _ETH_VLAN and len(buf) >= off + 4:
            (ethertype,) = struct.unpack_from("!H", buf, off + 2)
            off += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(buf) < 16:
            return None
        (ethertype,) = struct.unpack_from("!H", buf, 14)
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        # protocol (2), reserved (2), ifindex (4), ARPHRD type (2), packet type, address length, address (8)
        if len(buf) < 20:
            return None
        (ethertype,) = struct.unpack_from("!H", buf, 0)
        off = 20
    elif linktype == LINKTYPE_RAW:
        off = 0
        ethertype = _IPV4 if buf[:1] and buf[0] >> 4 == 4 else _IPV6
    else:
        return None
    l3_avail = orig_len - off
    if ethertype == _IPV4:
        if len(buf) < off + 20:
            return None
        ihl = (buf[off] & 0x0F) * 4
        total = struct.unpack_from("!H", buf, off + 2)[0]
        if buf[off + 9] != _TCP or ihl < 20:
            return None
        frag = struct.unpack_from("!H", buf, off + 6)[0] & 0x1FFF
        if frag:
            return None  # a later fragment has no TCP header
        ip_len = total if total else l3_avail
        src = socket.inet_ntop(socket.AF_INET, buf[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, buf[off + 16 : off + 20])
        tcp = off + ihl
    elif ethertype == _IPV6:
        if len(buf) < off + 40 or buf[off + 6] != _TCP:
            return None  # extension headers before TCP: not a migration stream we can count here
        plen = struct.unpack_from("!H", buf, off + 4)[0]
        ip_len = plen + 40 if plen else l3_avail
        src = socket.inet_ntop(socket.AF_INET6, buf[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, buf[off + 24 : off + 40])
        ihl = 40
        tcp = off + 40
    else:
        return None
    if len(buf) < tcp + 14:
        return None
    sport, dport = struct.unpack_from("!HH", buf, tcp)
    thl = (buf[tcp + 12] >> 4) * 4
    flags = buf[tcp + 13]
    payload = min(ip_len, l3_avail) - ihl - thl
    return Segment(src, sport, dst, dport, flags, max(payload, 0), tcp + thl)
