"""A TPACKET_V3 receive ring on a packet socket: the kernel writes truncated frames into shared
blocks, we walk whole blocks without a system call per frame (what tcpdump/libpcap do).

Frames are truncated by the socket filter's return value, so the filter scapy compiles is
re-attached with every accept jumping to a tail that returns the frame's header length (plus the
few payload bytes stream classification needs): otherwise the kernel would copy each 64 KB GSO
super-packet into the ring in full, and guest memory would reach user space.
"""

from __future__ import annotations

import ctypes
import mmap
import socket
import struct
from collections.abc import Callable
from typing import Any

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
BPF_RET_K = 0x06
# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1 starting with
# block_status, num_pkts, offset_to_first_pkt.
_BLOCK = struct.Struct("=IIIII")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac
_PKT = struct.Struct("=IIIIIIH")
SLL_PKTTYPE = 48 + 10  # sockaddr_ll follows the 48-byte header; sll_pkttype at offset 10
PACKET_OUTGOING = 4


def truncating_filter(bpf: str, iface: str, snaplen: int, extra: int = 0, sample: int = 0) -> tuple[bytes, Any]:
    """scapy compiles BPF; return a sock_fprog that keeps headers only (keep the buffer alive).

    "Headers only" means no byte past the TCP header (a migration stream carries guest RAM in
    clear, design.md section 4): every accept of the compiled filter jumps to a tail that returns
    Ethernet (+ up to two VLAN tags) + the IPv4 header (IHL) or the fixed IPv6 header + the TCP
    header with its options (data offset), at most SNAPLEN; other frames keep 64 bytes.
    A SNAPLEN of 65535 or more asks for whole frames (--keep-payload): accepts return SNAPLEN.
    EXTRA payload bytes past the TCP header reach the socket (the first bytes of a stream tell its
    kind); they stay in memory: the pcap writer stores headers only (frames.header_length).
    Offloaded VLAN tags are not in the socket's data, so they are not counted here either.
    SAMPLE > 0 keeps, of the TCP frames, those with SYN, FIN or RST and one in SAMPLE of the rest
    (the kernel's per-frame random number): evidence pcaps whose cost does not grow with the
    stream, while another engine counts everything.
    """
    from scapy.arch.common import compile_filter

    non_tcp_snap = 64  # other frames: a small fixed length
    # Classic BPF opcodes (linux/filter.h): loads absolute/indexed, ALU, jumps, returns.
    _LDH, _LDB_IND, _LDH_IND, _LDX_IMM = 0x28, 0x50, 0x48, 0x01
    _AND, _LSH, _RSH, _ADD_K, _ADD_X, _TAX, _TXA = 0x54, 0x64, 0x74, 0x04, 0x0C, 0x07, 0x87
    _JA, _JEQ, _JGT, _JSET, _RET_A = 0x05, 0x15, 0x25, 0x45, 0x16
    _LD_RANDOM, _MOD_K = 0x20, 0x94  # ld [SKF_AD_OFF + SKF_AD_RANDOM]; A %= k
    skf_ad_random = (0xFFFFF000 + 56) & 0xFFFFFFFF

    def header_length_tail() -> bytes:
        """cBPF computing the frame's header length into A; labels resolved to relative jumps."""
        small = min(non_tcp_snap, snaplen)
        # (label or None, code, k, jump-if-true label, jump-if-false label)
        asm: list[tuple[str | None, int, int, str | None, str | None]] = [
            (None, _LDX_IMM, 14, None, None),
            (None, _LDH, 12, None, None),
            (None, _JEQ, 0x8100, "vlan1", None),
            (None, _JEQ, 0x88A8, "vlan1", "l3"),
            ("vlan1", _LDX_IMM, 18, None, None),
            (None, _LDH, 16, None, None),
            (None, _JEQ, 0x8100, "vlan2", None),
            (None, _JEQ, 0x88A8, "vlan2", "l3"),
            ("vlan2", _LDX_IMM, 22, None, None),
            (None, _LDH, 20, None, None),
            ("l3", _JEQ, 0x0800, "ip4", None),
            (None, _JEQ, 0x86DD, "ip6", "small"),
            ("ip4", _LDB_IND, 9, None, None),
            (None, _JEQ, 6, None, "small"),
            (None, _LDH_IND, 6, None, None),
            (None, _JSET, 0x1FFF, "small", None),  # a later fragment: no TCP header in it
            (None, _LDB_IND, 0, None, None),
            (None, _AND, 0x0F, None, None),
            (None, _LSH, 2, None, None),
            (None, _ADD_X, 0, None, None),
            (None, _TAX, 0, None, None),
            (None, _JA, 0, "tcp", None),
            ("ip6", _LDB_IND, 6, None, None),
            (None, _JEQ, 6, None, "small"),  # extension headers: IPv6 header only
            (None, _TXA, 0, None, None),
            (None, _ADD_K, 40, None, None),
            (None, _TAX, 0, None, None),
            *(
                [
                    ("tcp", _LDB_IND, 13, None, None),  # TCP flags
                    (None, _JSET, 0x07, "tcplen", None),  # FIN, SYN or RST: always kept
                    (None, _LD_RANDOM, skf_ad_random, None, None),
                    (None, _MOD_K, sample, None, None),
                    (None, _JEQ, 0, "tcplen", "drop"),
                    ("drop", BPF_RET_K, 0, None, None),
                    ("tcplen", _LDB_IND, 12, None, None),
                ]
                if sample
                else [("tcp", _LDB_IND, 12, None, None)]
            ),
            (None, _RSH, 4, None, None),
            (None, _LSH, 2, None, None),
            (None, _ADD_X, 0, None, None),
            (None, _ADD_K, extra, None, None),
            (None, _JGT, snaplen, "snap", None),
            (None, _RET_A, 0, None, None),
            ("snap", BPF_RET_K, snaplen, None, None),
            ("small", BPF_RET_K, small, None, None),
        ]
        where = {label: i for i, (label, *_rest) in enumerate(asm) if label}
        out = bytearray()
        for i, (_label, code, k, jt, jf) in enumerate(asm):
            if code == _JA:
                k, jt, jf = where[str(jt)] - (i + 1), None, None
            t = where[jt] - (i + 1) if jt else 0
            f = where[jf] - (i + 1) if jf else 0
            out += struct.pack("=HBBI", code, t, f, k)
        return bytes(out)

    prog = compile_filter(bpf, iface)
    insns = (ctypes.c_uint8 * (prog.bf_len * 8)).from_address(ctypes.addressof(prog.bf_insns.contents))
    raw = bytearray(insns)
    n = prog.bf_len
    whole = snaplen >= 65535
    for i in range(n):
        code, jt, jf, k = struct.unpack_from("=HBBI", raw, i * 8)
        if code == BPF_RET_K and k and whole:
            struct.pack_into("=HBBI", raw, i * 8, code, jt, jf, snaplen)
        elif code == BPF_RET_K and k:
            struct.pack_into("=HBBI", raw, i * 8, _JA, 0, 0, n - (i + 1))  # to the header-length tail
    tail = b"" if whole else header_length_tail()
    buf = ctypes.create_string_buffer(bytes(raw) + tail, len(raw) + len(tail))
    fprog = struct.pack("HL", n + len(tail) // 8, ctypes.addressof(buf))
    return fprog, buf


class Ring:
    """The mmap'ed ring of one socket; `frames()` yields what the kernel has handed over."""

    def __init__(self, sock: socket.socket, size: int = 32 << 20, timeout_ms: int = 50) -> None:
        # Blocks of up to 1 MiB (a page at the least); the kernel retires a part-filled block
        # after TIMEOUT_MS, so a trickle is still seen promptly.
        block_size = max(mmap.PAGESIZE, min(1 << 20, size // 2) // mmap.PAGESIZE * mmap.PAGESIZE)
        blocks = max(2, size // block_size)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        req = struct.pack("=IIIIIII", block_size, blocks, 2048, block_size // 2048 * blocks, timeout_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.block_size = block_size
        self.blocks = blocks
        self.map = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)
        self.current = 0

    def drain(self, handle: Callable[[float, memoryview, int, bool], None], limit: int | None = None) -> int:
        """Hand every ready frame to HANDLE, block by block; return the number of blocks done."""
        done = 0
        mm, view, unpack_block, unpack_pkt = self.map, self.view, _BLOCK.unpack_from, _PKT.unpack_from
        while limit is None or done < limit:
            base = self.current * self.block_size
            _ver, _priv, status, count, offset = unpack_block(mm, base)
            if not status & TP_STATUS_USER:
                return done
            off = base + offset
            for _ in range(count):
                nxt, sec, nsec, snap, length, _st, mac = unpack_pkt(mm, off)
                start = off + mac
                handle(sec + nsec * 1e-9, view[start : start + snap], length, mm[off + SLL_PKTTYPE] == PACKET_OUTGOING)
                off += nxt
            struct.pack_into("=I", mm, base + 8, TP_STATUS_KERNEL)  # hand the block back
            self.current = (self.current + 1) % self.blocks
            done += 1
        return done

    def close(self) -> None:
        try:
            self.view.release()
            self.map.close()
        except BufferError:  # a frame view still referenced: the mapping goes with the socket
            pass
