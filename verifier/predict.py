"""Predict the path: migration URI -> host -> address -> route -> egress -> master chain.

The kernel does the route lookup (pyroute2 `route('get')`), so policy rules and tables are
honoured exactly as they will be for QEMU's connect().
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from verifier import bonds
from verifier.errors import UsageError
from verifier.model import Finding, Prediction, Reason, Topology
from verifier.resolve import HOSTS, names_in_subnet, resolve
from verifier.routing import RouteLookup, table_name

URI_SCHEMES = ("tcp", "rdma", "unix")


def uri_host(uri: str) -> str:
    """The host part of a QEMU migration URI (tcp://host:port, tcp:host:port, rdma://...)."""
    parts = urlsplit(uri)
    if parts.scheme not in URI_SCHEMES:
        raise UsageError(
            f"--migrate-uri {uri!r} is not a QEMU migration URI", hint="use tcp://HOST[:PORT], e.g. tcp://node2-san"
        )
    host = parts.hostname
    if not host and parts.path:  # tcp:host:port form
        host = parts.path.split(":")[0]
    if not host:
        raise UsageError(f"--migrate-uri {uri!r} names no host", hint="use tcp://HOST[:PORT]")
    return host


def link_subnets(topology: Topology, iface: str) -> list[str]:
    """IFACE's addresses ("addr/prefix") other than link-local ones."""
    info = topology.get(iface)
    return [a for a in (info.addresses if info else ()) if not ipaddress.ip_interface(a).is_link_local]


def dest_on_link(topology: Topology, dest: str, iface: str, hosts: Path = HOSTS) -> tuple[str, str] | None:
    """(name, address) of DEST on one of IFACE's subnets, from the hosts file (node2 -> node2-san)."""
    for subnet in link_subnets(topology, iface):
        found = names_in_subnet(subnet, dest, hosts)
        if found:
            return found[0]
    return None


def via_uri(topology: Topology, iface: str, dest: str, hosts: Path = HOSTS) -> tuple[str, Reason]:
    """The usual fix as one option: the destination's address on IFACE's subnet."""
    if topology.get(iface) is None:
        raise UsageError(f"--via {iface}: no such interface on this host", hint="list them with `ip -br addr`")
    subnets = link_subnets(topology, iface)
    if not subnets:
        raise UsageError(
            f"--via {iface}: the interface has no address", hint="give it one, or use --migrate-uri tcp://ADDRESS"
        )
    found = dest_on_link(topology, dest, iface, hosts)
    if found:
        name, addr = found
        net = next(n for s in subnets if ipaddress.ip_address(addr) in (n := ipaddress.ip_interface(s).network))
        return f"tcp://{addr}", Reason(
            "migration URI", f"--via {iface}: {dest}'s address on {net} is {addr}", f"{hosts}: {addr} {name}"
        )
    raise UsageError(
        f"--via {iface}: no address of {dest} on {', '.join(subnets)} is known",
        hint=f"add a hosts entry such as '{dest}-{iface}', or use --migrate-uri tcp://ADDRESS",
    )


def predict(
    host: str | None,
    origin: Reason,
    topology: Topology,
    routes: RouteLookup,
    hosts: Path = HOSTS,
    dest: str | None = None,
    flow: bonds.Flow | None = None,
) -> Prediction:
    """The chain QEMU's connection will follow, each step with its evidence."""
    reasons = [origin]
    if host is None:
        return Prediction(None, None, None, reasons=tuple(reasons))
    res = resolve(host, hosts)
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
            route.rule or f"(no rule found for table {table_name(route.table)})",
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
    reasons += [bond_reason(topology, name, flow) for name in path if (i := topology.get(name)) and i.bond]
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
    )


def bond_reason(topology: Topology, name: str, flow: bonds.Flow | None) -> Reason:
    bond = topology.get(name)
    assert bond is not None and bond.bond is not None
    info = bond.bond
    states = ", ".join(f"{m} {(topology.get(m) or bond).operstate.lower()}" for m in bond.members)
    if info.mode == "active-backup":
        pick = f"active member {info.active_member or 'unknown'}"
    elif info.mode in ("balance-xor", "802.3ad") and info.xmit_hash_policy:
        usable = tuple(m for m in bond.members if (topology.get(m) or bond).operstate == "UP")
        member = bonds.member_for(info.xmit_hash_policy, usable, flow) if flow else None
        if member and flow:
            pick = f"{info.xmit_hash_policy} hash of {flow.src}:{flow.sport} -> {flow.dst}:{flow.dport} picks {member}"
        elif flow is None:
            pick = (
                f"{info.xmit_hash_policy}: each connection hashes separately (the source port is known only "
                "once the stream is captured)"
            )
        else:
            pick = f"{info.xmit_hash_policy} cannot be predicted, only observed"
    else:
        pick = f"mode {info.mode}: the member is not predictable per flow"
    return Reason("bond", f"{name} mode {info.mode}: {pick}; members {states}", "IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA")


def chain_mbps(topology: Topology, path: tuple[str, ...]) -> int | None:
    """What one stream can get along a chain: the slowest known link (a bond member, not the sum)."""
    speeds = [i.effective_mbps for n in path if (i := topology.get(n)) and i.effective_mbps]
    return min(speeds) if speeds else None


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
        if iface.role and iface.role.startswith("corosync"):
            continue
        other = chain_mbps(topology, topology.chain_down(iface.name))
        if not other or other <= chosen:
            continue
        found = dest_on_link(topology, dest, iface.name, hosts)
        if found:
            faster.append((iface.name, other, found))
    if not faster:
        return []
    best, speed, (name, addr) = max(faster, key=lambda f: f[1])
    listed = ", ".join(f"{n} ({s} Mbit/s, {h[0]} = {h[1]})" for n, s, h in faster)
    return [
        Finding(
            "slower-link",
            "warning",
            f"the stream will take {egress} ({chosen} Mbit/s) although faster links also reach {dest}: {listed}",
            f'migrate over {best}: --via {best}, or migration_host = "{name}" on {dest}',
        )
    ]
