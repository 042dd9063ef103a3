"""The user's expectation (--expect IFACE, --expect-net CIDR) against this host's interfaces.

Checked before anything moves: a name that is not here, or a network no interface is in, can never
be met, and finding that out after a real migration wastes the user's maintenance window.
"""

from __future__ import annotations

import ipaddress

from verifier.errors import UsageError
from verifier.model import Expectation, Topology


def wanted_interfaces(topology: Topology, expectation: Expectation) -> set[str]:
    """--expect names, plus interfaces holding an address inside an --expect-net network."""
    wanted = set(expectation.interfaces)
    for cidr in expectation.networks:
        net = ipaddress.ip_network(cidr, strict=False)
        for iface in topology.interfaces:
            if any(ipaddress.ip_interface(a).ip in net for a in iface.addresses):
                wanted.add(iface.name)
    return wanted


def check(topology: Topology, expectation: Expectation) -> None:
    """Every --expect name exists here and every --expect-net holds a local address."""
    missing = [n for n in expectation.interfaces if topology.get(n) is None]
    if missing:
        raise UsageError(
            f"--expect names missing interface(s): {', '.join(missing)}", hint="list them with `ip -br link`"
        )
    for cidr in expectation.networks:
        if not wanted_interfaces(topology, Expectation(networks=(cidr,))):
            raise UsageError(
                f"--expect-net {cidr}: no interface of this host has an address in it",
                hint="name a network this host is on (`ip -br addr`), or use --expect IFACE",
            )


def target_interface(topology: Topology, expectation: Expectation) -> str:
    """The one interface a fix should aim at: the first --expect name, else the first match."""
    if expectation.interfaces:
        return expectation.interfaces[0]
    wanted = sorted(wanted_interfaces(topology, expectation))
    return wanted[0] if wanted else ", ".join(expectation.networks)


def parse_networks(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """--expect-net values (comma lists allowed) as normalised CIDR strings; a usage error otherwise."""
    out = []
    for value in values:
        for part in value.split(","):
            try:
                out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise UsageError(
                    f"--expect-net {part!r} is not a network", hint="use CIDR, e.g. 198.18.0.0/24"
                ) from None
    return tuple(out)
