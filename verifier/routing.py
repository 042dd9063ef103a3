"""Route and policy-rule lookups through netlink (pyroute2), and the pure matching behind them.

The kernel answers `route get` (so rules and tables are honoured exactly as for QEMU's
connect()); we then find which rule and which route entry produced that answer, to show the
user the line to change. Matching works on dumped messages, like topology.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.model import PolicyRule
from verifier.topology import attr

RT_TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
FR_ACT_TO_TBL = 1


@dataclass(frozen=True)
class RouteInfo:
    interface: str | None
    source: str | None
    gateway: str | None
    table: int | None
    prefix: str | None = None  # the route entry that matched, e.g. 198.18.0.0/24
    metric: int | None = None
    rule: PolicyRule | None = None  # the policy rule that selected the table


class RouteLookup(Protocol):
    def route_get(self, dst: str) -> RouteInfo | None: ...
    def neighbour_mac(self, address: str) -> str | None: ...


def table_name(table: int | None) -> str:
    return RT_TABLE_NAMES.get(table, str(table)) if table is not None else "?"


def rule_table(rule: dict[str, Any]) -> int:
    return int(attr(rule, "FRA_TABLE") or rule.get("table", 0))


def describe_rule(rule: dict[str, Any]) -> str:
    prio = attr(rule, "FRA_PRIORITY") or 0
    src = attr(rule, "FRA_SRC")
    dst = attr(rule, "FRA_DST")
    words = [f"{prio}:", f"from {src}/{rule.get('src_len', 0)}" if src else "from all"]
    if dst:
        words.append(f"to {dst}/{rule.get('dst_len', 0)}")
    if attr(rule, "FRA_IIFNAME"):
        words.append(f"iif {attr(rule, 'FRA_IIFNAME')}")
    if attr(rule, "FRA_OIFNAME"):
        words.append(f"oif {attr(rule, 'FRA_OIFNAME')}")
    if attr(rule, "FRA_FWMARK"):
        words.append(f"fwmark {attr(rule, 'FRA_FWMARK'):#x}")
    words.append(f"lookup {table_name(rule_table(rule))}")
    return " ".join(words)


def policy_rule(rule: dict[str, Any]) -> PolicyRule:
    return PolicyRule(int(attr(rule, "FRA_PRIORITY") or 0), describe_rule(rule), rule_table(rule))


def _contains(prefix: str | None, length: int, address: str) -> bool:
    if not prefix or not length:
        return True
    return ipaddress.ip_address(address) in ipaddress.ip_network(f"{prefix}/{length}", strict=False)


def matching_rules(rules: list[dict[str, Any]], dst: str) -> list[dict[str, Any]]:
    """Lookup rules (by priority) that a locally originated, unbound flow to DST matches.

    Selectors we cannot evaluate here (fwmark, uid, oif) make a rule not match: QEMU's migration
    socket carries no mark. An unbound socket has no source address at lookup time, and locally
    generated traffic has iif lo.
    """
    out = []
    for rule in sorted(rules, key=lambda r: attr(r, "FRA_PRIORITY") or 0):
        if rule.get("action", FR_ACT_TO_TBL) != FR_ACT_TO_TBL:
            continue
        if attr(rule, "FRA_FWMARK") or attr(rule, "FRA_UID_RANGE") or attr(rule, "FRA_OIFNAME"):
            continue
        if attr(rule, "FRA_IIFNAME") not in (None, "lo"):
            continue
        if attr(rule, "FRA_SRC") and rule.get("src_len"):
            continue
        if _contains(attr(rule, "FRA_DST"), rule.get("dst_len", 0), dst):
            out.append(rule)
    return out


def best_route(routes: list[dict[str, Any]], dst: str, oif: int | None) -> dict[str, Any] | None:
    """The longest-prefix route entry containing DST (leaving by OIF when given)."""
    best: dict[str, Any] | None = None
    for route in routes:
        length = route.get("dst_len", 0)
        prefix = attr(route, "RTA_DST")
        if length and not _contains(prefix, length, dst):
            continue
        if oif is not None and attr(route, "RTA_OIF") not in (None, oif):
            continue
        if best is None or length > best.get("dst_len", 0):
            best = route
    return best


def explain(
    rules: list[dict[str, Any]], tables: Callable[[int], list[dict[str, Any]]], dst: str, oif: int | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Which rule and route entry produced the kernel's answer: the first matching rule whose
    table holds a route to DST leaving by the interface the kernel chose."""
    for rule in matching_rules(rules, dst):
        route = best_route(tables(rule_table(rule)), dst, oif)
        if route is not None and route.get("type", 1) == 1:  # RTN_UNICAST
            return rule, route
    return None, None


class NetlinkRoutes:
    """The real lookup, in this process's network namespace."""

    def neighbour_mac(self, address: str) -> str | None:
        """The link-layer address the kernel holds for ADDRESS (the next hop), if any."""
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            for msg in ipr.get_neighbours(dst=address):
                mac = msg.get_attr("NDA_LLADDR")
                if mac:
                    return str(mac)
        return None

    def route_get(self, dst: str) -> RouteInfo | None:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        af = 10 if ":" in dst else 2
        with IPRoute() as ipr:
            try:
                answer = ipr.route("get", dst=dst)
            except NetlinkError:
                return None
            if not answer:
                return None
            msg: Any = answer[0]
            oif = msg.get_attr("RTA_OIF")
            links = ipr.get_links(oif) if oif else []
            name = links[0].get_attr("IFLA_IFNAME") if links else None
            rules = [r.dump() for r in ipr.get_rules(family=af)]
            # pyroute2 0.9 reports table 254 for every `route get`, so the table comes from the rules.
            rule, route = explain(rules, lambda t: [r.dump() for r in ipr.get_routes(family=af, table=t)], dst, oif)
        table = rule_table(rule) if rule else None
        prefix = metric = None
        if route is not None:
            length = route.get("dst_len", 0)
            prefix = f"{attr(route, 'RTA_DST')}/{length}" if length else "default"
            metric = attr(route, "RTA_PRIORITY")
        return RouteInfo(
            name,
            msg.get_attr("RTA_PREFSRC"),
            msg.get_attr("RTA_GATEWAY"),
            table,
            prefix,
            metric,
            policy_rule(rule) if rule else None,
        )
