"""The fix, in the words of the tools the user has, naming real names, addresses and interfaces.

Each way the path can be wrong has its own prescription: the destination hands out a hostname
that resolves to the LAN (migration_host / --migrateuri / a per-interface name / Pacemaker's
VirtualDomain parameters); a migration_host whose name resolves to the wrong link; a policy
rule or route that sends the right address out of the wrong interface; several streams
hashed onto one bond member.
"""

from __future__ import annotations

from pathlib import Path

from verifier.model import Connection, Finding, Prediction, Topology
from verifier.predict import dest_on_link, link_subnets
from verifier.resolve import HOSTS


def _suffix(dest: str, name: str) -> str | None:
    short = dest.split(".")[0]
    return name[len(short) :] if name.startswith(short) and name != short else None


def path_fix(
    topology: Topology,
    dest: str,
    expected: str,
    prediction: Prediction | None = None,
    hosts: Path = HOSTS,
    vm: str = "VM",
    dest_uri: str | None = None,
) -> str:
    """How to put the stream to DEST on the EXPECTED interface of this host."""
    target = dest_on_link(topology, dest, expected, hosts)
    origin = prediction.uri_origin if prediction else "hostname"
    if target and prediction and prediction.target_address == target[1] and prediction.interface != expected:
        # The right address, the wrong interface: routing, not naming, is at fault.
        return route_fix(prediction, expected, target[1])
    if target is None:
        subnets = link_subnets(topology, expected)
        if not subnets:
            return f"{expected} has no address on this host: migrate over an interface with an address on {dest}'s link"
        return (
            f"give {dest} a name on {', '.join(subnets)} (a hosts entry such as '{dest}-{expected}' or DNS), "
            f"then set migration_host to it in {dest}'s /etc/libvirt/qemu.conf, or pass "
            f"--migrate-uri tcp://<its address there>"
        )
    name, addr = target
    if origin == "migration_host" and prediction:
        return (
            f"{dest}'s migration_host {prediction.target_host!r} resolves here to {prediction.target_address}, "
            f"not to its {expected} address: point that name at {addr} (hosts file or DNS), or set "
            f'migration_host = "{name}" in {dest}\'s /etc/libvirt/qemu.conf and restart libvirtd'
        )
    steps = [
        f'on {dest}: migration_host = "{name}" and migration_address = "{addr}" in /etc/libvirt/qemu.conf, '
        "then `systemctl restart libvirtd` (virtqemud)",
        f"or per migration: virsh migrate --live --p2p {vm} {dest_uri or f'qemu+ssh://{dest}/system'} "
        f"--migrateuri tcp://{addr} "
        f"(verify-path: --via {expected})",
    ]
    suffix = _suffix(dest, name)
    if suffix:
        steps.append(
            f"with Pacemaker: pcs resource update {vm} migration_network_suffix={suffix} "
            f"(VirtualDomain; or migrateuri=tcp://%n{suffix})"
        )
    return "; ".join(steps)


def route_fix(prediction: Prediction, expected: str, address: str) -> str:
    rule = next((r.detail for r in prediction.reasons if r.step == "policy rule"), "")
    prio = rule.split(":", 1)[0]
    # Only an `ip rule` line ("100: from all ...") names a rule; predict's "(no rule found ...)" does not.
    if prio.isdigit() and not rule.rstrip().endswith("lookup main") and "lookup local" not in rule:
        return (
            f"policy rule `{rule}` sends {address} to table {prediction.table} out of {prediction.interface}: "
            f"remove it (`ip rule del priority {prio}`) or make that table route {address} dev {expected}"
        )
    return (
        f"the route to {address} leaves by {prediction.interface}: "
        f"`ip route replace {address} dev {expected}` (and persist it in the network configuration)"
    )


def bond_share(
    topology: Topology, connections: tuple[Connection, ...], member_of: dict[tuple[str, int], str], bond: str
) -> Finding | None:
    """Several migration connections on one bond member: the bond adds nothing to this migration."""
    info = topology.get(bond)
    if info is None or info.bond is None or len(connections) < 2:
        return None
    members = {member_of.get((c.client, c.client_port)) for c in connections}
    members.discard(None)
    if len(members) != 1:
        return None
    member = members.pop()
    policy = info.bond.xmit_hash_policy or "?"
    fix = (
        "set xmit_hash_policy=layer3+4 on the bond so that each connection hashes by its ports"
        if policy in ("layer2", "layer2+3")
        else "more parallel connections (--parallel N) spread over more members; one stream never exceeds one member"
    )
    return Finding(
        "bond-member-shared",
        "warning",
        f"all {len(connections)} migration connections hash to {member} of {bond} ({info.bond.mode}, {policy})",
        fix,
    )
