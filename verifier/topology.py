"""Discover interfaces with pyroute2: kinds, masters and members, addresses, MTU, speed, bonds.

Parsing works on plain dicts shaped like pyroute2's `nlmsg.dump()` output, so a JSON snapshot
of a host we cannot build here (bonds: the bonding driver is absent on this kernel) goes through
exactly the same code as a live netlink dump.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from verifier.model import BondInfo, Interface, Topology

IFF_LOOPBACK = 0x8

BOND_MODES = {
    0: "balance-rr",
    1: "active-backup",
    2: "balance-xor",
    3: "broadcast",
    4: "802.3ad",
    5: "balance-tlb",
    6: "balance-alb",
}
HASH_POLICIES = {0: "layer2", 1: "layer3+4", 2: "layer2+3", 3: "encap2+3", 4: "encap3+4", 5: "vlan+srcmac"}


def attr(msg: Any, *path: str) -> Any:
    """Follow nested netlink attributes by name in a dumped message; None when absent."""
    cur = msg
    for name in path:
        if not isinstance(cur, dict):
            return None
        cur = next((value for key, value in cur.get("attrs", ()) if key == name), None)
    return cur


def parse(
    links: Iterable[dict[str, Any]],
    addrs: Iterable[dict[str, Any]],
    hostname: str,
    speeds: dict[str, int] | None = None,
    limits: dict[int, int] | None = None,
) -> Topology:
    """Build a Topology from dumped RTM_NEWLINK and RTM_NEWADDR messages."""
    links = list(links)
    names = {msg["index"]: attr(msg, "IFLA_IFNAME") for msg in links}
    by_index: dict[int, list[str]] = {}
    for msg in addrs:
        address = attr(msg, "IFA_ADDRESS")
        if address:
            by_index.setdefault(msg["index"], []).append(f"{address}/{msg['prefixlen']}")
    members: dict[int, list[str]] = {}
    for msg in links:
        master = attr(msg, "IFLA_MASTER")
        if master:
            members.setdefault(master, []).append(names[msg["index"]])
    out = []
    for msg in links:
        name = names[msg["index"]]
        master = attr(msg, "IFLA_MASTER")
        out.append(
            Interface(
                name=name,
                index=msg["index"],
                kind=_kind(msg),
                master=names.get(master) if master else None,
                # Enslave (ifindex) order, not alphabetical: the bond hash indexes members in that order.
                members=tuple(members.get(msg["index"], [])),
                mtu=attr(msg, "IFLA_MTU"),
                speed_mbps=(speeds or {}).get(name),
                operstate=attr(msg, "IFLA_OPERSTATE") or "UNKNOWN",
                mac=attr(msg, "IFLA_ADDRESS"),
                addresses=tuple(by_index.get(msg["index"], [])),
                bond=_bond(msg, names),
                rate_limit_mbps=(limits or {}).get(msg["index"]),
                member_state=_member_state(msg),
                carrier=bool(attr(msg, "IFLA_CARRIER")) if attr(msg, "IFLA_CARRIER") is not None else None,
            )
        )
    return Topology(hostname=hostname, interfaces=tuple(sorted(out, key=lambda i: i.index)))


def _member_state(msg: dict[str, Any]) -> str | None:
    data = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA")
    if attr(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND") != "bond" or not data:
        return None
    state = attr(data, "IFLA_BOND_SLAVE_STATE")
    return {0: "active", 1: "backup"}.get(state) if isinstance(state, int) else None


def rate_limits(qdiscs: Iterable[dict[str, Any]]) -> dict[int, int]:
    """ifindex -> Mbit/s for interfaces whose root qdisc is a token bucket (tbf) shaper."""
    out = {}
    for q in qdiscs:
        if attr(q, "TCA_KIND") != "tbf" or q.get("parent") not in (0xFFFFFFFF, None):
            continue
        parms = attr(q, "TCA_OPTIONS", "TCA_TBF_PARMS") or {}
        rate = parms.get("rate") if isinstance(parms, dict) else None
        if rate:
            out[q["index"]] = int(rate * 8 // 1_000_000)
    return out


def _kind(msg: dict[str, Any]) -> str:
    kind = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND")
    if kind == "tun":
        return "tap"
    if kind:
        return str(kind)
    if msg.get("flags", 0) & IFF_LOOPBACK:
        return "loopback"
    return "physical"


def _bond(msg: dict[str, Any], names: dict[int, str]) -> BondInfo | None:
    if attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND") != "bond":
        return None
    data = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA") or {}
    mode = attr(data, "IFLA_BOND_MODE")
    policy = attr(data, "IFLA_BOND_XMIT_HASH_POLICY")
    active = attr(data, "IFLA_BOND_ACTIVE_SLAVE")
    return BondInfo(
        mode=BOND_MODES.get(mode, str(mode)) if isinstance(mode, int) else str(mode),
        xmit_hash_policy=HASH_POLICIES.get(policy, str(policy)) if isinstance(policy, int) else policy,
        active_member=names.get(active) if active else None,
    )


def sysfs_speeds(names: Iterable[str], root: Path = Path("/sys/class/net")) -> dict[str, int]:
    """Link speed in Mbit/s where the driver reports one (veth says 10000, bridges nothing)."""
    speeds = {}
    for name in names:
        try:
            value = int((root / name / "speed").read_text().strip())
        except (OSError, ValueError):
            continue
        if value > 0:
            speeds[name] = value
    return speeds


def discover(netns: str | None = None) -> Topology:
    """Live discovery in this network namespace (or NETNS, then without sysfs speeds)."""
    from pyroute2 import IPRoute

    # flags=0: never create a namespace that does not exist (pyroute2 would by default).
    kwargs: dict[str, Any] = {"netns": netns, "flags": 0} if netns else {}
    with IPRoute(**kwargs) as ipr:
        links = [m.dump() for m in ipr.get_links()]
        addrs = [m.dump() for m in ipr.get_addr()]
        qdiscs = [m.dump() for m in ipr.get_qdiscs()]
    names = [attr(m, "IFLA_IFNAME") for m in links]
    speeds = sysfs_speeds(names) if netns is None else {}
    return parse(links, addrs, hostname=socket.gethostname(), speeds=speeds, limits=rate_limits(qdiscs))
