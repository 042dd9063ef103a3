"""A TPACKET_V3 receive ring on a packet socket: the kernel writes truncated frames into shared
blocks, we walk whole blocks without a system call per frame (what tcpdump/libpcap do).

Frames are truncated by the socket filter's return value, so the filter scapy compiles is
re-attached with its accept value lowered to the snap length: otherwise the kernel would copy
each 64 KB GSO super-packet into the ring in full.
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


def truncating_filter(bpf: str, iface: str, snaplen: int) -> tuple[bytes, Any]:
    """scapy compiles BPF; return a sock_fprog whose accept value is SNAPLEN (keep the buffer alive)."""
    from scapy.arch.common import compile_filter

    prog = compile_filter(bpf, iface)
    insns = (ctypes.c_uint8 * (prog.bf_len * 8)).from_address(ctypes.addressof(prog.bf_insns.contents))
    raw = bytearray(insns)
    for i in range(prog.bf_len):
        code, jt, jf, k = struct.unpack_from("=HBBI", raw, i * 8)
        if code == BPF_RET_K and k:
            struct.pack_into("=HBBI", raw, i * 8, code, jt, jf, snaplen)
    buf = ctypes.create_string_buffer(bytes(raw), len(raw))
    fprog = struct.pack("HL", prog.bf_len, ctypes.addressof(buf))
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
