"""The discovery stage: the host's interfaces with their roles, and which of them to watch.

Topology comes from a back end (netlink on a live host, a snapshot in tests); this stage labels
roles (corosync rings, iSCSI links, the user's --role) and picks the sniffers' interfaces.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from verifier import roles
from verifier.errors import UsageError
from verifier.model import Topology

LIST_HINT = "list them with `ip -br link`"


def labelled(source: Callable[[], Topology], user_roles: tuple[tuple[str, str], ...] = ()) -> Topology:
    """The topology with role labels; a --role naming a missing interface is a usage error."""
    topology = roles.discover(source(), dict(user_roles))
    for iface, _role in user_roles:
        if topology.get(iface) is None:
            raise UsageError(f"--role names missing interface {iface!r}", hint=LIST_HINT)
    return topology


def candidate_interfaces(topology: Topology) -> tuple[str, ...]:
    """Every interface with a non-link-local address, plus the ports and members beneath it."""
    out: list[str] = []
    for iface in topology.interfaces:
        if iface.kind == "loopback":
            continue
        if any(not ipaddress.ip_interface(a).is_link_local for a in iface.addresses):
            for name in topology.chain_down(iface.name):
                if name not in out:
                    out.append(name)
    return tuple(out)


def choose_interfaces(topology: Topology, requested: tuple[str, ...]) -> tuple[str, ...]:
    """--interfaces as given (each must exist), or every candidate."""
    if not requested:
        found = candidate_interfaces(topology)
        if not found:
            raise UsageError("no interface with an address to watch", hint="name them with --interfaces")
        return found
    check_names(topology, "--interfaces", requested)
    return tuple(requested)


def check_names(topology: Topology, option: str, names: tuple[str, ...]) -> None:
    """Every interface an option names must exist here, before anything is armed or migrated."""
    missing = [n for n in names if topology.get(n) is None]
    if missing:
        raise UsageError(f"{option} names missing interface(s): {', '.join(missing)}", hint=LIST_HINT)
