"""The attribute stage: which captured connections are the migration's own, and whose the rest are.

On a busy host the migration ports carry other programs too (GlusterFS bricks from 49152, a
backup, another guest's migration); a verdict on "bytes on ports 49152-49215" is then wrong. The
migration's own connections are those its QEMU holds (the ownership sampler's sockets); when no
owner could be read, the streams' first bytes (QEVM, multifd, NBD magic) pick them; when neither
works, every connection counts, as before, and the report says so.

The per-interface counts the verdict uses are rebuilt from the own connections' per-interface
counts; drops, kernel counters and pcaps stay with the interface.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from verifier import profiles
from verifier.capture.counting import in_ranges
from verifier.capture.streams import classify
from verifier.model import (
    Attribution,
    Bin,
    CaptureResult,
    Connection,
    Facts,
    Finding,
    FlowKey,
    ForeignFlow,
    InterfaceCount,
    OwnedFlow,
    Ownership,
    Severity,
)
from verifier.render.units import human_bytes

# Stream kinds that only a migration opens (design.md section 4: first bytes of a stream).
MIGRATION_KINDS = frozenset({"qemu-main", "multifd", "nbd"})


@dataclass(frozen=True)
class Attributed:
    capture: CaptureResult  # the migration's own connections only
    foreign: tuple[ForeignFlow, ...]
    attribution: Attribution
    findings: tuple[Finding, ...] = ()


def attribute(capture: CaptureResult, ownership: Ownership | None, vm: str = "") -> Attributed:
    owners = {f.key: f for f in ownership.flows} if ownership else {}
    others = {f.key: f for f in ownership.foreign} if ownership else {}
    conns = capture.connections
    findings: list[Finding] = []
    if owners:
        mode = Attribution.OWNERSHIP
        own = [c for c in conns if c.key in owners]
    elif any(c.kind in MIGRATION_KINDS for c in conns):
        mode = Attribution.CLASSIFICATION
        own = [c for c in conns if c.kind in MIGRATION_KINDS]
    else:
        mode = Attribution.PORT_RANGE
        own = list(conns)
    if mode != Attribution.OWNERSHIP and conns:
        why = ownership.problem if ownership and ownership.problem else "no socket of its QEMU was seen"
        how = (
            "counted the connections whose first bytes are a migration stream's"
            if mode == Attribution.CLASSIFICATION
            else "counted every connection on the migration ports, as if nothing else used them"
        )
        findings.append(
            Finding(
                "attribution-fallback",
                Severity.WARNING,
                f"the migration's own connections were not identified ({why}): {how}",
            )
        )
    owner_text = ownership.owner if ownership else None
    mine = tuple(replace(c, owner=_owner(c, owners, owner_text)) for c in own)
    sockets = (*ownership.flows, *ownership.foreign) if ownership else ()
    serving = {f.local_port for f in sockets if f.state == "LISTEN"}  # this host's listening ports
    foreign = tuple(_foreign(_reoriented(c, others, serving), others) for c in conns if c not in own)
    if mode == Attribution.OWNERSHIP:
        findings += _disagreements(mine, foreign, vm)
    busy = set(ownership.busy_ports) if ownership else set()
    findings += shared_ports(foreign, mine, capture.ports, busy)
    return Attributed(_restricted(capture, mine), foreign, mode, tuple(findings))


def shared_ports(
    foreign: tuple[ForeignFlow, ...], mine: tuple[Connection, ...], ports: tuple[tuple[int, int], ...], busy: set[int]
) -> list[Finding]:
    """Another program on a migration port: name it, and the free range the prescription offers."""
    by_port: dict[int, list[ForeignFlow]] = {}
    for f in foreign:
        if in_ranges(f.server_port, ports):
            by_port.setdefault(f.server_port, []).append(f)
    if not by_port:
        return []
    taken = busy | set(by_port) | {c.server_port for c in mine} | {f.client_port for f in foreign}
    free = profiles.free_range(taken)
    out = []
    for port, flows in sorted(by_port.items()):
        who = sorted({f"{f.owner} (pid {f.pid})" if f.pid else f.owner or "a remote program" for f in flows})
        total = sum(f.bytes for f in flows)
        where = sorted({i for f in flows for i in f.interfaces})
        qemu = sorted({c.server_port for c in mine})
        msg = (
            f"port {port} on {flows[0].server} carries another program's traffic ({human_bytes(total)} over "
            f"{', '.join(where)}; here: {', '.join(who)})"
        )
        if qemu:
            msg += f"; libvirt skipped it and the migration used {', '.join(map(str, qemu))}"
        out.append(Finding("port-range-shared", Severity.WARNING, msg, facts=Facts(port=port, free_range=free)))
    return out


def _owner(c: Connection, owners: dict[FlowKey, OwnedFlow], fallback: str | None) -> str | None:
    flow = owners.get(c.key)
    return flow.owner if flow is not None else fallback


def _reoriented(c: Connection, sockets: dict[FlowKey, OwnedFlow], serving: set[int]) -> Connection:
    """C the right way round. Without its SYN, the capture took the end in the port ranges for
    the server; a local client whose ephemeral port fell inside them (an iSCSI session, ssh, our
    own libvirt connection, each a port in 49152-49215 about once in 440 connections) was then
    called a server on a migration port. This host's socket settles it: a local end is a server
    only where something listens on its port."""
    sock = sockets.get(c.key)
    if c.by_syn or sock is None or sock.local_port in serving:
        return c
    if sock.local_end != c.server_end:
        return c  # the local end is the client already
    return replace(
        c,
        client=c.server,
        client_port=c.server_port,
        server=c.client,
        server_port=c.client_port,
        payload_to_server=c.payload_to_client,
        payload_to_client=c.payload_to_server,
        first_payload=c.first_payload_server,
        first_payload_server=c.first_payload,
        # The kind as the capture would have named it the right way round (the server's port
        # and who sent which first bytes decide it).
        kind=classify(c.client_port, bytes.fromhex(c.first_payload_server), bytes.fromhex(c.first_payload)),
    )


def _foreign(c: Connection, others: dict[FlowKey, OwnedFlow]) -> ForeignFlow:
    flow = others.get(c.key)
    wire = max((i.bytes_tx + i.bytes_rx for i in c.per_interface), default=0)
    return ForeignFlow(
        c.client,
        c.client_port,
        c.server,
        c.server_port,
        c.interfaces,
        wire,
        c.payload_to_server + c.payload_to_client,
        c.kind,
        flow.owner if flow is not None else None,
        flow.pid if flow is not None else None,
    )


def _disagreements(mine: tuple[Connection, ...], foreign: tuple[ForeignFlow, ...], vm: str) -> list[Finding]:
    """Ownership decides; the streams' first bytes confirm it. Where they disagree, say so."""
    out = []
    odd = [c for c in mine if c.kind not in MIGRATION_KINDS | {"tls", "unknown"}]
    for c in odd:
        out.append(
            Finding(
                "attribution-mismatch",
                Severity.INFO,
                f"{c.client}:{c.client_port} -> {c.server}:{c.server_port} belongs to {vm or 'the guest'}'s QEMU "
                f"but its first bytes look like {c.kind}",
            )
        )
    for f in foreign:
        if f.kind in MIGRATION_KINDS and not (f.owner or "").startswith("qemu ("):
            out.append(
                Finding(
                    "attribution-mismatch",
                    Severity.WARNING,
                    f"{f.client}:{f.client_port} -> {f.server}:{f.server_port} on {', '.join(f.interfaces)} starts "
                    f"like a migration stream ({f.kind}) but no local QEMU holds it"
                    + (f" (owner: {f.owner})" if f.owner else ""),
                )
            )
    return out


