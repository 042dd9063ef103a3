"""decode.merge_slots: the slots array and the flows map, added like the CPUs of one map; and
decode.config, the program's settings.

Bytes shaped as the kernel hands them (count.bpf.c's structs, per-CPU values back to back), so
that this runs without eBPF; test_ebpf.py checks the same against tcpdump with real traffic."""

from __future__ import annotations

import socket

from verifier.capture.counting import Counter
from verifier.capture.ebpf.decode import (
    CONFIG,
    DEV,
    F_SYN,
    FLOW_KEY,
    FLOW_VAL,
    HW_TSO4,
    HW_TSO6,
    INLINE_RANGES,
    NBINS,
    NDEVS,
    NSLOTS,
    SLOT,
    config,
    fill_counter,
    merge_slots,
)
from verifier.capture.ebpf.devices import Segmentation

NCPU = 2


def _key(sport: int, family: int = 4) -> bytes:
    addr = socket.inet_aton("198.18.210.1") + bytes(12)
    return FLOW_KEY.pack(7, 1, family, sport, 49152, addr, addr)


def _val(nbytes: int) -> bytes:
    return FLOW_VAL.pack(nbytes, 1, nbytes - 66, 0, *([0] * 2 * NBINS))


def _slots(taken: dict[tuple[int, int], tuple[bytes, bytes]]) -> bytes:
    """Each CPU's NSLOTS slots in turn; TAKEN: (slot, cpu) -> (key, value), the rest free (zeros)."""
    free = (bytes(FLOW_KEY.size), bytes(FLOW_VAL.size))
    return b"".join(SLOT.pack(*taken.get((n, cpu), free)) for cpu in range(NCPU) for n in range(NSLOTS))


def _per_cpu_bytes(value: bytes) -> list[int]:
    return [FLOW_VAL.unpack_from(value, cpu * FLOW_VAL.size)[0] for cpu in range(NCPU)]


def test_a_flow_in_a_slot_on_one_cpu_and_in_the_map_on_another_is_one_flow() -> None:
    a, b = _key(40000), _key(40001)
    in_map = [(a, _val(1000) + bytes(FLOW_VAL.size))]  # CPU 0 counted A in the map
    slots = _slots({(3, 1): (a, _val(500)), (9, 0): (b, _val(70))})  # CPU 1 in slot 3; B only in a slot
    merged = dict(merge_slots(in_map, slots, NCPU))
    assert set(merged) == {a, b}  # free slots (family 0) are no flow
    assert _per_cpu_bytes(merged[a]) == [1000, 500]
    assert _per_cpu_bytes(merged[b]) == [70, 0]
    assert all(len(v) == NCPU * FLOW_VAL.size for v in merged.values())


def test_a_connection_is_known_to_be_oriented_by_its_syn_only_when_one_was_counted() -> None:
    """Two connections between ports in the range, client port below the server's (49160 ->
    49200): one with its SYN counted, one older than the capture. The first is oriented by the
    SYN and says so; the second is a guess (the lower port taken for the server) and says so."""
    addr = socket.inet_aton("198.18.210.1") + bytes(12)
    peer = socket.inet_aton("198.18.210.2") + bytes(12)
    seen = FLOW_KEY.pack(7, 1, 4, 49160, 49200, addr, peer)
    older = FLOW_KEY.pack(7, 1, 4, 49170, 49201, addr, peer)
    with_syn = FLOW_VAL.pack(2000, 3, 1800, F_SYN, *([0] * 2 * NBINS))
    items = [(seen, with_syn + bytes(FLOW_VAL.size)), (older, _val(2000) + bytes(FLOW_VAL.size))]
    counter = Counter(((49152, 49215),), 0.0)
    counter.ensure("san0")
    fill_counter(counter, items, [], {}, {7: "san0"}, NCPU)
    got = {(c.client_port, c.server_port, c.by_syn) for c in counter.result().connections}
    assert got == {(49160, 49200, True), (49201, 49170, False)}


def test_nothing_in_the_slots_leaves_the_map_as_it_was() -> None:
    items = [(_key(40000, family=6), _val(123) + _val(456))]
    assert merge_slots(items, _slots({}), NCPU) == items


def test_config_puts_few_ranges_inline_and_two_devices_on_one_entry_into_the_map() -> None:
    tso, soft = Segmentation(True, True), Segmentation(False, False, 64)
    packed, spill = config(((49152, 49215), (16509, 16509)), 123, {3: tso, 3 + NDEVS: soft})
    nranges, ninline, t0, *rest = CONFIG.unpack(packed)
    lows, highs, table = rest[:INLINE_RANGES], rest[INLINE_RANGES : 2 * INLINE_RANGES], rest[2 * INLINE_RANGES]
    assert (nranges, ninline, t0) == (2, 2, 123)
    assert lows == [49152, 16509, 1, 1] and highs == [49215, 16509, 0, 0]  # unused ranges are empty
    assert DEV.unpack_from(table, 3 * DEV.size) == (3, HW_TSO4 | HW_TSO6, 65535)
    assert spill == {3 + NDEVS: DEV.pack(3 + NDEVS, 0, 64)}  # its entry was taken: the map holds it
    many = tuple((p, p) for p in range(1000, 1000 + INLINE_RANGES + 1))
    packed, _ = config(many, 0, {})
    assert CONFIG.unpack(packed)[:2] == (len(many), 0)  # too many to inline: the bitmap decides
    bitmap = CONFIG.unpack(packed)[-1024:]
    assert all(bitmap[p >> 6] >> (p & 63) & 1 for p, _ in many) and not bitmap[999 >> 6] >> (999 & 63) & 1
