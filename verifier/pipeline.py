"""Orchestration of the main job and `watch`: discover, predict, capture, migrate, reconcile, store.

Back ends (topology source, route lookup, hypervisor, capture) are passed in, so tests can run
the same orchestration against recorded inputs, and the CLI stays a thin shell around it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from verifier import __version__, destconf, predict, prescribe, reconcile, runs
from verifier.capture.counting import PortRanges
from verifier.errors import UsageError
from verifier.hypervisor import Hypervisor, MigrationRequest
from verifier.model import (
    SCHEMA_VERSION,
    CaptureResult,
    Expectation,
    Leg,
    MigrationResult,
    Prediction,
    Reason,
    Report,
    Topology,
)

DEFAULT_PORTS: PortRanges = ((49152, 49215),)


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
    ports: PortRanges = DEFAULT_PORTS
    interfaces: tuple[str, ...] = ()
    expectation: Expectation = field(default_factory=Expectation)
    captures_dir: Path = Path("captures")
    chart: Path | None = None
    round_trip: bool = False
    return_uri: str | None = None


@dataclass(frozen=True)
class Backends:
    topology: Callable[[], Topology]
    routes: predict.RouteLookup
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


def migration_target(opts: JobOptions, topology: Topology, hv: Hypervisor) -> tuple[str, Reason, str | None, str]:
    """(host QEMU will connect to, why, the migrate URI to pass or None, origin)."""
    if opts.migrate_uri:
        host = predict.uri_host(opts.migrate_uri)
        return (
            host,
            Reason("migration URI", f"--migrate-uri {opts.migrate_uri}", "given on the command line"),
            opts.migrate_uri,
            "migrate-uri",
        )
    if opts.via:
        uri, reason = predict.via_uri(topology, opts.via, opts.dest)
        return predict.uri_host(uri), reason, uri, "via"
    hostname = hv.destination_hostname()
    conf = destconf.read(opts.dest, hostname)
    if conf.migration_host:
        return (
            conf.migration_host,
            Reason(
                "migration URI",
                f"none given: {opts.dest} hands out its migration_host {conf.migration_host!r}",
                f'{conf.path}: migration_host = "{conf.migration_host}"',
            ),
            None,
            "migration_host",
        )
    where = f"{conf.path} sets no migration_host" if conf.path else f"{opts.dest}'s qemu.conf is not readable here"
    return (
        hostname,
        Reason(
            "migration URI",
            f"none given: {opts.dest}'s libvirtd hands out its hostname {hostname!r}",
            f"{where}; libvirt then uses the hostname",
        ),
        None,
        "hostname",
    )


def _leg(
    opts: JobOptions,
    b: Backends,
    topology: Topology,
    hv: Hypervisor,
    req: MigrationRequest,
    watch: list[str],
    run_dir: Path | None,
    prediction: Prediction | None,
    direction: str,
) -> Leg:
    out_dir = run_dir / direction if run_dir is not None and direction != "outbound" else run_dir
    if out_dir is not None:
        out_dir.mkdir(mode=0o700, exist_ok=True)
    capture = b.capture(watch, opts.ports, out_dir)
    capture.start()
    b.log(f"armed {len(watch)} sniffer(s): {', '.join(watch)}; migrating {opts.vm} ({direction})")
    try:
        migration = hv.migrate(req, b.progress)
    finally:
        # Stop whatever happens: the counts so far are evidence, and sockets must not linger.
        captured = capture.stop()
    fix = (lambda iface: prescribe.path_fix(topology, opts.dest, iface)) if direction == "outbound" else None
    expectation = opts.expectation if direction == "outbound" else Expectation()
    return reconcile.decide(topology, captured, migration, prediction, expectation, direction, fix_for=fix)


def run_job(opts: JobOptions, b: Backends) -> Report:
    topology = b.topology()
    watch = choose_interfaces(topology, opts.interfaces)
    hv = b.hypervisor(opts.connect_uri, opts.dest_uri)
    hv.check_domain(opts.vm)
    host, reason, migrate_uri, origin = migration_target(opts, topology, hv)
    prediction = replace(predict.predict(host, reason, topology, b.routes), uri_origin=origin, migrate_uri=migrate_uri)
    b.log(f"predicted path: {' -> '.join(prediction.path) or 'unknown'}")
    run_dir = runs.create(opts.captures_dir, opts.vm, opts.dest)
    req = MigrationRequest(opts.vm, opts.dest_uri, migrate_uri, opts.bandwidth, opts.parallel)
    started = time.time()
    outbound = _leg(opts, b, topology, hv, req, watch, run_dir, prediction, "outbound")
    back = None
    if opts.round_trip and outbound.migration.status == "completed":
        back = _return_leg(opts, b, topology, watch, run_dir)
    report = _report(opts, topology, prediction, outbound, back, run_dir, started, source=_source_name(hv))
    runs.store(report, run_dir)
    return report


def _source_name(hv: Hypervisor) -> str:
    """The source as libvirt names it (the lab's node1), falling back to this process's hostname."""
    try:
        return hv.source_hostname()
    except Exception:  # noqa: BLE001 - a label must never fail the run
        return socket.gethostname()


def _return_leg(opts: JobOptions, b: Backends, topology: Topology, watch: list[str], run_dir: Path) -> Leg:
    return_uri = opts.return_uri or opts.connect_uri
    back_hv = b.hypervisor(opts.dest_uri, return_uri)
    migrate_uri = None
    if opts.via:
        # Come back over the same link: this host's own address on the --via interface.
        iface = topology.get(opts.via)
        addrs = [a for a in (iface.addresses if iface else ()) if not ipaddress.ip_interface(a).is_link_local]
        if addrs:
            migrate_uri = f"tcp://{ipaddress.ip_interface(addrs[0]).ip}"
    req = MigrationRequest(opts.vm, return_uri, migrate_uri, opts.bandwidth, opts.parallel)
    return _leg(opts, b, topology, back_hv, req, watch, run_dir, None, "return")


def _report(
    opts: JobOptions,
    topology: Topology,
    prediction: Prediction,
    leg: Leg,
    back: Leg | None,
    run_dir: Path | None,
    started: float,
    mode: str = "migrate",
    source: str | None = None,
) -> Report:
    findings = leg.findings + tuple(
        replace(f, message="return leg: " + f.message) for f in (back.findings if back else ())
    )
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        verdict=leg.verdict,
        vm=opts.vm,
        source=source or topology.hostname or socket.gethostname(),
        destination=opts.dest,
        expected=opts.expectation,
        observed_interface=leg.observed_interface,
        observed_path=leg.observed_path,
        interfaces=leg.interfaces,
        stream=stream_summary(leg, opts.ports),
        migration=leg.migration,
        prediction=prediction,
        coverage=leg.coverage,
        findings=findings,
        run_dir=str(run_dir) if run_dir else None,
        started_at=started,
        expected_share=leg.expected_share,
        return_leg=back,
        mode=mode,
    )


def stream_summary(leg: Leg, ports: PortRanges) -> dict[str, Any]:
    conns = [c for c in leg.connections if c.payload_to_server or c.payload_to_client]
    return {
        "ports": [list(p) for p in ports],
        "endpoints": [f"{c.client}:{c.client_port} -> {c.server}:{c.server_port}" for c in conns],
        "server_ports": sorted({c.server_port for c in conns}),
        "connections": len(conns),
    }


def run_watch(opts: JobOptions, b: Backends, duration: float | None, until_idle: float | None) -> Report:
    """Capture and reconcile a migration someone else triggers (Pacemaker, virsh)."""
    topology = b.topology()
    watch = choose_interfaces(topology, opts.interfaces)
    run_dir = runs.create(opts.captures_dir, opts.vm or "watch", opts.dest or "any")
    capture = b.capture(watch, opts.ports, run_dir)
    started = time.time()
    capture.start()
    b.log(f"watching {', '.join(watch)} on ports {_ports_text(opts.ports)}")
    try:
        _wait(capture, duration, until_idle)
    finally:
        captured = capture.stop()
    migration = MigrationResult(status="not-run", migrate_uri=None, duration_s=captured.ended_at - started)
    leg = reconcile.decide(topology, captured, migration, None, opts.expectation, require_coverage=False)
    prediction = Prediction(None, None, None, reasons=(Reason("migration URI", "watch mode: not triggered here"),))
    report = _report(opts, topology, prediction, leg, None, run_dir, started, mode="watch")
    runs.store(report, run_dir)
    return report


def _wait(capture: Capture, duration: float | None, until_idle: float | None) -> None:
    deadline = time.monotonic() + duration if duration else None
    counter = getattr(capture, "counter", None)
    seen_at, last = time.monotonic(), -1
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2)
        if until_idle and counter is not None:
            total = sum(s.bytes_tx + s.bytes_rx for s in counter.ifaces.values())
            if total != last:
                last, seen_at = total, time.monotonic()
            elif total > 0 and time.monotonic() - seen_at >= until_idle:
                return


def _ports_text(ports: PortRanges) -> str:
    return ",".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in ports)
