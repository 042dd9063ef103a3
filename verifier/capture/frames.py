"""Decode just enough of a frame (Ethernet/VLAN, IPv4/IPv6, TCP) to count it; no scapy per packet.

Link layers: Ethernet, Linux cooked captures v1 (SLL, 16-byte header) and v2 (SLL2, 20-byte
header, as `tcpdump -i any` writes by default since libpcap 1.10), each with 802.1Q/802.1ad tags,
and raw IP (LINKTYPE_RAW 101 and the DLT_RAW values 12 and 14 some systems wrote; 228 IPv4 only;
229 IPv6 only). IPv6 hop-by-hop, routing and destination options headers are skipped.

A frame is TCP only when its whole TCP header, options included, was captured: tshark's TCP
dissector (and so its conversation statistics) gives up on a frame whose options were cut by the
snap length, and so does this decoder, so that both count the same frames.

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
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
_RAW_ANY = (LINKTYPE_RAW, 12, 14)  # DLT_RAW was 12 on most systems and 14 on OpenBSD in old files

# Link types `decode` reads, and names for those it does not, for messages (libpcap's LINKTYPE_* list).
DECODED_LINKTYPES = frozenset({LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, *_RAW_ANY, 228, 229})
LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    9: "PPP",
    12: "raw IP",
    14: "raw IP",
    50: "PPP in HDLC framing",
    101: "raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    108: "OpenBSD loopback",
    113: "Linux cooked v1",
    119: "Prism 802.11",
    127: "IEEE 802.11 radiotap",
    147: "user-defined",
    163: "AVS 802.11",
    187: "Bluetooth HCI H4",
    192: "PPI",
    195: "IEEE 802.15.4",
    197: "Endace ERF",
    198: "IEEE 802.3br mPackets",
    220: "Linux USB",
    228: "raw IPv4",
    229: "raw IPv6",
    249: "Linux netlink",
    276: "Linux cooked v2",
}

_ETH_VLAN = (0x8100, 0x88A8)
_IPV4, _IPV6 = 0x0800, 0x86DD
_TCP = 6
_IPV6_SKIPPED = (0, 43, 60)  # hop-by-hop, routing, destination options: (length + 1) * 8 bytes each
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


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype, "unknown")


def decode(data: bytes | memoryview, orig_len: int, linktype: int = LINKTYPE_ETHERNET) -> Segment | None:
    """Return the TCP segment in DATA (a possibly truncated frame), or None if it is not TCP/IP."""
    buf = data  # indexed in place: a live frame is a memoryview into the ring, no copy per frame
    if linktype == LINKTYPE_ETHERNET:
        off, ethertype = 14, _u16(buf, 12) if len(buf) >= 14 else -1
    elif linktype == LINKTYPE_LINUX_SLL:
        off, ethertype = 16, _u16(buf, 14) if len(buf) >= 16 else -1
    elif linktype == LINKTYPE_LINUX_SLL2:
        # protocol (2), reserved (2), ifindex (4), ARPHRD type (2), packet type, address length, address (8)
        off, ethertype = 20, _u16(buf, 0) if len(buf) >= 20 else -1
    elif linktype in _RAW_ANY:
        version = buf[0] >> 4 if len(buf) else 0
        off, ethertype = 0, {4: _IPV4, 6: _IPV6}.get(version, -1)
    elif linktype == LINKTYPE_IPV4:
        off, ethertype = 0, _IPV4
    elif linktype == LINKTYPE_IPV6:
        off, ethertype = 0, _IPV6
    else:
        return None
    while ethertype in _ETH_VLAN and len(buf) >= off + 4:
        ethertype = _u16(buf, off + 2)
        off += 4
    l3_avail = orig_len - off
    if ethertype == _IPV4:
        if len(buf) < off + 20 or buf[off] >> 4 != 4:
            return None
        ihl = (buf[off] & 0x0F) * 4
        total = _u16(buf, off + 2)
        if buf[off + 9] != _TCP or ihl < 20 or 0 < total < ihl:
            return None
        if _u16(buf, off + 6) & 0x1FFF:
            return None  # a later fragment has no TCP header
        ip_len = total if total else l3_avail
        src = socket.inet_ntop(socket.AF_INET, bytes(buf[off + 12 : off + 16]))
        dst = socket.inet_ntop(socket.AF_INET, bytes(buf[off + 16 : off + 20]))
        tcp = off + ihl
    elif ethertype == _IPV6:
        if len(buf) < off + 40 or buf[off] >> 4 != 6:
            return None
        plen = _u16(buf, off + 4)
        ip_len = plen + 40 if plen else l3_avail
        src = socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 8 : off + 24]))
        dst = socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 24 : off + 40]))
        nxt, ihl = buf[off + 6], 40
        while nxt in _IPV6_SKIPPED and len(buf) >= off + ihl + 2:
            nxt, ihl = buf[off + ihl], ihl + (buf[off + ihl + 1] + 1) * 8
        if nxt != _TCP:
            return None  # a fragment header, ESP, or not TCP at all
        tcp = off + ihl
    else:
        return None
    if len(buf) < tcp + 20:
        return None
    thl = (buf[tcp + 12] >> 4) * 4
    if thl < 20 or len(buf) < tcp + thl:
        return None  # a bogus header length, or options cut by the snap length: tshark skips these too
    sport, dport = struct.unpack_from("!HH", buf, tcp)
    flags = buf[tcp + 13]
    payload = min(ip_len, l3_avail) - ihl - thl
    return Segment(src, sport, dst, dport, flags, max(payload, 0), tcp + thl)


def _u16(buf: bytes | memoryview, pos: int) -> int:
    return (buf[pos] << 8) | buf[pos + 1]


def header_length(data: bytes | memoryview, linktype: int = LINKTYPE_ETHERNET) -> int:
    """Where the TCP payload starts in DATA: what a headers-only capture may store of the frame.
    Not TCP: at most 64 bytes (enough for any other header a reader needs)."""
    if linktype == LINKTYPE_ETHERNET and len(data) >= 34 and data[12] == 8 and data[13] == 0 and data[23] == 6:
        ihl = (data[14] & 15) << 2
        if not ((data[20] & 0x1F) or data[21]) and len(data) > 26 + ihl:  # the common case, read in place
            return min(len(data), 14 + ihl + ((data[26 + ihl] >> 4) << 2))
    seg = decode(data, len(data), linktype)
    return seg.payload_offset if seg is not None else min(len(data), 64)
