"""frames.decode: TCP payload length and offset from frames built with scapy (no scapy in the code under test)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, TCP_ACK, TCP_SYN, decode

ETH_HDR, IP4_HDR, IP6_HDR, TCP_HDR = 14, 20, 40, 20
SRC, DST = "198.51.100.11", "198.51.100.12"


def tcp4(payload: bytes = b"", flags: str = "A", **ip: object) -> bytes:
    pkt = Ether() / IP(src=SRC, dst=DST, **ip) / TCP(sport=49152, dport=49153, flags=flags)
    return bytes(pkt / Raw(payload) if payload else pkt)


def test_ethernet_padding_is_not_payload() -> None:
    frame = tcp4()
    assert len(frame) == ETH_HDR + IP4_HDR + TCP_HDR  # a bare ACK is 54 bytes ...
    padded = frame + b"\x00" * (60 - len(frame))  # ... and padded to the 60-byte minimum on the wire
    seg = decode(padded, len(padded))
    assert seg is not None
    assert seg.payload_len == 0
    assert (seg.src, seg.sport, seg.dst, seg.dport) == (SRC, 49152, DST, 49153)
    assert seg.flags == TCP_ACK


def test_short_payload_with_padding_counts_only_the_payload() -> None:
    frame = tcp4(b"QEVM")
    padded = frame + b"\x00" * (60 - len(frame))
    seg = decode(padded, len(padded))
    assert seg is not None
    assert seg.payload_len == 4
    assert padded[seg.payload_offset : seg.payload_offset + 4] == b"QEVM"


def test_truncated_capture_counts_the_full_payload() -> None:
    payload = bytes(range(256)) * 5
    frame = tcp4(payload)
    seg = decode(frame[:128], len(frame))
    assert seg is not None
    assert seg.payload_len == len(payload)
    assert seg.payload_offset == ETH_HDR + IP4_HDR + TCP_HDR


def test_ipv4_total_length_zero_falls_back_to_the_frame_length() -> None:
    # BIG TCP / GSO super-packets: more than 64 KiB of payload, so the IPv4 length field says 0.
    payload_len = 100_000
    frame = tcp4(b"\xab" * 1000, len=0)
    orig_len = ETH_HDR + IP4_HDR + TCP_HDR + payload_len
    seg = decode(frame[:128], orig_len)
    assert seg is not None
    assert seg.payload_len == payload_len


def test_tcp_options_move_the_payload_offset() -> None:
    pkt = Ether() / IP() / TCP(flags="S", options=[("MSS", 1460), ("WScale", 7), ("NOP", None)]) / Raw(b"hello")
    frame = bytes(pkt)
    seg = decode(frame, len(frame))
    assert seg is not None
    assert seg.flags & TCP_SYN
    assert frame[seg.payload_offset :] == b"hello"
    assert seg.payload_len == 5


def test_vlan_tagged_frames() -> None:
    payload = b"v" * 300
    inner = IP(src=SRC, dst=DST) / TCP(sport=40000, dport=49152) / Raw(payload)
    for frame, tags in (
        (bytes(Ether() / Dot1Q(vlan=100) / inner), 1),
        (bytes(Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / inner), 2),
    ):
        seg = decode(frame, len(frame))
        assert seg is not None, tags
        assert seg.payload_len == len(payload)
        assert seg.payload_offset == ETH_HDR + 4 * tags + IP4_HDR + TCP_HDR
        assert (seg.dst, seg.dport) == (DST, 49152)


def test_ipv6_tcp() -> None:
    payload = b"6" * 700
    frame = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=50000, dport=49152) / Raw(payload))
    seg = decode(frame[:128], len(frame))
    assert seg is not None
    assert (seg.src, seg.dst, seg.dport) == ("2001:db8::1", "2001:db8::2", 49152)
    assert seg.payload_len == len(payload)
    assert seg.payload_offset == ETH_HDR + IP6_HDR + TCP_HDR


def test_udp_and_non_ip_are_not_segments() -> None:
    udp = bytes(Ether() / IP() / UDP(sport=49152, dport=49152) / Raw(b"x" * 40))
    assert decode(udp, len(udp)) is None
    arp_like = bytes(Ether(type=0x0806) / Raw(b"\x00" * 28))
    assert decode(arp_like, len(arp_like)) is None
    assert decode(b"\x00" * 10, 10) is None


def test_later_ipv4_fragment_is_not_a_segment() -> None:
    frame = tcp4(b"z" * 100, frag=185)
    assert decode(frame, len(frame)) is None


def test_linux_cooked_capture() -> None:
    payload = b"c" * 500
    pkt = CookedLinux(pkttype=4, proto=0x0800) / IP(src=SRC, dst=DST) / TCP(sport=49152, dport=16509) / Raw(payload)
    frame = bytes(pkt)
    seg = decode(frame, len(frame), LINKTYPE_LINUX_SLL)
    assert seg is not None
    assert seg.payload_len == len(payload)
    assert seg.payload_offset == 16 + IP4_HDR + TCP_HDR
    # The same bytes read as Ethernet are garbage, so the link type really matters.
    assert decode(frame, len(frame), LINKTYPE_ETHERNET) != seg


def test_raw_ip_link_type() -> None:
    payload = b"r" * 64
    frame = bytes(IP(src=SRC, dst=DST) / TCP() / Raw(payload))
    seg = decode(frame, len(frame), LINKTYPE_RAW)
    assert seg is not None
    assert seg.payload_len == len(payload)
    assert seg.payload_offset == IP4_HDR + TCP_HDR
