"""Bonds on the observed path, once the flows are known: the member the kernel's hash picks for
each migration connection, what the member sniffers saw, and a warning when every connection
hashes onto one member (the bond then adds nothing to this migration)."""

from __future__ import annotations

from verifier import bonds
from verifier.model import Facts, Finding, Leg, MemberPick, Severity, Topology
from verifier.predict import bond_pick

NO_MAC = "00:00:00:00:00:00"


def member_picks(topology: Topology, bond: str, leg: Leg, dst_mac: str | None) -> tuple[MemberPick, ...]:
    iface = topology.get(bond)
    assert iface is not None
    picks = []
    for c in leg.connections:
        if c.payload_to_server:
            flow = bonds.Flow(iface.mac or NO_MAC, dst_mac or NO_MAC, c.client, c.server, c.client_port, c.server_port)
            picks.append(bond_pick(topology, bond, flow))
    return tuple(picks)


def bond_findings(topology: Topology, leg: Leg, dst_mac: str | None) -> tuple[Finding, ...]:
    out: list[Finding] = []
    counted = {r.name: r.payload for r in leg.interfaces}
    for name in leg.observed_path:
        iface = topology.get(name)
        if iface is None or iface.bond is None:
            continue
        picks = member_picks(topology, name, leg, dst_mac)
        if not picks:
            continue
        known = [p for p in picks if p.member and p.flow]
        seen = max(iface.members, key=lambda m: counted.get(m, 0), default=None)
        text = ", ".join(f"{p.flow[0]}:{p.flow[1]} -> {p.member}" for p in known if p.flow) or "not predictable"
        out.append(
            Finding(
                "bond-members",
                Severity.INFO,
                f"{name} ({iface.bond.mode}, {iface.bond.xmit_hash_policy}): "
                f"kernel hash {text}; the member sniffers saw the most on {seen}"
                + ("" if dst_mac else " (next hop MAC unknown: layer2 hashes assume 00)"),
            )
        )
        mismatch = mismatch_finding(name, known, seen, counted)
        if mismatch:
            out.append(mismatch)
        shared = shared_finding(topology, name, picks)
        if shared:
            out.append(shared)
    return tuple(out)


def shared_finding(topology: Topology, bond: str, picks: tuple[MemberPick, ...]) -> Finding | None:
    """Several migration connections on one bond member: the bond adds nothing to this migration."""
    iface = topology.get(bond)
    members = {p.member for p in picks if p.member}
    if iface is None or iface.bond is None or len(picks) < 2 or len(members) != 1:
        return None
    member = members.pop()
    policy = iface.bond.xmit_hash_policy or "?"
    return Finding(
        "bond-member-shared",
        Severity.WARNING,
        f"all {len(picks)} migration connections hash to {member} of {bond} ({iface.bond.mode}, {policy})",
        facts=Facts(interface=bond, member=member, policy=policy, count=len(picks)),
    )


def mismatch_finding(bond: str, known: list[MemberPick], seen: str | None, counted: dict[str, int]) -> Finding | None:
    """The kernel's hash (as modelled for this kernel generation) put the stream on one member and
    the member sniffers saw it on another: the model, or the assumed generation, is wrong here."""
    predicted = {p.member for p in known}
    if not known or seen is None or not counted.get(seen) or seen in predicted or len(predicted) != 1:
        return None
    (member,) = predicted
    generation = known[0].generation or "unknown"
    return Finding(
        "hash-model-mismatch",
        Severity.WARNING,
        f"{bond}: the {known[0].policy} hash of the kernel {generation} formula picks {member}, but the member "
        f"sniffers saw the stream on {seen}: the member predictions for this bond cannot be trusted",
        facts=Facts(interface=bond, member=member, policy=known[0].policy, name=generation),
    )
