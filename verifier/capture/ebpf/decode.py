"""The eBPF counter's maps, decoded: the C structs of count.bpf.c and a counting.Counter filled
from them, so that the result means exactly what the ring engine's does. Pure functions on the
maps' bytes; engine.py reads the maps and owns the programs' lifetime."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from verifier.capture.counting import Counter, PortRanges, _Conn, _Flow, _Iface, in_ranges
from verifier.capture.ebpf.devices import Segmentation
from verifier.capture.frames import TCP_ACK, TCP_SYN
from verifier.model.ownership import Endpoints, canonical_ip

# The C structs of count.bpf.c, native byte order; ports in host order, addresses as on the wire.
INLINE_RANGES = 4  # INLINE_RANGES in count.bpf.c
NDEVS = 64  # NDEVS in count.bpf.c
DEV = struct.Struct("=IHH")  # struct vp_dev: ifindex, flags, gso_max_segs
HW_TSO4, HW_TSO6 = 1, 2  # vp_dev.flags
# struct vp_config: nranges, ninline, t0_ns, lo[4], hi[4], devs[NDEVS], the bitmap
CONFIG = struct.Struct(f"=IIQ4H4H{NDEVS * DEV.size}s1024Q")
FLOW_KEY = struct.Struct("=IBBHH2x16s16s")
NBINS = 32  # NBINS in count.bpf.c: tenths of a second kept per flow, a ring
FLOW_VAL = struct.Struct(f"=QQQQ{2 * NBINS}Q")  # bytes, packets, payload, flags, then (tag, bytes) per slot
NSLOTS = 32  # NSLOTS in count.bpf.c
SLOT = struct.Struct(f"=44s4x{FLOW_VAL.size}s")  # struct vp_slot: the key (zero family: free), its counters
_FLOW_HEAD = struct.Struct("=QQQQ")
_RING = struct.Struct(f"={2 * NBINS}Q")
U64 = struct.Struct("=Q")
FIRST = struct.Struct("=I16s")
F_SYN, F_SYNACK = 1, 2  # flags in count.bpf.c
DIR_TX = 1  # vp_flow_key.dir of a frame sent

Items = Iterable[tuple[bytes, bytes]]  # (key, value) of a map; per-CPU values back to back


def config(ports: PortRanges, t0_ns: int, devices: Mapping[int, Segmentation]) -> tuple[bytes, dict[int, bytes]]:
    """count.bpf.c's struct vp_config for PORTS, bins counted from T0_NS (CLOCK_MONOTONIC): the
    ranges inline when there are few enough (unused ones empty, lo > hi), the bitmap always; and
    the watched DEVICES' segmentation (by ifindex) at ifindex % NDEVS. Also the devices two share
    an entry for, as the `devs` map's entries (ifindex -> struct vp_dev)."""
    few = len(ports) <= INLINE_RANGES
    ranges = list(ports) + [(1, 0)] * (INLINE_RANGES - len(ports)) if few else [(1, 0)] * INLINE_RANGES
    lows = [max(0, min(lo, 65535)) for lo, _hi in ranges]
    highs = [max(0, min(hi, 65535)) for _lo, hi in ranges]
    table = bytearray(NDEVS * DEV.size)
    spill: dict[int, bytes] = {}
    for ifindex, seg in sorted(devices.items()):
        flags = (HW_TSO4 if seg.tso4 else 0) | (HW_TSO6 if seg.tso6 else 0)
        entry = DEV.pack(ifindex, flags, min(seg.gso_max_segs, 65535))
        at = (ifindex % NDEVS) * DEV.size
        if DEV.unpack_from(table, at)[0]:
            spill[ifindex] = entry
        else:
            table[at : at + DEV.size] = entry
    packed = CONFIG.pack(len(ports), len(ports) if few else 0, t0_ns, *lows, *highs, bytes(table), *port_bitmap(ports))
    return packed, spill


def port_bitmap(ports: PortRanges) -> list[int]:
    """The 65,536-bit map of count.bpf.c's config, as 1024 words: bit p set when port p is watched."""
    words = [0] * 1024
    for lo, hi in ports:
        for port in range(max(lo, 0), min(hi, 65535) + 1):
            words[port >> 6] |= 1 << (port & 63)
    return words