def _restricted(capture: CaptureResult, mine: tuple[Connection, ...]) -> CaptureResult:
    ifaces = []
    for total in capture.interfaces:
        parts = [p for c in mine for p in c.per_interface if p.name == total.name]
        own = _sum(total.name, parts)
        rest = total.bytes_tx + total.bytes_rx - own.bytes_tx - own.bytes_rx
        ifaces.append(
            replace(
                total,
                bytes_tx=own.bytes_tx,
                bytes_rx=own.bytes_rx,
                packets_tx=own.packets_tx,
                packets_rx=own.packets_rx,
                payload_tx=own.payload_tx,
                payload_rx=own.payload_rx,
                bins=own.bins,
                fine_bins=own.fine_bins,
                other_bytes=total.other_bytes + rest,
            )
        )
    return replace(capture, interfaces=tuple(ifaces), connections=mine)


def _sum(name: str, parts: list[InterfaceCount]) -> InterfaceCount:
    bins: dict[int, list[int]] = {}
    fine: dict[int, int] = {}
    for p in parts:
        for tenth, n in p.fine_bins:
            fine[tenth] = fine.get(tenth, 0) + n
        for b in p.bins:
            acc = bins.setdefault(b.second, [0, 0])
            acc[0] += b.bytes_tx
            acc[1] += b.bytes_rx
    return InterfaceCount(
        name,
        bytes_tx=sum(p.bytes_tx for p in parts),
        bytes_rx=sum(p.bytes_rx for p in parts),
        packets_tx=sum(p.packets_tx for p in parts),
        packets_rx=sum(p.packets_rx for p in parts),
        payload_tx=sum(p.payload_tx for p in parts),
        payload_rx=sum(p.payload_rx for p in parts),
        bins=tuple(Bin(s, tx, rx) for s, (tx, rx) in sorted(bins.items())),
        fine_bins=tuple(sorted(fine.items())),
    )
