"""Pure counting: frames in, bytes and packets per interface, direction, second and connection out.

The same code counts live frames and frames read back from pcap files, so offline analysis and
unit tests exercise exactly what a live run does. Nothing keeps packets: memory depends on the
number of interfaces, seconds and connections, not on the stream's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from verifier.capture.frames import LINKTYPE_ETHERNET, TCP_ACK, TCP_SYN, decode
from verifier.capture.streams import classify
from verifier.model import Bin, CaptureResult, Connection, InterfaceCount

PortRanges = tuple[tuple[int, int], ...]
FIRST_PAYLOAD_BYTES = 16


def _is_plain_ipv4(data: bytes | memoryview, linktype: int) -> bool:
    """Ethernet, no VLAN tag, IPv4, TCP, not a later fragment: the frames the fast path takes."""
    return (
        linktype == LINKTYPE_ETHERNET
        and len(data) >= 54
        and data[12] == 8
        and data[13] == 0
        and data[23] == 6
        and not ((data[20] & 0x1F) or data[21])
    )


def in_ranges(port: int, ranges: PortRanges) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


@dataclass
class _Iface:
    bytes_tx: int = 0
    bytes_rx: int = 0
    packets_tx: int = 0
    packets_rx: int = 0
    payload_tx: int = 0
    payload_rx: int = 0
    other_bytes: int = 0
    bins: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class _Flow(_Iface):
    """One connection on one interface: its payload per way, and the same counts as an interface,
    so that a verdict can be built from the migration's own connections alone."""

    ways: list[int] = field(default_factory=lambda: [0, 0, 0])  # [to_server, to_client, packets]
    # Bytes per 100 ms, both ways: a migration over san0 lasts about a second, and its rate is
    # only measurable in finer bins than the report's per-second ones.
    fine: dict[int, int] = field(default_factory=dict)


@dataclass
class _Conn:
    per_iface: dict[str, _Flow] = field(default_factory=dict)
    # First payload bytes per direction (0: to the server, 1: to the client), and the interface
    # they were read from: a bridge and its port see the same bytes, read them from one only.
    first: list[bytes] = field(default_factory=lambda: [b"", b""])
    first_iface: list[str | None] = field(default_factory=lambda: [None, None])
    by_syn: bool = False  # oriented by its SYN, not guessed from the ports


