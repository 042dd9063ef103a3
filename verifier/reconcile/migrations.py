"""`watch`: each migration in the window on its own. The connections one QEMU owned for one guest
make one leg (its own path, bytes, verdict against --expect); the window's verdict is the worst.

A migration is one QEMU process of one guest, one way: a guest that leaves and comes back within
the window (a round trip, a Pacemaker failback) is two migrations, the source QEMU's outbound
connections and the incoming QEMU's inbound ones, not one entry with both mixed."""

from __future__ import annotations

from verifier.attribute import attribute
from verifier.capture.counting import in_ranges
from verifier.errors import exit_code_for
from verifier.model import (
    CaptureResult,
    Expectation,
    FlowKey,
    MigrationResult,
    MigrationSeen,
    MigrationStatus,
    OwnedFlow,
    Ownership,
    Topology,
    Verdict,
)
from verifier.reconcile.verdict import decide


def per_domain(
    topology: Topology,
    captured: CaptureResult,
    owners: list[tuple[str, str, Ownership]],
    expectation: Expectation,
    migration: MigrationResult,
) -> tuple[MigrationSeen, ...]:
    """OWNERS: (guest, direction, its QEMU's flows) per migration, as by_domain() makes them."""
    out = []
    for guest, direction, ownership in owners:
        own = attribute(captured, ownership, guest)
        if not own.capture.connections:
            continue  # its QEMU held a socket on the ports that carried nothing (a listener's peer)
        leg = decide(topology, own.capture, migration, None, expectation, require_coverage=False, totals=captured)
        out.append(
            MigrationSeen(
                domain=guest,
                direction=direction,
                verdict=leg.verdict,
                observed_interface=leg.observed_interface,
                observed_path=leg.observed_path,
                bytes=leg.coverage.payload_bytes,
                connections=len(own.capture.connections),
                expected_share=leg.expected_share,
            )
        )
    return tuple(out)


def worst(verdicts: list[Verdict]) -> Verdict:
    """The verdict whose exit code is the highest: an inconclusive window outranks a wrong path."""
    return max(verdicts, key=lambda v: exit_code_for(v, MigrationStatus.COMPLETED))


def servers_of(captured: CaptureResult) -> dict[FlowKey, tuple[str, int]]:
    """Each captured connection's server end (canonical address, port), by connection key. The
    capture orients a connection by its SYN when it saw one, by the port range only otherwise."""
    return {c.key: c.server_end for c in captured.connections}


def direction_of(flow: OwnedFlow, servers: dict[FlowKey, tuple[str, int]], ports: tuple[tuple[int, int], ...]) -> str:
    """Inbound when this host's end is the server (an incoming QEMU accepted the connection),
    outbound when it connected. Not by the port range alone: a source QEMU's ephemeral port can
    fall inside it (Linux's 32768-60999 contains 49152-49215), and then both ends are in it. The
    range decides only a connection the capture did not see."""
    server = servers.get(flow.key)
    if server is None:
        return "inbound" if in_ranges(flow.local_port, ports) else "outbound"
    return "inbound" if server == flow.local_end else "outbound"


def by_domain(flows: tuple[OwnedFlow, ...], captured: CaptureResult) -> list[tuple[str, str, Ownership]]:
    """One (guest, direction, Ownership) per migration, i.e. per guest, QEMU process and way, in
    that order: that QEMU's flows, and everyone else's as foreign."""
    servers = servers_of(captured)
    groups: dict[tuple[str, str, int], list[OwnedFlow]] = {}
    for f in flows:
        if f.role == "migration":
            guest = f.owner[len("qemu (") : -1]
            groups.setdefault((guest, direction_of(f, servers, captured.ports), f.pid or 0), []).append(f)
    out = []
    for (guest, direction, pid), group in sorted(groups.items()):
        mine = tuple(group)
        others = tuple(f for f in flows if f not in group)
        out.append((guest, direction, Ownership(pid or None, f"qemu ({guest})", mine, others, None, 0)))
    return out


def all_qemu(flows: tuple[OwnedFlow, ...], problem: str | None) -> Ownership:
    """Every QEMU's flows as the migration's, the rest foreign: the watch window as a whole."""
    mine = tuple(f for f in flows if f.role == "migration")
    return Ownership(None, "qemu", mine, tuple(f for f in flows if f.role != "migration"), problem, 0)