def merge_slots(flow_items: Items, slots: bytes, ncpu: int) -> list[tuple[bytes, bytes]]:
    """The flows map's items with the slots added in, in the same shape. SLOTS: the slots map's
    one per-CPU value, each CPU's NSLOTS slots in turn. A flow counts on each CPU either in a slot
    or in the map (count.bpf.c), so a slot's value fills its CPU's part of the flow's value."""
    merged = {key: bytearray(value) for key, value in flow_items}
    for n in range(len(slots) // SLOT.size):
        key, value = SLOT.unpack_from(slots, n * SLOT.size)
        if key[5] == 0:  # vp_flow_key.family: a slot no flow took on this CPU
            continue
        cpu = n // NSLOTS
        whole = merged.setdefault(key, bytearray(ncpu * FLOW_VAL.size))
        whole[cpu * FLOW_VAL.size : (cpu + 1) * FLOW_VAL.size] = value
    return [(key, bytes(value)) for key, value in merged.items()]


def ring_tenths(raw_key: bytes, raw: bytes, ncpu: int) -> Iterator[tuple[tuple[bytes, int, int], int]]:
    """((flow key, cpu, tenth), bytes) for every used slot of a flow's per-CPU bin rings."""
    for cpu in range(ncpu):
        ring = _RING.unpack_from(raw, cpu * FLOW_VAL.size + _FLOW_HEAD.size)
        for slot in range(NBINS):
            tag = ring[2 * slot]
            if tag:
                yield (raw_key, cpu, tag - 1), ring[2 * slot + 1]


def fill_counter(
    counter: Counter,
    flow_items: Items,
    first_items: Items,
    tenths: dict[tuple[bytes, int, int], int],
    ifindex: dict[int, str],
    ncpu: int,
) -> dict[str, int]:
    """Add the flows map (with the bin rings collected as TENTHS and the first payloads) to
    COUNTER; the frames counted per interface."""
    ports = counter.ports
    flows: dict[tuple[Any, ...], list[int]] = {}  # key -> [bytes, packets, payload, flags]
    for raw_key, raw in flow_items:
        total = [0, 0, 0, 0]
        for i in range(ncpu):
            b, p, pl, fl = _FLOW_HEAD.unpack_from(raw, i * FLOW_VAL.size)
            total = [total[0] + b, total[1] + p, total[2] + pl, total[3] | fl]
        flows[FLOW_KEY.unpack(raw_key)] = total
    syn: dict[tuple[str, int, str, int], int] = {}  # SYN flags seen per 4-tuple, on any interface
    for key, value in flows.items():
        syn[_tuple(key)] = syn.get(_tuple(key), 0) | value[3]
    firsts: dict[tuple[str, int, str, int], bytes] = {}
    for raw_key, raw in first_items:
        n, data = FIRST.unpack(raw)
        firsts.setdefault(_tuple(FLOW_KEY.unpack(raw_key)), data[:n])
    bins: dict[tuple[Any, ...], dict[int, int]] = {}
    for (raw_key, _cpu, tenth), slot_bytes in tenths.items():
        per_tenth = bins.setdefault(FLOW_KEY.unpack(raw_key), {})
        per_tenth[tenth] = per_tenth.get(tenth, 0) + slot_bytes
    packets: dict[str, int] = dict.fromkeys(counter.ifaces, 0)
    for key, (nbytes, npackets, payload, _flags) in sorted(flows.items()):
        name = ifindex.get(key[0])
        if name is None:
            continue
        flow = _tuple(key)
        conn_key, to_server, by_syn = _orient(counter, syn, flow)
        conn = counter.conns.setdefault(conn_key, _Conn())
        conn.by_syn = conn.by_syn or by_syn
        stats = counter.ifaces[name]
        packets[name] += npackets
        if not in_ranges(conn_key[3], ports):
            stats.other_bytes += nbytes  # as Counter: the server end is outside the ranges
            continue
        per = conn.per_iface.setdefault(name, _Flow())
        way = 0 if to_server else 1
        per.ways[way] += payload
        per.ways[2] += npackets
        if not conn.first[way] and flow in firsts:
            conn.first[way] = firsts[flow]
        for target in (stats, per):
            _add(target, bool(key[1]), nbytes, npackets, payload, bins.get(key, {}))
    return packets


def missed_tenths(counter: Counter) -> tuple[str, ...]:
    """The timeline's bytes against the totals: a reader that fell 3.2 s behind lost tenths."""
    missing = 0
    for stats in counter.ifaces.values():
        binned = sum(tx + rx for tx, rx in stats.bins.values())
        missing += stats.bytes_tx + stats.bytes_rx - binned
    if missing <= 0:
        return ()
    return (f"eBPF timeline: {missing} bytes counted but not placed in a tenth of a second (bin reader late)",)


def announced(raw_key: bytes) -> Endpoints:
    """A new-flow event's connection as this host's socket holds it: a frame sent (DIR_TX) goes
    from the local end, one received comes to it."""
    key = FLOW_KEY.unpack(raw_key)
    src, sport, dst, dport = _tuple(key)
    if key[1] == DIR_TX:
        return canonical_ip(src), sport, canonical_ip(dst), dport
    return canonical_ip(dst), dport, canonical_ip(src), sport


def _tuple(key: tuple[Any, ...]) -> tuple[str, int, str, int]:
    """(src, sport, dst, dport) of an unpacked flow key, addresses as text like frames.decode."""
    _ifindex, _dir, family, sport, dport, saddr, daddr = key
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, saddr[:4]), sport, socket.inet_ntop(socket.AF_INET, daddr[:4]), dport
    return socket.inet_ntop(socket.AF_INET6, saddr), sport, socket.inet_ntop(socket.AF_INET6, daddr), dport


def _add(target: _Iface, tx: bool, nbytes: int, packets: int, payload: int, tenths: dict[int, int]) -> None:
    """Add one flow direction's counts to TARGET; TENTHS are its bytes per 100 ms (kernel bins)."""
    if tx:
        target.bytes_tx += nbytes
        target.packets_tx += packets
        target.payload_tx += payload
    else:
        target.bytes_rx += nbytes
        target.packets_rx += packets
        target.payload_rx += payload
    for tenth, value in tenths.items():
        target.bins.setdefault(tenth // 10, [0, 0])[0 if tx else 1] += value
        if isinstance(target, _Flow):
            target.fine[tenth] = target.fine.get(tenth, 0) + value


def _orient(
    counter: Counter, syn: dict[tuple[str, int, str, int], int], flow: tuple[str, int, str, int]
) -> tuple[tuple[str, int, str, int], bool, bool]:
    """(connection key, FLOW goes to the server, decided by a SYN): a SYN seen either way decides,
    as in Counter; without one, the ports."""
    src, sport, dst, dport = flow
    for seen in (flow, (dst, dport, src, sport)):
        flags = syn.get(seen, 0)
        if flags & (F_SYN | F_SYNACK):
            conn, fwd = counter._orient(*seen, TCP_SYN if flags & F_SYN else TCP_SYN | TCP_ACK)
            return conn, fwd == (seen == flow), True
    return *counter._orient(src, sport, dst, dport, 0), False
