"""The fix, in the words of the tools the user has, naming real names and addresses."""

from __future__ import annotations

from pathlib import Path

from verifier.model import Topology
from verifier.resolve import HOSTS, names_in_subnet


def path_fix(topology: Topology, dest: str, expected: str, hosts: Path = HOSTS) -> str:
    """How to put the stream to DEST on the EXPECTED interface of this host."""
    iface = topology.get(expected)
    subnets = [a for a in (iface.addresses if iface else ()) if not a.startswith("fe80")]
    for subnet in subnets:
        found = names_in_subnet(subnet, dest, hosts)
        if found:
            name, addr = found[0]
            return (
                f'set migration_host = "{name}" in {dest}\'s /etc/libvirt/qemu.conf and restart its '
                f"libvirtd; or migrate with --via {expected} (virsh migrate ... --migrateuri tcp://{addr})"
            )
    if subnets:
        return (
            f"give {dest} a name on {', '.join(subnets)} (hosts file or DNS), then set migration_host "
            f"to it in {dest}'s /etc/libvirt/qemu.conf, or pass --migrate-uri tcp://<its address there>"
        )
    return f"{expected} has no address on this host: migrate over an interface with an address on {dest}'s link"
