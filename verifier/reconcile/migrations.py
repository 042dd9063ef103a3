"""`watch`: each migration in the window on its own. The connections each guest's QEMU owned make
one leg each (its own path, bytes, verdict against --expect); the window's verdict is the worst."""

from __future__ import annotations

from verifier.attribute import attribute
from verifier.capture.counting import in_ranges
from verifier.errors import exit_code_for
from verifier.model import (
    CaptureResult,
    Expectation,
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
    owners: dict[str, Ownership],
    expectation: Expectation,
    migration: MigrationResult,
) -> tuple[MigrationSeen, ...]:
    out = []
    for guest, ownership in sorted(owners.items()):
        own = attribute(captured, ownership, guest)
        if not own.capture.connections:
            continue  # its QEMU held a socket on the ports that carried nothing (a listener's peer)
        leg = decide(topology, own.capture, migration, None, expectation, require_coverage=False, totals=captured)
        # An incoming QEMU listens on the migration port: its end of the connection is the server.
        inbound = any(in_ranges(f.local_port, captured.ports) for f in ownership.flows)
        out.append(
            MigrationSeen(
                domain=guest,
                direction="inbound" if inbound else "outbound",
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


def by_domain(flows: tuple[OwnedFlow, ...]) -> dict[str, Ownership]:
    """One Ownership per guest whose QEMU held a connection: its flows, and everyone else's."""
    guests = sorted({f.owner[len("qemu (") : -1] for f in flows if f.role == "migration"})
    out = {}
    for guest in guests:
        owner = f"qemu ({guest})"
        mine = tuple(f for f in flows if f.owner == owner)
        pid = mine[0].pid if mine else None
        out[guest] = Ownership(pid, owner, mine, tuple(f for f in flows if f.owner != owner), None, 0)
    return out


def all_qemu(flows: tuple[OwnedFlow, ...], problem: str | None) -> Ownership:
    """Every QEMU's flows as the migration's, the rest foreign: the watch window as a whole."""
    mine = tuple(f for f in flows if f.role == "migration")
    return Ownership(None, "qemu", mine, tuple(f for f in flows if f.role != "migration"), problem, 0)