class Counter:
    """Accumulates counts; `add` is the hot path, `result` builds the frozen CaptureResult."""

    def __init__(self, ports: PortRanges, t0: float) -> None:
        self.ports = ports
        self.t0 = t0
        self.last_ts = t0
        self.ifaces: dict[str, _Iface] = {}
        self.conns: dict[tuple[str, int, str, int], _Conn] = {}
        # (interface, IPv4 address+port bytes) -> what the slow path decided for that flow direction.
        self._fast: dict[tuple[str, bytes], tuple[_Iface, _Flow | None, int, _Conn]] = {}

    def ensure(self, iface: str) -> None:
        self.ifaces.setdefault(iface, _Iface())

    def add(
        self,
        iface: str,
        outgoing: bool,
        ts: float,
        data: bytes | memoryview,
        orig_len: int,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        # Fast path, the hot one at line rate: an Ethernet IPv4 TCP frame of a flow already seen.
        # Only the lengths are read; the slow path below decided everything else once per flow.
        if linktype == LINKTYPE_ETHERNET and len(data) >= 54 and data[12] == 8 and data[13] == 0 and data[23] == 6:
            fkey = (iface, bytes(data[26:38]))
            hit = self._fast.get(fkey)
            if hit is not None:
                f_stats, f_per, f_way, f_conn = hit
                if f_per is None:
                    f_stats.other_bytes += orig_len
                    return
                ihl = (data[14] & 15) << 2
                if len(data) >= 27 + ihl:
                    total = (data[16] << 8) | data[17]
                    l3 = orig_len - 14
                    payload = (total if 0 < total < l3 else l3) - ihl - ((data[26 + ihl] >> 4) << 2)
                    if payload < 0:
                        payload = 0
                    if not payload or len(f_conn.first[f_way]) >= FIRST_PAYLOAD_BYTES:
                        ways = f_per.ways
                        ways[f_way] += payload
                        ways[2] += 1
                        self._count(f_stats, outgoing, ts, orig_len, payload)
                        self._count(f_per, outgoing, ts, orig_len, payload)
                        tenth = int((ts - self.t0) * 10) if ts >= self.t0 else 0
                        f_per.fine[tenth] = f_per.fine.get(tenth, 0) + orig_len
                        return
        seg = decode(data, orig_len, linktype)
        if seg is None:
            return
        stats = self.ifaces.get(iface)
        if stats is None:
            stats = self.ifaces[iface] = _Iface()
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        conn = self.conns.get(key)
        to_server = True
        if conn is None:
            rkey = (seg.dst, seg.dport, seg.src, seg.sport)
            conn = self.conns.get(rkey)
            if conn is not None:
                key, to_server = rkey, False
            else:
                key, to_server = self._orient(seg.src, seg.sport, seg.dst, seg.dport, seg.flags)
                conn = self.conns[key] = _Conn(by_syn=bool(seg.flags & TCP_SYN))
        way = 0 if to_server else 1
        fast_key = (iface, bytes(data[26:38])) if _is_plain_ipv4(data, linktype) else None
        if not in_ranges(key[3], self.ports):
            # A client whose ephemeral port falls in the range (e.g. libvirtd's control
            # connection): matched by the BPF filter, but not a migration stream.
            stats.other_bytes += orig_len
            if fast_key:
                self._fast[fast_key] = (stats, None, way, conn)
            return
        per = conn.per_iface.get(iface)
        if per is None:
            per = conn.per_iface[iface] = _Flow()
        if fast_key:
            self._fast[fast_key] = (stats, per, way, conn)
        per.ways[way] += seg.payload_len
        per.ways[2] += 1
        got = conn.first[way]
        if seg.payload_len and len(got) < FIRST_PAYLOAD_BYTES and conn.first_iface[way] in (None, iface):
            conn.first_iface[way] = iface
            take = min(seg.payload_len, FIRST_PAYLOAD_BYTES - len(got))  # never Ethernet padding
            conn.first[way] = got + bytes(data[seg.payload_offset : seg.payload_offset + take])
        self._count(stats, outgoing, ts, orig_len, seg.payload_len)
        self._count(per, outgoing, ts, orig_len, seg.payload_len)
        tenth = int((ts - self.t0) * 10) if ts >= self.t0 else 0
        per.fine[tenth] = per.fine.get(tenth, 0) + orig_len

    def _count(self, stats: _Iface, outgoing: bool, ts: float, orig_len: int, payload: int) -> None:
        second = int(ts - self.t0) if ts >= self.t0 else 0
        if ts > self.last_ts:
            self.last_ts = ts
        b = stats.bins.get(second)
        if b is None:
            b = stats.bins[second] = [0, 0]
        if outgoing:
            stats.bytes_tx += orig_len
            stats.packets_tx += 1
            stats.payload_tx += payload
            b[0] += orig_len
        else:
            stats.bytes_rx += orig_len
            stats.packets_rx += 1
            stats.payload_rx += payload
            b[1] += orig_len

    def orient_outgoing(self, data: bytes | memoryview, orig_len: int, linktype: int = LINKTYPE_ETHERNET) -> bool:
        """Whether the frame goes client -> server, as `add` would orient its connection; False if not TCP.

        For captures that do not record direction: the client (the source hypervisor) sends the stream.
        """
        seg = decode(data, orig_len, linktype)
        if seg is None:
            return False
        if (seg.src, seg.sport, seg.dst, seg.dport) in self.conns:
            return True
        if (seg.dst, seg.dport, seg.src, seg.sport) in self.conns:
            return False
        return self._orient(seg.src, seg.sport, seg.dst, seg.dport, seg.flags)[1]

    def _orient(self, src: str, sport: int, dst: str, dport: int, flags: int) -> tuple[tuple[str, int, str, int], bool]:
        """Decide client -> server for a new connection; return (key, this frame goes to server)."""
        fwd, rev = (src, sport, dst, dport), (dst, dport, src, sport)
        if flags & TCP_SYN:
            return (fwd, True) if not flags & TCP_ACK else (rev, False)
        d_in, s_in = in_ranges(dport, self.ports), in_ranges(sport, self.ports)
        if d_in != s_in:
            return (fwd, True) if d_in else (rev, False)
        return (fwd, True) if dport <= sport else (rev, False)

    def result(
        self,
        *,
        drops: dict[str, int] | None = None,
        kernel_packets: dict[str, int] | None = None,
        pcaps: dict[str, str] | None = None,
        snaplen: int = 0,
        bpf: str = "",
        ended_at: float | None = None,
        counters: dict[str, tuple[int, int]] | None = None,
        problems: tuple[str, ...] = (),
    ) -> CaptureResult:
        drops, kernel_packets, pcaps, counters = drops or {}, kernel_packets or {}, pcaps or {}, counters or {}
        ifaces = tuple(
            replace(
                _counts(name, s),
                drops=drops.get(name, 0),
                kernel_packets=kernel_packets.get(name, 0),
                counter_tx=counters[name][0] if name in counters else None,
                counter_rx=counters[name][1] if name in counters else None,
                pcap=pcaps.get(name),
                other_bytes=s.other_bytes,
            )
            for name, s in sorted(self.ifaces.items())
        )
        conns = []
        for (client, cport, server, sport), c in self.conns.items():
            if not c.per_iface:
                continue
            # The same connection crosses a bridge and its port: count it once, where it is largest.
            to_server = max(v.ways[0] for v in c.per_iface.values())
            to_client = max(v.ways[1] for v in c.per_iface.values())
            packets = max(v.ways[2] for v in c.per_iface.values())
            conns.append(
                Connection(
                    client,
                    cport,
                    server,
                    sport,
                    to_server,
                    to_client,
                    packets,
                    tuple(sorted(c.per_iface)),
                    c.first[0].hex(),
                    first_payload_server=c.first[1].hex(),
                    kind=classify(sport, c.first[0], c.first[1]),
                    per_interface=tuple(_counts(name, f) for name, f in sorted(c.per_iface.items())),
                    by_syn=c.by_syn,
                )
            )
        conns.sort(key=lambda c: -(c.payload_to_server + c.payload_to_client))
        return CaptureResult(
            interfaces=ifaces,
            connections=tuple(conns),
            ports=self.ports,
            started_at=self.t0,
            ended_at=ended_at or self.last_ts,
            snaplen=snaplen,
            bpf=bpf,
            problems=problems,
        )


def _counts(name: str, s: _Iface) -> InterfaceCount:
    fine = tuple(sorted(s.fine.items())) if isinstance(s, _Flow) else ()
    return InterfaceCount(
        name=name,
        bytes_tx=s.bytes_tx,
        bytes_rx=s.bytes_rx,
        packets_tx=s.packets_tx,
        packets_rx=s.packets_rx,
        payload_tx=s.payload_tx,
        payload_rx=s.payload_rx,
        bins=tuple(Bin(sec, v[0], v[1]) for sec, v in sorted(s.bins.items())),
        fine_bins=fine,
    )
