"""Where QEMU will connect: the one derivation of the migration URI and the host it names.

libvirt's rules (design.md section 4): a migration URI given by the user wins; without one the
destination hands out its `migration_host` from qemu.conf, defaulting to its own hostname, and
the source resolves that name. `--via IFACE` is the usual fix spelled as one option: the
destination's address on IFACE's subnet, found in the hosts file (node2 -> node2-san).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from verifier.destconf import DestConfig
from verifier.errors import EnvironmentProblem, UsageError
from verifier.model import Reason, Topology
from verifier.resolve import HOSTS, names_in_subnet

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


@dataclass(frozen=True)
class MigrationTarget:
    """The host QEMU will connect to, why, and the migrate URI to pass to libvirt (None: its default)."""

    host: str
    reason: Reason
    migrate_uri: str | None
    origin: str  # migrate-uri | via | migration_host | hostname


def migration_target(
    dest: str,
    topology: Topology,
    conf: DestConfig,
    dest_hostname: Callable[[], str],
    migrate_uri: str | None = None,
    via: str | None = None,
    hosts: Path = HOSTS,
) -> MigrationTarget:
    """The one place that decides the migration URI. DEST_HOSTNAME is asked only when needed
    (it costs a connection to the destination's libvirtd)."""
    if migrate_uri:
        why = Reason("migration URI", f"--migrate-uri {migrate_uri}", "given on the command line")
        return MigrationTarget(uri_host(migrate_uri), why, migrate_uri, "migrate-uri")
    if via:
        uri, why = via_uri(topology, via, dest, hosts)
        return MigrationTarget(uri_host(uri), why, uri, "via")
    if conf.migration_host:
        why = Reason(
            "migration URI",
            f"none given: {dest} hands out its migration_host {conf.migration_host!r}",
            f'{conf.path}: migration_host = "{conf.migration_host}"',
        )
        return MigrationTarget(conf.migration_host, why, None, "migration_host")
    hostname = dest_hostname()
    where = f"{conf.path} sets no migration_host" if conf.path else f"{dest}'s qemu.conf is not readable here"
    why = Reason(
        "migration URI",
        f"none given: {dest}'s libvirtd hands out its hostname {hostname!r}",
        f"{where}; libvirt then uses the hostname",
    )
    return MigrationTarget(hostname, why, None, "hostname")


def return_uri(topology: Topology, via: str | None) -> str | None:
    """For --round-trip: come back over the same link, to this host's own address on --via."""
    if not via:
        return None
    addrs = link_subnets(topology, via)
    return f"tcp://{ipaddress.ip_interface(addrs[0]).ip}" if addrs else None


def refuse_unresolved(target: MigrationTarget, address: str | None) -> None:
    """A name QEMU cannot resolve fails the migration after libvirt has started it: refuse now."""
    if address is not None:
        return
    if target.origin == "migrate-uri":
        raise UsageError(
            f"--migrate-uri {target.migrate_uri}: {target.host!r} does not resolve on this host",
            hint="fix the name (hosts file, DNS) or give the address, e.g. tcp://198.18.0.12",
        )
    raise EnvironmentProblem(
        f"the destination hands out {target.host!r} ({target.origin}), which does not resolve on this host",
        hint="add it to the hosts file or DNS, or pass --via IFACE / --migrate-uri",
    )
