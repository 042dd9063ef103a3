"""The prescribe stage: the fix for each finding, in the words of the tools the user has, naming
real names, addresses and interfaces.

It runs once, after reconcile (and once after predict for `predict`/--dry-run), and reads only a
finding's code and structured `Facts`: no stage parses another's prose. Each way the path can be
wrong has its own prescription: the destination hands out a hostname that resolves to the LAN
(migration_host / --migrateuri / a per-interface name / Pacemaker's VirtualDomain parameters);
a migration_host whose name resolves to the wrong link; a policy rule or route that sends the
right address out of the wrong interface; several streams hashed onto one bond member.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from verifier.diagnose import fixes as diagnosis_fixes
from verifier.model import Facts, Finding, Prediction, Report, Topology
from verifier.predict import dest_on_link, link_subnets
from verifier.resolve import HOSTS


@dataclass(frozen=True)
class Context:
    """What every prescription may name: the host's interfaces, the destination, the guest."""

    topology: Topology
    dest: str
    vm: str = "VM"
    dest_uri: str | None = None
    prediction: Prediction | None = None
    hosts: Path = HOSTS
    offline: bool = False  # `analyze`: the captures are input files, not ones this run writes


def _suffix(dest: str, name: str) -> str | None:
    short = dest.split(".")[0]
    return name[len(short) :] if name.startswith(short) and name != short else None


def path_fix(ctx: Context, expected: str) -> str:
    """How to put the stream to the destination on the EXPECTED interface of this host."""
    topology, dest, prediction = ctx.topology, ctx.dest, ctx.prediction
    target = dest_on_link(topology, dest, expected, ctx.hosts)
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
    vm = shlex.quote(ctx.vm)
    steps = [
        f'on {dest}: migration_host = "{name}" and migration_address = "{addr}" in /etc/libvirt/qemu.conf, '
        "then `systemctl restart libvirtd` (virtqemud)",
        f"or per migration: virsh migrate --live --p2p {vm} {ctx.dest_uri or f'qemu+ssh://{dest}/system'} "
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
    rule = prediction.rule
    # Only a rule the admin added can be removed; the kernel's own (lookup main/local) cannot.
    if rule is not None and not rule.is_default:
        return (
            f"policy rule `{rule.text}` sends {address} to table {prediction.table} out of {prediction.interface}: "
            f"remove it (`ip rule del priority {rule.priority}`) or make that table route {address} dev {expected}"
        )
    return (
        f"the route to {address} leaves by {prediction.interface}: "
        f"`ip route replace {address} dev {expected}` (and persist it in the network configuration)"
    )


def bond_fix(policy: str | None) -> str:
    if policy in ("layer2", "layer2+3"):
        return "set xmit_hash_policy=layer3+4 on the bond so that each connection hashes by its ports"
    return "more parallel connections (--parallel N) spread over more members; one stream never exceeds one member"


Prescription = Callable[[Facts, Context], str]


def _expected(facts: Facts, ctx: Context) -> str:
    # watch and analyze know no destination to route to: the finding stands without a fix.
    return path_fix(ctx, facts.expected) if facts.expected and ctx.dest else ""


def port_range_fix(facts: Facts, ctx: Context) -> str:
    where = f"on {ctx.dest}" if ctx.dest else "on the destination"
    if facts.free_range is None:
        return f"{where}: give QEMU a migration port range of its own (migration_port_min/max in qemu.conf)"
    lo, hi = facts.free_range
    return (
        f"{where}: migration_port_min = {lo} and migration_port_max = {hi} in /etc/libvirt/qemu.conf "
        f"(free on this host; check the destination with `ss -ltn`), restart libvirtd (virtqemud), and open "
        f"them: `firewall-cmd --permanent --add-port={lo}-{hi}/tcp` or "
        f"`iptables -A INPUT -p tcp --dport {lo}:{hi} -j ACCEPT`; with Pacemaker, VirtualDomain's "
        f"migrateport=PORT pins the port of its migrateuri"
    )


def ring_fix(facts: Facts, ctx: Context) -> str:
    if facts.expected and facts.name:
        return (
            f"keep migrations off {facts.interface}: --via {facts.expected}, or migration_host = "
            f'"{facts.name}" in {ctx.dest or "the destination"}\'s /etc/libvirt/qemu.conf'
        )
    return f"keep migrations off {facts.interface}: give the destination a name on a dedicated migration link"


def _guest(facts: Facts, _ctx: Context) -> str:
    return f"the guest is on the {facts.location or 'unknown'} host"


def _static(text: str) -> Prescription:
    return lambda _facts, _ctx: text


FIXES: dict[str, Prescription] = {
    "wrong-path": _expected,
    "predicted-wrong-path": _expected,
    "slower-link": lambda f, c: (
        f'migrate over {f.interface}: --via {f.interface}, or migration_host = "{f.name}" on {c.dest}'
    ),
    "bond-member-shared": lambda f, _c: bond_fix(f.policy),
    "port-range-shared": port_range_fix,
    "hash-model-mismatch": lambda f, _c: (
        f"check the kernel generation assumed ({f.name}): `verify-path bond-hash --kernel RELEASE ...` "
        "with the bond's real kernel release, and report the flow if they still differ"
    ),
    "ring-link": ring_fix,
    "attribution-fallback": _static(
        "run as root on the source so that /proc/PID/fd of the domain's QEMU is readable "
        "(libvirt's pid file: /run/libvirt/qemu/VM.pid)"
    ),
    "migration-failed": _guest,
    "interrupted": _guest,
    "capture-problem": lambda _f, c: (
        "copy the file again, or let the capture finish before analysing it"
        if c.offline
        else "free space in --captures-dir or choose another"
    ),
    "no-stream": _static(
        "watch more interfaces (--interfaces) or ports (--ports); a tunnelled migration rides "
        "the libvirtd connection (16509/16514/22)"
    ),
    "capture-drops": _static("counts on that interface are lower bounds"),
    "coverage": _static("see --interfaces / --ports"),
    "impossible-count": _static("the capture cannot be trusted: rerun, and report a bug if it persists"),
    "prediction-mismatch": _static(
        "a policy rule, a changed route or the destination's migration_host may differ from what this host knows"
    ),
    "tunnelled": _static("the path follows the host name in the destination's libvirt URI (--dest-uri)"),
    "cleartext-on-shared-link": _static(
        "use TLS migration (virsh migrate --tls; migrate_tls_force = 1 in qemu.conf) or a dedicated "
        "migration link (--via / migration_host)"
    ),
}


FIXES.update(diagnosis_fixes.FIXES)  # bottleneck-link/cap/sender, not-converging: verifier.diagnose


def attach(findings: tuple[Finding, ...], ctx: Context) -> tuple[Finding, ...]:
    """FINDINGS with their fixes; a finding that already has one keeps it."""
    out = []
    for f in findings:
        prescription = FIXES.get(f.code)
        if f.fix or prescription is None:
            out.append(f)
            continue
        out.append(replace(f, fix=prescription(f.facts or Facts(), ctx)))
    return tuple(out)


def attach_report(report: Report, ctx: Context) -> Report:
    """Fixes on every finding of a run: its own, its prediction's and its return leg's."""
    back = report.return_leg
    return replace(
        report,
        findings=attach(report.findings, ctx),
        prediction=replace(report.prediction, findings=attach(report.prediction.findings, ctx)),
        return_leg=replace(back, findings=attach(back.findings, ctx)) if back else None,
    )
