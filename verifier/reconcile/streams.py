"""The migration's connections as a summary by kind, and what their kinds alone tell: a tunnelled
migration, guest memory in clear on a link that carries other traffic."""

from __future__ import annotations

from verifier.capture.streams import KINDS
from verifier.model import Finding, KindCount, Leg, Severity, StreamSummary, Topology

CLEARTEXT_KINDS = ("qemu-main", "multifd", "nbd")
OTHER_TRAFFIC_SHARE = 0.05


def stream_summary(leg: Leg, ports: tuple[tuple[int, int], ...]) -> StreamSummary:
    conns = [c for c in leg.connections if c.payload_to_server or c.payload_to_client]
    kinds = {}
    for kind in KINDS:
        mine = [c for c in conns if c.kind == kind]
        if mine:
            kinds[kind] = KindCount(len(mine), sum(c.payload_to_server + c.payload_to_client for c in mine))
    return StreamSummary(
        ports=tuple(ports),
        endpoints=tuple(f"{c.client}:{c.client_port} -> {c.server}:{c.server_port}" for c in conns),
        server_ports=tuple(sorted({c.server_port for c in conns})),
        connections=len(conns),
        kinds=kinds,
    )


def stream_findings(leg: Leg) -> tuple[Finding, ...]:
    tunnels = [c for c in leg.connections if c.kind in ("libvirtd-tunnel", "ssh-tunnel") and c.payload_to_server]
    if not tunnels:
        return ()
    c = tunnels[0]
    via = "libvirtd" if c.kind == "libvirtd-tunnel" else "ssh"
    return (
        Finding(
            "tunnelled",
            Severity.INFO,
            f"the migration rides the {via} control connection {c.client}:{c.client_port} -> "
            f"{c.server}:{c.server_port} (VIR_MIGRATE_TUNNELLED): its path is the control connection's",
        ),
    )


def cleartext_findings(leg: Leg, topology: Topology) -> tuple[Finding, ...]:
    """A clear-text stream (guest RAM) on a link that also carries other traffic deserves a warning."""
    kinds = {c.kind for c in leg.connections if c.payload_to_server}
    if not kinds & set(CLEARTEXT_KINDS) or "tls" in kinds or leg.observed_interface is None:
        return ()
    iface = topology.get(leg.observed_interface)
    report = next((r for r in leg.interfaces if r.name == leg.observed_interface), None)
    shared = iface is not None and (iface.kind == "bridge" or (iface.role or "").startswith(("lan", "corosync")))
    if report is not None and report.counter_tx is not None and report.counter_rx is not None:
        carried = report.counter_tx + report.counter_rx
        seen = report.bytes_tx + report.bytes_rx
        shared = shared or (carried > 0 and (carried - seen) / carried > OTHER_TRAFFIC_SHARE)
    if not shared:
        return ()
    return (
        Finding(
            "cleartext-on-shared-link",
            Severity.WARNING,
            f"the migration stream (guest memory, unencrypted) crossed {leg.observed_interface}, a link that "
            "also carries other traffic",
        ),
    )
