"""The conductor: the main job, `predict` and `watch` as one sequence of stages.

    discover -> predict -> capture + migrate -> reconcile -> prescribe -> store

Each stage is its own module and never calls back up; this one only sequences them, holds the
host lock, and makes sure the run is stored even when the migration fails or is interrupted.
Back ends (topology, routes, hypervisor, capture, the destination's qemu.conf) come in as
`Backends`, so the whole job runs offline in tests on recorded inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from verifier import diagnose, discover, expect, predict, prescribe, profiles, reconcile, runs, signals
from verifier.attribute import attribute
from verifier.errors import UsageError
from verifier.hypervisor import Hypervisor
from verifier.jobs import Backends, Capture, Finished, JobOptions
from verifier.lock import host_lock
from verifier.model import (
    Direction,
    Leg,
    MigrationRequest,
    MigrationResult,
    MigrationStatus,
    Plan,
    Prediction,
    Reason,
    Report,
)
from verifier.reconcile import RunLabels
from verifier.store import prepare, prepared, store_run


def plan_job(opts: JobOptions, b: Backends, hv: Hypervisor, live: bool = False) -> Plan:
    """Discover, check every name the user gave, derive the migration URI, predict the path."""
    topology = discover.labelled(b.topology, opts.roles)
    watch = discover.choose_interfaces(topology, opts.interfaces)
    expect.check(topology, opts.expectation)
    dest_host = urlsplit(opts.dest_uri).hostname
    if dest_host and b.resolver(dest_host).address is None:
        raise UsageError(
            f"destination {dest_host!r} does not resolve on this host",
            hint="check the name (hosts file, DNS) or give --dest-uri with an address",
        )
    hv.check_domain(opts.vm)
    conf = b.dest_config(opts.dest)
    target = predict.migration_target(
        opts.dest, topology, conf, hv.destination_hostname, migrate_uri=opts.migrate_uri, via=opts.via, hosts=b.hosts
    )
    if live:  # `predict` shows an unresolvable name in its chain; a live run must not start on it
        predict.refuse_unresolved(target, b.resolver(target.host).address)
    ports = profiles.ports_for(opts.profile, opts.ports, (conf.port_min, conf.port_max))
    plan = predict.make_plan(
        topology, watch, ports, target, b.routes, opts.dest, opts.expectation, hosts=b.hosts, resolver=b.resolver
    )
    plan = replace(plan, forecasts=diagnose.forecast_plan(hv, opts.vm, plan, opts.dest, b.hosts))
    ctx = _context(opts, plan.prediction, plan, b)
    prediction = replace(plan.prediction, findings=prescribe.attach(plan.prediction.findings, ctx))
    return replace(plan, prediction=prediction, findings=prescribe.attach(plan.findings, ctx))


def predict_only(opts: JobOptions, b: Backends) -> Plan:
    with b.hypervisor(opts.connect_uri, opts.dest_uri) as hv:
        return plan_job(opts, b, hv)


def run_job(opts: JobOptions, b: Backends, lock: Callable[[], AbstractContextManager[None]] = host_lock) -> Finished:
    """The main job. The run directory is written even when the migration fails or is interrupted."""
    prepare()  # the chart's imports while the job plans, rather than after the migration
    with lock(), b.hypervisor(opts.connect_uri, opts.dest_uri) as hv:
        plan = plan_job(opts, b, hv, live=True)
        b.log(f"predicted path: {' -> '.join(plan.prediction.path) or 'unknown'}")
        run_dir = runs.create(opts.captures_dir, opts.vm, opts.dest)
        req = MigrationRequest(
            opts.vm,
            opts.dest_uri,
            plan.prediction.migrate_uri,
            opts.bandwidth,
            opts.parallel,
            opts.timeout,
            opts.auto_converge,
            opts.postcopy,
            opts.max_downtime,
        )
        labels = RunLabels(
            opts.vm, _source_name(hv, plan), opts.dest, time.time(), str(run_dir), "migrate", *opts.recorded()
        )
        outbound = _leg(opts, b, plan, hv, req, run_dir, Direction.OUTBOUND)
        back = None
        if opts.round_trip and outbound.migration.status == MigrationStatus.COMPLETED:
            return_uri = opts.return_uri or opts.connect_uri
            with b.hypervisor(opts.dest_uri, return_uri) as back_hv:
                back_req = replace(req, dest_uri=return_uri, migrate_uri=predict.return_uri(plan.topology, opts.via))
                back = _leg(opts, b, plan, back_hv, back_req, run_dir, Direction.RETURN)
        with signals.shielded("storing the run"):
            report = reconcile.assemble_report(labels, plan, opts.expectation, outbound, back, b.hosts)
            return finish(report, _context(opts, plan.prediction, plan, b), opts.chart)


def _leg(
    opts: JobOptions, b: Backends, plan: Plan, hv: Hypervisor, req: MigrationRequest, run_dir: Path, way: Direction
) -> Leg:
    out_dir = run_dir if way == Direction.OUTBOUND else run_dir / way.value
    out_dir.mkdir(mode=0o700, exist_ok=True)
    capture = b.capture(list(plan.watch), plan.ports, out_dir)
    owners = b.owners(opts.vm, plan.ports) if b.owners else None
    prepared()  # no warm-up competing with the migration for the CPUs
    capture.start()
    if owners:
        # The incoming QEMU on a return leg, the sending one outbound: same name. An eBPF capture
        # wakes the sampler on each new connection, which then looks rarely in between.
        owners.start(woken=capture.on_new_flow(owners.wake))
    b.log(f"armed {len(plan.watch)} sniffer(s): {', '.join(plan.watch)}; migrating {opts.vm} ({way.value})")
    try:
        migration = hv.migrate(req, b.progress)
    finally:
        # Stop whatever happens: the counts so far are evidence, and sockets must not linger.
        with signals.shielded("stopping the sniffers"):
            captured = capture.stop()
            ownership = owners.stop() if owners else None
    own = attribute(captured, ownership, opts.vm)
    # The return leg is held to --expect too: it came back over the link the user wants, or not.
    expectation = opts.expectation
    prediction = plan.prediction if way == Direction.OUTBOUND else None
    leg = reconcile.decide(plan.topology, own.capture, migration, prediction, expectation, way, totals=captured)
    leg = replace(leg, foreign=own.foreign, attribution=own.attribution, findings=leg.findings + own.findings)
    if way == Direction.OUTBOUND:
        leg = diagnose.diagnose_leg(leg, own.capture, plan, opts.vm, opts.bandwidth, opts.parallel)
    if way != Direction.OUTBOUND or not any((i := plan.topology.get(n)) and i.bond for n in leg.observed_path):
        return leg
    # Only a bond's layer2 hashes need the next hop's MAC: ask the kernel only then.
    next_hop = plan.prediction.gateway or plan.prediction.target_address
    dst_mac = b.routes.neighbour_mac(next_hop) if next_hop else None
    return replace(leg, findings=leg.findings + reconcile.bond_findings(plan.topology, leg, dst_mac))


def finish(report: Report, ctx: prescribe.Context, chart: Path | None) -> Finished:
    """Prescribe once, then store: run.json and chart in the run directory."""
    report = prescribe.attach_report(report, ctx)
    return Finished(report, store_run(report, chart))


def _context(opts: JobOptions, prediction: Prediction | None, plan: Plan, b: Backends) -> prescribe.Context:
    return prescribe.Context(plan.topology, opts.dest, opts.vm, opts.dest_uri or None, prediction, b.hosts)


def _source_name(hv: Hypervisor, plan: Plan) -> str:
    """The source as libvirt names it (the lab's node1), falling back to the discovered hostname."""
    try:
        return hv.source_hostname()
    except Exception:  # noqa: BLE001 - a label must never fail the run
        return plan.topology.hostname


def run_watch(opts: JobOptions, b: Backends, duration: float | None, until_idle: float | None) -> Finished:
    """Capture and reconcile a migration someone else triggers (Pacemaker, virsh)."""
    topology = discover.labelled(b.topology, opts.roles)
    watch = discover.choose_interfaces(topology, opts.interfaces)
    expect.check(topology, opts.expectation)
    ports = profiles.ports_for(opts.profile, opts.ports)
    prediction = Prediction(None, None, None, reasons=(Reason("migration URI", "watch mode: not triggered here"),))
    plan = Plan(topology, watch, prediction, ports)
    run_dir = runs.create(opts.captures_dir, opts.vm or "watch", opts.dest or "any")
    prepare()
    capture = b.capture(list(watch), ports, run_dir)
    prepared()  # armed once warm: a migration started then does not share the CPUs with it
    sampler = b.domains(ports) if b.domains else None
    started = time.time()
    capture.start()
    if sampler:
        sampler.start(woken=capture.on_new_flow(sampler.wake))
    b.log(f"watching {', '.join(watch)} on ports {profiles.ports_text(ports)}")
    try:
        _wait(capture, duration, until_idle)
    finally:
        captured = capture.stop()
        flows = sampler.stop() if sampler else ()
    migration = MigrationResult(MigrationStatus.NOT_RUN, migrate_uri=None, duration_s=captured.ended_at - started)
    each = reconcile.by_domain(flows, captured)  # one per guest, QEMU and way
    seen = reconcile.per_domain(topology, captured, each, opts.expectation, migration)
    own = attribute(captured, reconcile.all_qemu(flows, sampler.problem) if sampler else None)
    leg = reconcile.decide(
        topology, own.capture, migration, None, opts.expectation, require_coverage=False, totals=captured
    )
    leg = replace(leg, foreign=own.foreign, attribution=own.attribution, findings=leg.findings + own.findings)
    if seen:
        leg = replace(leg, verdict=reconcile.worst([leg.verdict, *(m.verdict for m in seen)]))
    labels = RunLabels(opts.vm, topology.hostname, opts.dest, started, str(run_dir), "watch", *opts.recorded())
    report = replace(reconcile.assemble_report(labels, plan, opts.expectation, leg, None), migrations=seen)
    # No destination to route to in watch mode: findings keep their words, path fixes stay empty.
    return finish(report, prescribe.Context(topology, ""), opts.chart)


def _wait(capture: Capture, duration: float | None, until_idle: float | None) -> None:
    """Until DURATION passes, or traffic was seen and then stopped for UNTIL_IDLE, or Ctrl-C."""
    deadline = time.monotonic() + duration if duration else None
    seen_at, last = time.monotonic(), -1
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            if until_idle:
                total = capture.bytes_so_far()
                if total != last:
                    last, seen_at = total, time.monotonic()
                elif total > 0 and time.monotonic() - seen_at >= until_idle:
                    return
    except KeyboardInterrupt:
        return  # Ctrl-C is how an open-ended watch ends: report what was seen
