"""Orchestration of the main job, `predict` and `watch`: discover, predict, capture, migrate,
reconcile, store.

Back ends (topology source, route lookup, hypervisor, capture) are passed in, so tests can run
the same orchestration against recorded inputs, and the CLI stays a thin shell around it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from verifier import __version__, bonds, destconf, predict, prescribe, profiles, reconcile, roles, runs, signals
from verifier.capture.counting import PortRanges
from verifier.capture.streams import KINDS
from verifier.errors import NotStored, UsageError
from verifier.hypervisor import Hypervisor, MigrationRequest
from verifier.lock import host_lock
from verifier.model import (
    SCHEMA_VERSION,
    CaptureResult,
    Expectation,
    Finding,
    Leg,
    MigrationResult,
    Prediction,
    Reason,
    Report,
    Topology,
)
from verifier.resolve import resolve
from verifier.routing import RouteLookup


class Capture(Protocol):
    def start(self) -> None: ...
    def stop(self, drain_s: float = 0.3) -> CaptureResult: ...


CaptureFactory = Callable[[list[str], PortRanges, Path | None], Capture]
HypervisorFactory = Callable[[str, str], Hypervisor]
Log = Callable[[str], None]


@dataclass(frozen=True)
class JobOptions:
    vm: str
    dest: str
    connect_uri: str
    dest_uri: str
    migrate_uri: str | None = None
    via: str | None = None
    bandwidth: int | None = None
    parallel: int | None = None
    ports: PortRanges = ()  # --ports: added to the profile's
    profile: str = "qemu"
    roles: tuple[tuple[str, str], ...] = ()  # --role IFACE=NAME
    interfaces: tuple[str, ...] = ()
    expectation: Expectation = field(default_factory=Expectation)
    captures_dir: Path = Path("captures")
    chart: Path | None = None
    round_trip: bool = False
    return_uri: str | None = None


@dataclass(frozen=True)
class Backends:
    topology: Callable[[], Topology]
    routes: RouteLookup
    hypervisor: HypervisorFactory
    capture: CaptureFactory
    log: Log = lambda _msg: None
    progress: Callable[[dict[str, Any]], None] = lambda _stats: None


def candidate_interfaces(topology: Topology) -> list[str]:
    """Every interface with a non-link-local address, plus the ports and members beneath it."""
    out: list[str] = []
    for iface in topology.interfaces:
        if iface.kind == "loopback":
            continue
        if any(not ipaddress.ip_interface(a).is_link_local for a in iface.addresses):
            for name in topology.chain_down(iface.name):
                if name not in out:
                    out.append(name)
    return out


def choose_interfaces(topology: Topology, requested: tuple[str, ...]) -> list[str]:
    if not requested:
        found = candidate_interfaces(topology)
        if not found:
            raise UsageError("no interface with an address to watch", hint="name them with --interfaces")
        return found
    missing = [n for n in requested if topology.get(n) is None]
    if missing:
        raise UsageError(
            f"--interfaces names missing interface(s): {', '.join(missing)}", hint="list them with `ip -br link`"
        )
    return list(requested)


def labelled_topology(b: Backends, user_roles: tuple[tuple[str, str], ...]) -> Topology:
    topology = roles.discover(b.topology(), dict(user_roles))
    for iface, _role in user_roles:
        if topology.get(iface) is None:
            raise UsageError(f"--role names missing interface {iface!r}", hint="list them with `ip -br link`")
    return topology


def migration_target(
    opts: JobOptions, topology: Topology, hv: Hypervisor, conf: destconf.DestConfig
) -> tuple[str, Reason, str | None, str]:
    """(host QEMU will connect to, why, the migrate URI to pass or None, origin)."""
    if opts.migrate_uri:
        why = Reason("migration URI", f"--migrate-uri {opts.migrate_uri}", "given on the command line")
        return predict.uri_host(opts.migrate_uri), why, opts.migrate_uri, "migrate-uri"
    if opts.via:
        uri, why = predict.via_uri(topology, opts.via, opts.dest)
        return predict.uri_host(uri), why, uri, "via"
    if conf.migration_host:
        why = Reason(
            "migration URI",
            f"none given: {opts.dest} hands out its migration_host {conf.migration_host!r}",
            f'{conf.path}: migration_host = "{conf.migration_host}"',
        )
        return conf.migration_host, why, None, "migration_host"
    hostname = hv.destination_hostname()
    where = f"{conf.path} sets no migration_host" if conf.path else f"{opts.dest}'s qemu.conf is not readable here"
    why = Reason(
        "migration URI",
        f"none given: {opts.dest}'s libvirtd hands out its hostname {hostname!r}",
        f"{where}; libvirt then uses the hostname",
    )
    return hostname, why, None, "hostname"


@dataclass(frozen=True)
class Plan:
    """Everything decided before anything is captured or migrated."""

    topology: Topology
    watch: list[str]
    hv: Hypervisor | None
    prediction: Prediction
    ports: PortRanges
    findings: tuple[Finding, ...] = ()


def plan(opts: JobOptions, b: Backends) -> Plan:
    """Discover, check the domain, derive the migration URI and predict the path."""
    topology = labelled_topology(b, opts.roles)
    watch = choose_interfaces(topology, opts.interfaces)
    dest_host = urlsplit(opts.dest_uri).hostname
    if dest_host and resolve(dest_host).address is None:
        raise UsageError(
            f"destination {dest_host!r} does not resolve on this host",
            hint="check the name (hosts file, DNS) or give --dest-uri with an address",
        )
    hv = b.hypervisor(opts.connect_uri, opts.dest_uri)
    hv.check_domain(opts.vm)
    conf = destconf.read(opts.dest)
    host, why, migrate_uri, origin = migration_target(opts, topology, hv, conf)
    prediction = predict.predict(host, why, topology, b.routes, dest=opts.dest)
    prediction = replace(prediction, uri_origin=origin, migrate_uri=migrate_uri)
    ports = profiles.ports_for(opts.profile, opts.ports, (conf.port_min, conf.port_max))
    findings = list(prediction.findings)
    if opts.expectation.given and prediction.interface:
        wanted = reconcile.wanted_interfaces(topology, opts.expectation)
        if not wanted & set(prediction.path):
            target = opts.expectation.interfaces[0] if opts.expectation.interfaces else sorted(wanted)[0]
            findings.append(
                Finding(
                    "predicted-wrong-path",
                    "error",
                    f"the stream will take {' -> '.join(prediction.path)}, not {', '.join(sorted(wanted))}",
                    prescribe.path_fix(topology, opts.dest, target, prediction, vm=opts.vm, dest_uri=opts.dest_uri),
                )
            )
    return Plan(topology, watch, hv, prediction, ports, tuple(findings))


def predicted_verdict(p: Plan, expectation: Expectation) -> str:
    if p.prediction.interface is None:
        return "inconclusive"
    if not expectation.given:
        return "observed"
    return "fail" if any(f.code == "predicted-wrong-path" for f in p.findings) else "pass"


def _leg(
    opts: JobOptions, b: Backends, p: Plan, hv: Hypervisor, req: MigrationRequest, run_dir: Path, direction: str
) -> Leg:
    out_dir = run_dir / direction if direction != "outbound" else run_dir
    out_dir.mkdir(mode=0o700, exist_ok=True)
    capture = b.capture(p.watch, p.ports, out_dir)
    capture.start()
    b.log(f"armed {len(p.watch)} sniffer(s): {', '.join(p.watch)}; migrating {opts.vm} ({direction})")
    try:
        migration = hv.migrate(req, b.progress)
    finally:
        # Stop whatever happens: the counts so far are evidence, and sockets must not linger.
        with signals.shielded("stopping the sniffers"):
            captured = capture.stop()
    if direction != "outbound":
        return reconcile.decide(p.topology, captured, migration, None, Expectation(), direction)
    prediction = p.prediction

    def fix(iface: str) -> str:
        return prescribe.path_fix(p.topology, opts.dest, iface, prediction, vm=opts.vm, dest_uri=opts.dest_uri)

    leg = reconcile.decide(p.topology, captured, migration, prediction, opts.expectation, direction, fix_for=fix)
    if not any((i := p.topology.get(n)) and i.bond for n in leg.observed_path):
        return leg
    # Only a bond's layer2 hashes need the next hop's MAC: ask the kernel only then.
    mac_of = getattr(b.routes, "neighbour_mac", None)
    next_hop = prediction.gateway or prediction.target_address
    dst_mac = mac_of(next_hop) if mac_of and next_hop else None
    return replace(leg, findings=leg.findings + bond_findings(p.topology, leg, dst_mac))


def bond_findings(topology: Topology, leg: Leg, dst_mac: str | None) -> tuple[Finding, ...]:
    """Bonds on the observed path, now that the flows are known: the member the kernel hash picks
    for each migration connection, what the member sniffers saw, and a note when all connections
    share one member."""
    out: list[Finding] = []
    conns = tuple(c for c in leg.connections if c.payload_to_server)
    counted = {r.name: r.payload for r in leg.interfaces}
    for name in leg.observed_path:
        iface = topology.get(name)
        if iface is None or iface.bond is None or not conns:
            continue
        member_of: dict[tuple[str, int], str] = {}
        for c in conns:
            flow = bonds.Flow(
                iface.mac or "00:00:00:00:00:00",
                dst_mac or "00:00:00:00:00:00",
                c.client,
                c.server,
                c.client_port,
                c.server_port,
            )
            detail = predict.bond_reason(topology, name, flow).detail
            for member in iface.members:
                if f"picks {member}" in detail or f"active member {member}" in detail:
                    member_of[(c.client, c.client_port)] = member
        seen = max(iface.members, key=lambda m: counted.get(m, 0), default=None)
        picks = ", ".join(f"{client}:{port} -> {m}" for (client, port), m in member_of.items()) or "not predictable"
        out.append(
            Finding(
                "bond-members",
                "info",
                f"{name} ({iface.bond.mode}, {iface.bond.xmit_hash_policy}): "
                f"kernel hash {picks}; the member sniffers saw the most on {seen}"
                + ("" if dst_mac else " (next hop MAC unknown: layer2 hashes assume 00)"),
            )
        )
        shared = prescribe.bond_share(topology, conns, member_of, name)
        if shared:
            out.append(shared)
    return tuple(out)


def run_job(opts: JobOptions, b: Backends, lock: Callable[[], AbstractContextManager[None]] = host_lock) -> Report:
    """The main job. The run directory is written even when the migration fails or is interrupted."""
    with lock():
        p = plan(opts, b)
        assert p.hv is not None
        b.log(f"predicted path: {' -> '.join(p.prediction.path) or 'unknown'}")
        run_dir = runs.create(opts.captures_dir, opts.vm, opts.dest)
        req = MigrationRequest(opts.vm, opts.dest_uri, p.prediction.migrate_uri, opts.bandwidth, opts.parallel)
        started = time.time()
        outbound = _leg(opts, b, p, p.hv, req, run_dir, "outbound")
        back = None
        if opts.round_trip and outbound.migration.status == "completed":
            back = _return_leg(opts, b, p, run_dir)
        with signals.shielded("storing the run"):
            report = assemble_report(opts, p, outbound, back, run_dir, started, source=_source_name(p.hv))
            _store(report, run_dir)
        return report


def _store(report: Report, run_dir: Path) -> None:
    try:
        runs.store(report, run_dir)
    except OSError as exc:
        raise NotStored(
            f"could not write {run_dir / 'run.json'}: {exc.strerror or exc}",
            report,
            hint="the report follows on stdout; free space or choose another --captures-dir",
        ) from None


def _source_name(hv: Hypervisor) -> str:
    """The source as libvirt names it (the lab's node1), falling back to this process's hostname."""
    try:
        return hv.source_hostname()
    except Exception:  # noqa: BLE001 - a label must never fail the run
        return socket.gethostname()


def _return_leg(opts: JobOptions, b: Backends, p: Plan, run_dir: Path) -> Leg:
    return_uri = opts.return_uri or opts.connect_uri
    back_hv = b.hypervisor(opts.dest_uri, return_uri)
    migrate_uri = None
    if opts.via:
        # Come back over the same link: this host's own address on the --via interface.
        addrs = predict.link_subnets(p.topology, opts.via)
        if addrs:
            migrate_uri = f"tcp://{ipaddress.ip_interface(addrs[0]).ip}"
    req = MigrationRequest(opts.vm, return_uri, migrate_uri, opts.bandwidth, opts.parallel)
    return _leg(opts, b, p, back_hv, req, run_dir, "return")


def assemble_report(
    opts: JobOptions,
    p: Plan,
    leg: Leg,
    back: Leg | None,
    run_dir: Path | None,
    started: float,
    mode: str = "migrate",
    source: str | None = None,
) -> Report:
    # What the prediction alone showed (a slower link) stays; a predicted wrong path is now observed.
    early = tuple(f for f in p.findings if f.code != "predicted-wrong-path")
    returned = tuple(replace(f, message="return leg: " + f.message) for f in (back.findings if back else ()))
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        verdict=leg.verdict,
        vm=opts.vm,
        source=source or p.topology.hostname or socket.gethostname(),
        destination=opts.dest,
        expected=opts.expectation,
        observed_interface=leg.observed_interface,
        observed_path=leg.observed_path,
        interfaces=leg.interfaces,
        stream=stream_summary(leg, p.ports),
        migration=leg.migration,
        prediction=p.prediction,
        coverage=leg.coverage,
        findings=early + leg.findings + stream_findings(leg) + cleartext_findings(leg, p.topology) + returned,
        run_dir=str(run_dir) if run_dir else None,
        started_at=started,
        expected_share=leg.expected_share,
        return_leg=back,
        mode=mode,
    )


def stream_summary(leg: Leg, ports: PortRanges) -> dict[str, Any]:
    conns = [c for c in leg.connections if c.payload_to_server or c.payload_to_client]
    kinds = {}
    for kind in KINDS:
        mine = [c for c in conns if c.kind == kind]
        if mine:
            kinds[kind] = {
                "connections": len(mine),
                "bytes": sum(c.payload_to_server + c.payload_to_client for c in mine),
            }
    return {
        "ports": [list(p) for p in ports],
        "endpoints": [f"{c.client}:{c.client_port} -> {c.server}:{c.server_port}" for c in conns],
        "server_ports": sorted({c.server_port for c in conns}),
        "connections": len(conns),
        "kinds": kinds,
    }


def stream_findings(leg: Leg) -> tuple[Finding, ...]:
    tunnels = [c for c in leg.connections if c.kind in ("libvirtd-tunnel", "ssh-tunnel") and c.payload_to_server]
    if not tunnels:
        return ()
    c = tunnels[0]
    via = "libvirtd" if c.kind == "libvirtd-tunnel" else "ssh"
    return (
        Finding(
            "tunnelled",
            "info",
            f"the migration rides the {via} control connection {c.client}:{c.client_port} -> "
            f"{c.server}:{c.server_port} (VIR_MIGRATE_TUNNELLED): its path is the control connection's",
            "the path follows the host name in the destination's libvirt URI (--dest-uri)",
        ),
    )


CLEARTEXT_KINDS = ("qemu-main", "multifd", "nbd")
OTHER_TRAFFIC_SHARE = 0.05


def cleartext_findings(leg: Leg, topology: Topology) -> tuple[Finding, ...]:
    """A clear-text stream (guest RAM) on a link that also carries other traffic deserves a warning."""
    kinds = {c.kind for c in leg.connections if c.payload_to_server}
    if not kinds & set(CLEARTEXT_KINDS) or "tls" in kinds or leg.observed_interface is None:
        return ()
    iface = topology.get(leg.observed_interface)
    report = next((r for r in leg.interfaces if r.name == leg.observed_interface), None)
    shared = iface is not None and (iface.kind == "bridge" or (iface.role or "").startswith(("lan", "corosync")))
    if report is not None and report.counter_tx is not None and report.counter_rx is not None:
        carried = report.counter_tx + report.counter_rx
        seen = report.bytes_tx + report.bytes_rx
        shared = shared or (carried > 0 and (carried - seen) / carried > OTHER_TRAFFIC_SHARE)
    if not shared:
        return ()
    return (
        Finding(
            "cleartext-on-shared-link",
            "warning",
            f"the migration stream (guest memory, unencrypted) crossed {leg.observed_interface}, a link that "
            "also carries other traffic",
            "use TLS migration (virsh migrate --tls; migrate_tls_force = 1 in qemu.conf) or a dedicated "
            "migration link (--via / migration_host)",
        ),
    )


def run_watch(opts: JobOptions, b: Backends, duration: float | None, until_idle: float | None) -> Report:
    """Capture and reconcile a migration someone else triggers (Pacemaker, virsh)."""
    topology = labelled_topology(b, opts.roles)
    watch = choose_interfaces(topology, opts.interfaces)
    ports = profiles.ports_for(opts.profile, opts.ports)
    prediction = Prediction(None, None, None, reasons=(Reason("migration URI", "watch mode: not triggered here"),))
    p = Plan(topology, watch, None, prediction, ports)
    run_dir = runs.create(opts.captures_dir, opts.vm or "watch", opts.dest or "any")
    capture = b.capture(watch, ports, run_dir)
    started = time.time()
    capture.start()
    b.log(f"watching {', '.join(watch)} on ports {profiles.ports_text(ports)}")
    try:
        _wait(capture, duration, until_idle)
    finally:
        captured = capture.stop()
    migration = MigrationResult(status="not-run", migrate_uri=None, duration_s=captured.ended_at - started)
    leg = reconcile.decide(topology, captured, migration, None, opts.expectation, require_coverage=False)
    report = assemble_report(opts, p, leg, None, run_dir, started, mode="watch")
    _store(report, run_dir)
    return report


def _wait(capture: Capture, duration: float | None, until_idle: float | None) -> None:
    """Until DURATION passes, or traffic was seen and then stopped for UNTIL_IDLE, or Ctrl-C."""
    deadline = time.monotonic() + duration if duration else None
    counter = getattr(capture, "counter", None)
    seen_at, last = time.monotonic(), -1
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            if until_idle and counter is not None:
                total = sum(s.bytes_tx + s.bytes_rx for s in counter.ifaces.values())
                if total != last:
                    last, seen_at = total, time.monotonic()
                elif total > 0 and time.monotonic() - seen_at >= until_idle:
                    return
    except KeyboardInterrupt:
        return  # Ctrl-C is how an open-ended watch ends: report what was seen
