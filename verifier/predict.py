"""Predict the path: migration URI -> host -> address -> route -> egress -> master chain.

The kernel does the route lookup (pyroute2 `route('get')`), so policy rules and tables are
honoured exactly as they will be for QEMU's connect().
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from verifier.errors import UsageError
from verifier.model import Prediction, Reason, Topology
from verifier.resolve import HOSTS, names_in_subnet, resolve

URI_SCHEMES = ("tcp", "rdma", "unix")


@dataclass(frozen=True)
class RouteInfo:
    interface: str | None
    source: str | None
    gateway: str | None
    table: int | None


class RouteLookup(Protocol):
    def route_get(self, dst: str) -> RouteInfo | None: ...


class NetlinkRoutes:
    """The real lookup, in this process's network namespace."""

    def route_get(self, dst: str) -> RouteInfo | None:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as ipr:
            try:
                answer = ipr.route("get", dst=dst)
            except NetlinkError:
                return None
            if not answer:
                return None
            msg: Any = answer[0]
            oif = msg.get_attr("RTA_OIF")
            name = None
            if oif:
                links = ipr.get_links(oif)
                name = links[0].get_attr("IFLA_IFNAME") if links else None
            return RouteInfo(
                name,
                msg.get_attr("RTA_PREFSRC"),
                msg.get_attr("RTA_GATEWAY"),
                msg.get_attr("RTA_TABLE") or msg.get("table"),
            )


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


def via_uri(topology: Topology, iface: str, dest: str, hosts: Path = HOSTS) -> tuple[str, Reason]:
    """The usual fix as one option: the destination's address on IFACE's subnet."""
    info = topology.get(iface)
    if info is None:
        raise UsageError(f"--via {iface}: no such interface on this host", hint="list them with `ip -br addr`")
    subnets = [a for a in info.addresses if not a.startswith("fe80")]
    if not subnets:
        raise UsageError(
            f"--via {iface}: the interface has no address", hint="give it one, or use --migrate-uri tcp://ADDRESS"
        )
    for subnet in subnets:
        found = names_in_subnet(subnet, dest, hosts)
        if found:
            name, addr = found[0]
            net = ipaddress.ip_interface(subnet).network
            return f"tcp://{addr}", Reason(
                "migration URI", f"--via {iface}: {dest}'s address on {net} is {addr}", f"{hosts}: {addr} {name}"
            )
    raise UsageError(
        f"--via {iface}: no address of {dest} on {', '.join(subnets)} is known",
        hint=f"add a hosts entry such as '{dest}-{iface}', or use --migrate-uri tcp://ADDRESS",
    )


def predict(
    host: str | None, origin: Reason, topology: Topology, routes: RouteLookup, hosts: Path = HOSTS
) -> Prediction:
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
    via = f" via {route.gateway}" if route.gateway else " (directly connected)"
    reasons.append(
        Reason(
            "route",
            f"{used}{via} out of {route.interface}, source {route.source}, table {route.table}",
            "ip route get " + used,
        )
    )
    path = topology.chain_down(route.interface)
    if len(path) > 1:
        reasons.append(Reason("master chain", " -> ".join(path), "IFLA_MASTER of the ports/members"))
    return Prediction(
        host,
        used,
        route.interface,
        path=path,
        source_address=route.source,
        gateway=route.gateway,
        table=route.table,
        reasons=tuple(reasons),
    )
