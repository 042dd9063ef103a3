"""The route chain QEMU's connection will follow: name -> address -> policy rule -> table -> route
-> egress -> master chain -> bond member -> link, each step with its evidence.

The kernel does the route lookup (pyroute2 `route('get')` behind `RouteLookup`), so policy rules
and tables are honoured exactly as they will be for QEMU's connect().
"""

from __future__ import annotations

from pathlib import Path

from verifier import bonds
from verifier.model import MemberPick, Prediction, Reason, Topology
from verifier.predict.links import slower_links
from verifier.resolve import HOSTS, Resolver, resolve
from verifier.routing import RouteLookup, table_name


def predict(
    host: str | None,
    origin: Reason,
    topology: Topology,
    routes: RouteLookup,
    hosts: Path = HOSTS,
    dest: str | None = None,
    flow: bonds.Flow | None = None,
    resolver: Resolver | None = None,
) -> Prediction:
    """The chain QEMU's connection will follow, each step with its evidence."""
    reasons = [origin]
    if host is None:
        return Prediction(None, None, None, reasons=tuple(reasons))
    res = resolver(host) if resolver else resolve(host, hosts)
    used = res.address
    detail = f"{host} -> {', '.join(res.addresses) or 'nothing'} ({res.source})"
    if len(res.addresses) > 1:
        detail += f"; QEMU connects to the first, {used}"
    reasons.append(Reason("name resolution", detail, res.evidence))
    if used is None:
        return Prediction(host, None, None, reasons=tuple(reasons))
    route = routes.route_get(used)
    if route is None or route.interface is None:
        reasons.append(Reason("route", f"no route to {used}", "kernel route lookup failed"))
        return Prediction(host, used, None, reasons=tuple(reasons))
    reasons.append(
        Reason(
            "policy rule",
            route.rule.text if route.rule else f"(no rule found for table {table_name(route.table)})",
            f"ip rule; table {table_name(route.table)}",
        )
    )
    via = f"via {route.gateway}" if route.gateway else "directly connected"
    metric = f", metric {route.metric}" if route.metric is not None else ""
    reasons.append(
        Reason(
            "route",
            f"{route.prefix or used} {via} dev {route.interface}{metric}, source {route.source}",
            f"ip route get {used}: table {table_name(route.table)}",
        )
    )
    path = topology.chain_down(route.interface)
    if len(path) > 1:
        reasons.append(Reason("master chain", " -> ".join(path), "IFLA_MASTER of the ports/members"))
    picks = tuple(bond_pick(topology, name, flow) for name in path if (i := topology.get(name)) and i.bond)
    reasons += [pick_reason(topology, pick) for pick in picks]
    reasons.append(link_reason(topology, path))
    findings = slower_links(topology, route.interface, dest or host, hosts)
    return Prediction(
        host,
        used,
        route.interface,
        path=path,
        source_address=route.source,
        gateway=route.gateway,
        table=route.table,
        reasons=tuple(reasons),
        findings=tuple(findings),
        rule=route.rule,
        bond_picks=picks,
    )


def bond_pick(topology: Topology, name: str, flow: bonds.Flow | None) -> MemberPick:
    """The member of bond NAME that FLOW leaves by, as a value: worded before capture, and checked
    against what the member sniffers saw after it."""
    bond = topology.get(name)
    assert bond is not None and bond.bond is not None
    info = bond.bond
    key = (flow.src, flow.sport, flow.dst, flow.dport) if flow else None
    if info.mode == "active-backup":
        return MemberPick(name, info.mode, info.xmit_hash_policy, info.active_member, "active-backup", key)
    if info.mode in ("balance-xor", "802.3ad") and info.xmit_hash_policy:
        if flow is None:
            return MemberPick(name, info.mode, info.xmit_hash_policy, None, "per-flow")
        usable = tuple(m for m in bond.members if (topology.get(m) or bond).operstate == "UP")
        if info.xmit_hash_policy not in bonds.POLICIES or not usable:
            return MemberPick(name, info.mode, info.xmit_hash_policy, None, "unpredictable", key)
        # The running kernel's formula: the hash changed between kernel generations.
        sel = bonds.select(info.xmit_hash_policy, len(usable), flow)
        member = usable[sel.member_index]
        return MemberPick(name, info.mode, info.xmit_hash_policy, member, "hash", key, sel.hash, sel.generation.name)
    return MemberPick(name, info.mode, info.xmit_hash_policy, None, "unpredictable", key)


def pick_text(pick: MemberPick) -> str:
    if pick.how == "active-backup":
        return f"active member {pick.member or 'unknown'}"
    if pick.how == "per-flow":
        return (
            f"{pick.policy}: each connection hashes separately (the source port is known only "
            "once the stream is captured)"
        )
    if pick.how == "hash" and pick.flow:
        src, sport, dst, dport = pick.flow
        return (
            f"{pick.policy} hash of {src}:{sport} -> {dst}:{dport} picks {pick.member} "
            f"(kernel {pick.generation} formula)"
        )
    if pick.policy and pick.mode in ("balance-xor", "802.3ad"):
        return f"{pick.policy} cannot be predicted, only observed"
    return f"mode {pick.mode}: the member is not predictable per flow"


def bond_reason(topology: Topology, name: str, flow: bonds.Flow | None) -> Reason:
    return pick_reason(topology, bond_pick(topology, name, flow))


def pick_reason(topology: Topology, pick: MemberPick) -> Reason:
    bond = topology.get(pick.bond)
    assert bond is not None
    states = ", ".join(f"{m} {(topology.get(m) or bond).operstate.lower()}" for m in bond.members)
    return Reason(
        "bond",
        f"{pick.bond} mode {pick.mode}: {pick_text(pick)}; members {states}",
        "IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA",
    )


def link_reason(topology: Topology, path: tuple[str, ...]) -> Reason:
    parts = []
    for name in path:
        iface = topology.get(name)
        if iface is None:
            continue
        speed = f"{iface.speed_mbps} Mbit/s" if iface.speed_mbps else "speed unknown"
        if iface.rate_limit_mbps:
            speed += f", shaped to {iface.rate_limit_mbps} Mbit/s (tbf)"
        carrier = {True: "carrier up", False: "NO CARRIER", None: "carrier unknown"}[iface.carrier]
        parts.append(f"{name}: {speed}, MTU {iface.mtu}, {carrier}")
    return Reason("link", "; ".join(parts), "/sys/class/net/*/speed, IFLA_MTU, IFLA_CARRIER, tc qdisc")
