"""Link speeds along a path, and the warning when a faster link would reach the destination.

Corosync ring links are never offered as the faster way: they reach the peer, but bulk traffic on
the heartbeat link risks token loss and fencing.
"""

from __future__ import annotations

from pathlib import Path

from verifier.model import Facts, Finding, Severity, Topology
from verifier.predict.uri import dest_on_link
from verifier.resolve import HOSTS


def is_ring(topology: Topology, name: str) -> bool:
    iface = topology.get(topology.l3_of(name))
    return bool(iface and iface.role and iface.role.startswith("corosync"))


def chain_mbps(topology: Topology, path: tuple[str, ...]) -> int | None:
    """What one stream can get along a chain: the slowest known link (a bond member, not the sum)."""
    speeds = [i.effective_mbps for n in path if (i := topology.get(n)) and i.effective_mbps]
    return min(speeds) if speeds else None


def slower_links(topology: Topology, egress: str, dest: str, hosts: Path = HOSTS) -> list[Finding]:
    """Warn when another interface that reaches DEST would be faster than the chosen one.

    Corosync ring links are left out: they reach the peer, but must not carry bulk traffic.
    """
    chosen = chain_mbps(topology, topology.chain_down(egress))
    if not chosen:
        return []
    faster = []
    for iface in topology.interfaces:
        if iface.name == egress or iface.master or iface.kind == "loopback":
            continue
        if is_ring(topology, iface.name):
            continue
        other = chain_mbps(topology, topology.chain_down(iface.name))
        if not other or other <= chosen:
            continue
        found = dest_on_link(topology, dest, iface.name, hosts)
        if found:
            faster.append((iface.name, other, found))
    if not faster:
        return []
    best, _speed, (name, _addr) = max(faster, key=lambda f: f[1])
    listed = ", ".join(f"{n} ({s} Mbit/s, {h[0]} = {h[1]})" for n, s, h in faster)
    return [
        Finding(
            "slower-link",
            Severity.WARNING,
            f"the stream will take {egress} ({chosen} Mbit/s) although faster links also reach {dest}: {listed}",
            facts=Facts(interface=best, name=name),
        )
    ]


def ring_finding(
    topology: Topology, path: tuple[str, ...], dest: str, expected: set[str], hosts: Path = HOSTS, seen: bool = False
) -> Finding | None:
    """The stream on the corosync ring: bulk traffic there risks token loss and fencing. An error
    unless the user expects exactly that link; the fix names a link that reaches DEST instead."""
    ring = next((n for n in path if is_ring(topology, n)), None)
    if ring is None:
        return None
    others = []
    for iface in topology.interfaces:
        if iface.master or iface.kind == "loopback" or is_ring(topology, iface.name):
            continue
        found = dest_on_link(topology, dest, iface.name, hosts)
        if found:
            others.append((chain_mbps(topology, topology.chain_down(iface.name)) or 0, iface.name, found[0]))
    best = max(others, key=lambda o: o[0]) if others else None  # the first of the fastest
    verb = "took" if seen else "will take"
    return Finding(
        "ring-link",
        Severity.WARNING if ring in expected or topology.l3_of(ring) in expected else Severity.ERROR,
        f"the stream {verb} {ring}, the cluster's corosync ring: a migration there can delay the totem "
        "token past its timeout, and the cluster then fences a node",
        facts=Facts(interface=ring, expected=best[1] if best else None, name=best[2] if best else None),
    )
