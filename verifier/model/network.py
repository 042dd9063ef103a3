"""The host's network as the discovery stage found it: interfaces, masters and members, bonds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BondInfo:
    mode: str
    xmit_hash_policy: str | None = None
    active_member: str | None = None


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    kind: str  # bridge | bond | veth | physical | loopback | tap | other
    master: str | None = None
    members: tuple[str, ...] = ()
    mtu: int | None = None
    speed_mbps: int | None = None
    operstate: str = "UNKNOWN"
    mac: str | None = None
    addresses: tuple[str, ...] = ()  # "addr/prefixlen"
    bond: BondInfo | None = None
    role: str | None = None
    rate_limit_mbps: int | None = None  # a root tbf qdisc caps egress below the link speed
    member_state: str | None = None  # bond member: active | backup
    carrier: bool | None = None

    @property
    def effective_mbps(self) -> int | None:
        known = [v for v in (self.speed_mbps, self.rate_limit_mbps) if v]
        return min(known) if known else None


@dataclass(frozen=True)
class Topology:
    hostname: str
    interfaces: tuple[Interface, ...]

    def get(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def by_index(self, index: int) -> Interface | None:
        return next((i for i in self.interfaces if i.index == index), None)

    def l3_of(self, name: str) -> str:
        """The interface that holds the addresses for NAME: walk up the master chain."""
        seen = {name}
        iface = self.get(name)
        while iface is not None and iface.master and iface.master not in seen:
            seen.add(iface.master)
            iface = self.get(iface.master)
        return iface.name if iface else name

    def chain_down(self, name: str) -> tuple[str, ...]:
        """NAME then its ports/members, depth first (br0 -> eth0; br0 -> bond0 -> eno1, eno2)."""
        out: list[str] = []

        def walk(n: str) -> None:
            if n in out:
                return
            out.append(n)
            iface = self.get(n)
            for member in iface.members if iface else ():
                walk(member)

        walk(name)
        return tuple(out)
