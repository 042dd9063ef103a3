"""Name resolution as the source host's QEMU will do it: hosts file first, then the resolver.

QEMU connects to the first address getaddrinfo returns; we report all of them and say where
the answer came from (the hosts file line, or DNS), because that is usually why a stream lands
on the LAN: the destination's bare hostname names its LAN address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOSTS = Path("/etc/hosts")


@dataclass(frozen=True)
class Resolution:
    name: str
    addresses: tuple[str, ...]
    source: str  # "literal" | "hosts file" | "DNS" | "unresolved"
    evidence: str

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


def hosts_entries(path: Path = HOSTS) -> list[tuple[str, str, int]]:
    """(address, name, line number) for every name on every line of a hosts file."""
    out: list[tuple[str, str, int]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            out.extend((fields[0], name, number) for name in fields[1:])
    return out


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(name: str, hosts: Path = HOSTS) -> Resolution:
    if is_address(name):
        return Resolution(name, (name.strip("[]"),), "literal", "an address, no lookup")
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return Resolution(name, (), "unresolved", f"{name} does not resolve on this host")
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    lines = [(addr, num) for addr, entry, num in hosts_entries(hosts) if entry == name]
    if lines:
        addr, num = lines[0]
        return Resolution(name, addresses, "hosts file", f"{hosts}:{num}: {addr} {name}")
    return Resolution(name, addresses, "DNS", f"resolver answered {', '.join(addresses)}")


Resolver = Callable[[str], "Resolution"]  # name -> where QEMU will connect; the back end for predict


def hosts_only(hosts: Path) -> Resolver:
    """A resolver that reads only HOSTS: a recorded node's view of names, for offline runs."""

    def lookup(name: str) -> Resolution:
        if is_address(name):
            return Resolution(name, (name.strip("[]"),), "literal", "an address, no lookup")
        lines = [(addr, num) for addr, entry, num in hosts_entries(hosts) if entry == name]
        if not lines:
            return Resolution(name, (), "unresolved", f"{name} does not resolve on this host")
        return Resolution(
            name, tuple(a for a, _n in lines), "hosts file", f"{hosts}:{lines[0][1]}: {lines[0][0]} {name}"
        )

    return lookup


def names_in_subnet(subnet: str, prefix: str, hosts: Path = HOSTS) -> list[tuple[str, str]]:
    """Hosts-file (name, address) pairs in SUBNET whose name starts with PREFIX (node2 -> node2-san)."""
    net = ipaddress.ip_network(subnet, strict=False)
    short = prefix.split(".")[0]
    found = []
    for addr, name, _num in hosts_entries(hosts):
        try:
            inside = ipaddress.ip_address(addr) in net
        except ValueError:
            continue
        if inside and (name == short or name.startswith((short + "-", short + "."))):
            found.append((name, addr))
    return found
