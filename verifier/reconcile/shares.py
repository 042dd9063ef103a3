"""Per-interface shares of the stream, the observed path, and the share on the expected link.

A bridge and its port both see the whole stream, so the stream's total counts each packet once,
at the L3 interface (or, when only a port was watched, at that port).
"""

from __future__ import annotations

from verifier import expect
from verifier.model import CaptureResult, Expectation, InterfaceReport, Topology

PATH_MEMBER_SHARE = 0.5  # a port/member is on the path when it carried half its L3 group's bytes


def interface_reports(topology: Topology, capture: CaptureResult) -> tuple[tuple[InterfaceReport, ...], dict[str, int]]:
    """Per-interface reports with shares, and the stream bytes per L3 group."""
    counted = {c.name: c for c in capture.interfaces}
    groups: dict[str, int] = {}
    for name, c in counted.items():
        l3 = topology.l3_of(name)
        if l3 in counted:
            if l3 == name:
                groups[l3] = c.payload
        else:
            groups[l3] = max(groups.get(l3, 0), c.payload)
    total = sum(groups.values())
    reports = []
    for name, c in counted.items():
        info = topology.get(name)
        reports.append(
            InterfaceReport(
                name=name,
                kind=info.kind if info else "unknown",
                master=info.master if info else None,
                role=info.role if info else None,
                bytes_tx=c.bytes_tx,
                bytes_rx=c.bytes_rx,
                packets=c.packets,
                payload=c.payload,
                share=(c.payload / total) if total else 0.0,
                drops=c.drops,
                kernel_packets=c.kernel_packets,
                speed_mbps=info.speed_mbps if info else None,
                other_bytes=c.other_bytes,
                pcap=c.pcap,
                bins=c.bins,
                counter_tx=c.counter_tx,
                counter_rx=c.counter_rx,
            )
        )
    # L3 interfaces in index order, each followed by its ports/members: br0, eth0, ring1, san0 ...
    order: dict[str, int] = {}
    for iface in topology.interfaces:
        if topology.l3_of(iface.name) == iface.name:
            for name in topology.chain_down(iface.name):
                order.setdefault(name, len(order))
    reports.sort(key=lambda r: order.get(r.name, 1 << 30))
    return tuple(reports), groups


def observed_path(
    topology: Topology, reports: tuple[InterfaceReport, ...], groups: dict[str, int]
) -> tuple[str | None, tuple[str, ...]]:
    if not groups or max(groups.values()) == 0:
        return None, ()
    l3 = max(groups, key=lambda g: groups[g])
    by_name = {r.name: r for r in reports}
    path = [l3]
    for name in topology.chain_down(l3)[1:]:
        r = by_name.get(name)
        if r and r.payload >= PATH_MEMBER_SHARE * groups[l3]:
            path.append(name)
    return l3, tuple(path)


def expected_share(
    topology: Topology, expectation: Expectation, reports: tuple[InterfaceReport, ...], groups: dict[str, int]
) -> float:
    total = sum(groups.values())
    if not total:
        return 0.0
    wanted = expect.wanted_interfaces(topology, expectation)
    by_name = {r.name: r for r in reports}
    hit = 0
    for l3, group_bytes in groups.items():
        if l3 in wanted:
            hit += group_bytes
            continue
        ports = [by_name[n].payload for n in topology.chain_down(l3)[1:] if n in wanted and n in by_name]
        if ports:
            hit += max(ports)
    return hit / total
