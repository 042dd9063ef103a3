"""Capture + job statistics + prediction + expectation -> per-interface shares, verdict, findings.

Pure: no I/O. A bridge and its port both see the whole stream, so the stream's total counts each
packet once, at the L3 interface (or, when only a port was watched, at that port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from verifier.model import (
    CaptureResult,
    Coverage,
    Expectation,
    Finding,
    InterfaceReport,
    Leg,
    MigrationResult,
    Prediction,
    Topology,
)

PASS_SHARE = 0.95
COVERAGE_RANGE = (0.90, 1.10)
# With kernel drops the capture is known to be short: it still reconciles only when what was
# seen accounts for nearly all that QEMU sent (the drops were immaterial, e.g. ACKs).
DROPS_RECONCILE_MIN = 0.99
PATH_MEMBER_SHARE = 0.5
# Counters are read just after the sockets are armed and just after the last drain: a frame
# queued in between can be captured but not counted. Allow that much, no more.
COUNTER_SLACK = (1.001, 256 * 1024)  # a port/member is on the path when it carried half its L3 group's bytes

FixFn = Callable[[str], str]  # expected interface -> the fix, in the user's tools' words


def interface_reports(topology: Topology, capture: CaptureResult) -> tuple[tuple[InterfaceReport, ...], dict[str, int]]:
    """Per-interface reports with shares, and the stream bytes per L3 group."""
    counted = {c.name: c for c in capture.interfaces}
    groups: dict[str, int] = {}
    for name, c in counted.items():
        l3 = topology.l3_of(name)
        if l3 in counted:
            if l3 == name:
                groups[l3] = c.payload
        else:
            groups[l3] = max(groups.get(l3, 0), c.payload)
    total = sum(groups.values())
    reports = []
    for name, c in counted.items():
        info = topology.get(name)
        reports.append(
            InterfaceReport(
                name=name,
                kind=info.kind if info else "unknown",
                master=info.master if info else None,
                role=info.role if info else None,
                bytes_tx=c.bytes_tx,
                bytes_rx=c.bytes_rx,
                packets=c.packets,
                payload=c.payload,
                share=(c.payload / total) if total else 0.0,
                drops=c.drops,
                kernel_packets=c.kernel_packets,
                speed_mbps=info.speed_mbps if info else None,
                other_bytes=c.other_bytes,
                pcap=c.pcap,
                bins=c.bins,
                counter_tx=c.counter_tx,
                counter_rx=c.counter_rx,
            )
        )
    # L3 interfaces in index order, each followed by its ports/members: br0, eth0, ring1, san0 ...
    order: dict[str, int] = {}
    for iface in topology.interfaces:
        if topology.l3_of(iface.name) == iface.name:
            for name in topology.chain_down(iface.name):
                order.setdefault(name, len(order))
    reports.sort(key=lambda r: order.get(r.name, 1 << 30))
    return tuple(reports), groups


def observed_path(
    topology: Topology, reports: tuple[InterfaceReport, ...], groups: dict[str, int]
) -> tuple[str | None, tuple[str, ...]]:
    if not groups or max(groups.values()) == 0:
        return None, ()
    l3 = max(groups, key=lambda g: groups[g])
    by_name = {r.name: r for r in reports}
    path = [l3]
    for name in topology.chain_down(l3)[1:]:
        r = by_name.get(name)
        if r and r.payload >= PATH_MEMBER_SHARE * groups[l3]:
            path.append(name)
    return l3, tuple(path)


def wanted_interfaces(topology: Topology, expectation: Expectation) -> set[str]:
    """--expect names, plus interfaces holding an address inside an --expect-net network."""
    wanted = set(expectation.interfaces)
    for cidr in expectation.networks:
        net = ipaddress.ip_network(cidr, strict=False)
        for iface in topology.interfaces:
            if any(ipaddress.ip_interface(a).ip in net for a in iface.addresses):
                wanted.add(iface.name)
    return wanted


def expected_share(
    topology: Topology, expectation: Expectation, reports: tuple[InterfaceReport, ...], groups: dict[str, int]
) -> float:
    total = sum(groups.values())
    if not total:
        return 0.0
    wanted = wanted_interfaces(topology, expectation)
    by_name = {r.name: r for r in reports}
    hit = 0
    for l3, group_bytes in groups.items():
        if l3 in wanted:
            hit += group_bytes
            continue
        ports = [by_name[n].payload for n in topology.chain_down(l3)[1:] if n in wanted and n in by_name]
        if ports:
            hit += max(ports)
    return hit / total


def impossible_counts(reports: tuple[InterfaceReport, ...]) -> list[Finding]:
    """A sniffer can never see more bytes than the interface itself carried."""
    out = []
    factor, slack = COUNTER_SLACK
    for r in reports:
        for way, seen, counted in (("tx", r.bytes_tx, r.counter_tx), ("rx", r.bytes_rx, r.counter_rx)):
            if counted is not None and seen > counted * factor + slack:
                out.append(
                    Finding(
                        "impossible-count",
                        "error",
                        f"{r.name} {way}: captured {seen} bytes but the interface counted only {counted}",
                        "the capture cannot be trusted: rerun, and report a bug if it persists",
                    )
                )
    return out


def coverage(groups: dict[str, int], migration: MigrationResult, drops: int = 0) -> Coverage:
    seen = sum(groups.values())
    processed = migration.data_processed
    if not processed:
        return Coverage(None, seen, processed, False, "libvirt reported no data_processed to compare with")
    ratio = seen / processed
    lo, hi = COVERAGE_RANGE
    if drops:
        lo = DROPS_RECONCILE_MIN
    if ratio < lo and drops:
        why = f"the kernel dropped {drops} packets before the sniffers could read them, so the counts do not reconcile"
    elif ratio < lo:
        why = (
            "part of the stream crossed an interface or port that was not watched "
            "(or the migration was tunnelled through libvirtd)"
        )
    elif ratio > hi:
        why = "more bytes than QEMU sent: another stream shared the watched ports"
    else:
        why = ""
    return Coverage(ratio, seen, processed, not why, why)


def decide(
    topology: Topology,
    capture: CaptureResult,
    migration: MigrationResult,
    prediction: Prediction | None,
    expectation: Expectation,
    direction: str = "outbound",
    fix_for: FixFn | None = None,
    require_coverage: bool = True,
) -> Leg:
    reports, groups = interface_reports(topology, capture)
    observed, path = observed_path(topology, reports, groups)
    cov = coverage(groups, migration, sum(r.drops for r in reports))
    findings: list[Finding] = []
    share = expected_share(topology, expectation, reports, groups) if expectation.given else None
    drops = {r.name: r.drops for r in reports if r.drops}
    impossible = impossible_counts(reports)
    findings += impossible
    findings += [
        Finding("capture-problem", "warning", problem, "free space in --captures-dir or choose another")
        for problem in capture.problems
    ]

    if migration.status == "failed":
        findings.append(
            Finding(
                "migration-failed",
                "error",
                f"the migration failed: {migration.error}",
                f"the guest is on the {migration.guest_location or 'unknown'} host",
            )
        )
    if observed is None:
        findings.append(
            Finding(
                "no-stream",
                "error",
                "no migration traffic was seen on the watched interfaces and ports",
                "watch more interfaces (--interfaces) or ports (--ports); a tunnelled migration rides "
                "the libvirtd connection (16509/16514/22)",
            )
        )
    for name, count in drops.items():
        findings.append(
            Finding(
                "capture-drops",
                "warning",
                f"the kernel dropped {count} packets for the sniffer on {name}",
                "counts on that interface are lower bounds",
            )
        )
    if require_coverage and observed is not None and not cov.ok and migration.status == "completed":
        pct = f"{cov.ratio:.1%}" if cov.ratio is not None else "unknown"
        findings.append(
            Finding(
                "coverage",
                "warning",
                f"captured payload is {pct} of libvirt's data_processed: {cov.reason}",
                "see --interfaces / --ports",
            )
        )
    if prediction and prediction.interface and observed and prediction.interface != observed:
        findings.append(
            Finding(
                "prediction-mismatch",
                "warning",
                f"the route lookup predicted {prediction.interface}, the stream used {observed}",
                "a policy rule, a changed route or the destination's migration_host "
                "may differ from what this host knows",
            )
        )
    if share is not None and observed is not None and share < PASS_SHARE:
        want = ", ".join(expectation.interfaces + expectation.networks)
        msg = f"{share:.1%} of the stream went where expected ({want}); it took {' -> '.join(path)}"
        if prediction and prediction.uri_origin == "hostname" and prediction.target_host:
            msg += (
                f" because the destination's hostname {prediction.target_host!r} resolves here to "
                f"{prediction.target_address}"
            )
        target = expectation.interfaces[0] if expectation.interfaces else want
        findings.append(Finding("wrong-path", "error", msg, fix_for(target) if fix_for else ""))

    if migration.status == "interrupted":
        verdict = "interrupted"
        findings.append(
            Finding(
                "interrupted",
                "warning",
                f"the run was interrupted: {migration.error}",
                f"the guest is on the {migration.guest_location or 'unknown'} host",
            )
        )
    elif migration.status == "failed" or observed is None or impossible or require_coverage and not cov.ok:
        verdict = "inconclusive"
    elif share is None:
        verdict = "observed"
    else:
        verdict = "pass" if share >= PASS_SHARE else "fail"
    return Leg(
        direction=direction,
        verdict=verdict,
        observed_interface=observed,
        observed_path=path,
        interfaces=reports,
        coverage=cov,
        migration=migration,
        connections=capture.connections,
        findings=tuple(findings),
        expected_share=share,
    )
