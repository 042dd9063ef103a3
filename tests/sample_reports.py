"""Reports as the main job builds them, from hand-made captures run through reconcile.decide.

Shared by test_formats, test_runs_records, test_compare and test_notebook. No lab, no I/O except
`stored`, which writes a run directory with runs.store (and a chart) like the main job does.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from verifier import __version__, reconcile, runs
from verifier.model import (
    SCHEMA_VERSION,
    Bin,
    CaptureResult,
    Expectation,
    Finding,
    Interface,
    InterfaceCount,
    MigrationResult,
    Prediction,
    Reason,
    Report,
    StreamSummary,
    Topology,
)

MB = 1_000_000
T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z

TOPO = Topology(
    "node1",
    (
        Interface("br0", 3, "bridge", members=("eth0",), addresses=("203.0.113.11/24",), role="management"),
        Interface("eth0", 2, "veth", master="br0"),
        Interface("san0", 4, "veth", addresses=("198.18.0.11/24",), role="storage/migration"),
        Interface("ring1", 5, "veth", addresses=("198.51.100.11/24",), role="corosync"),
    ),
)

LAN_PREDICTION = Prediction(
    "node2",
    "203.0.113.12",
    "br0",
    ("br0", "eth0"),
    source_address="203.0.113.11",
    reasons=(
        Reason("migration URI", "none given: libvirt uses the destination's hostname 'node2'"),
        Reason("name resolution", "node2 resolves to 203.0.113.12", "/etc/hosts: 203.0.113.12 node2"),
        Reason("route", "203.0.113.12 is on-link via br0", "203.0.113.0/24 dev br0 table main"),
        Reason("bridge", "br0 forwards through its port eth0"),
    ),
)
SAN_PREDICTION = Prediction(
    "198.18.0.12",
    "198.18.0.12",
    "san0",
    ("san0",),
    uri_origin="via",
    migrate_uri="tcp://198.18.0.12",
    reasons=(
        Reason("migration URI", "--via san0: tcp://198.18.0.12"),
        Reason("route", "198.18.0.12 is on-link via san0", "198.18.0.0/24 dev san0 table main"),
    ),
)


def _bins(total: int, seconds: float) -> tuple[Bin, ...]:
    """TOTAL bytes at a steady rate for SECONDS: full one-second bins, a partial last one (so a
    run of 2.5 s has three bins and a wire rate of TOTAL / 2.5 per second)."""
    rate = total / seconds
    out = []
    for s in range(math.ceil(seconds)):
        n = round(rate * min(1.0, seconds - s))
        out.append(Bin(s, n, n // 40))
    return tuple(out)


def _capture(seconds: float, **payload: int) -> CaptureResult:
    counts = tuple(
        InterfaceCount(
            name,
            bytes_tx=p + p // 20,
            bytes_rx=p // 40,
            payload_tx=p,
            packets_tx=p // 30000 + 1 if p else 0,
            packets_rx=p // 60000 + 1 if p else 0,
            bins=_bins(p + p // 20, seconds) if p else (),
        )
        for name, p in payload.items()
    )
    return CaptureResult(counts, (), ((49152, 49215),), T0, T0 + math.ceil(seconds), 128, "tcp")


def _report(
    payload: dict[str, int],
    *,
    processed: int,
    duration: float,
    prediction: Prediction,
    expectation: Expectation,
    started: float,
    vm: str = "vm01",
    with_return: bool = False,
) -> Report:
    migration = MigrationResult(
        "completed",
        prediction.migrate_uri,
        dest_uri="qemu+tcp://node2/system",
        data_processed=processed,
        data_total=processed,
        duration_s=duration,
        started_at=started,
        downtime_ms=42,
    )
    leg = reconcile.decide(TOPO, _capture(duration, **payload), migration, prediction, expectation)
    # The fix text is not what these samples are about: a recognisable one in the verify-path words.
    leg = replace(
        leg,
        findings=tuple(
            replace(
                f,
                fix=f"verify-path {vm} node2 --via {f.facts.expected}  (or: virsh migrate --migrateuri "
                f"tcp://<{f.facts.expected} address>)",
            )
            if f.code == "wrong-path" and f.facts and f.facts.expected
            else f
            for f in leg.findings
        ),
    )
    back = None
    if with_return:
        # The return leg is checked against the same --expect as the outbound one.
        back = reconcile.decide(
            TOPO,
            _capture(duration, san0=payload.get("san0", 0) or processed),
            replace(migration, migrate_uri="tcp://198.18.0.11"),
            None,
            expectation,
            "return",
        )
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        verdict=leg.verdict,
        vm=vm,
        source="node1",
        destination="node2",
        expected=expectation,
        observed_interface=leg.observed_interface,
        observed_path=leg.observed_path,
        interfaces=leg.interfaces,
        stream=StreamSummary(((49152, 49215),), (), (49152,), 1, {}),
        migration=leg.migration,
        prediction=prediction,
        coverage=leg.coverage,
        findings=leg.findings,
        run_dir=None,
        started_at=started,
        expected_share=leg.expected_share,
        return_leg=back,
    )


def lan_fail(started: float = T0, duration: float = 4.0) -> Report:
    """Expected san0, took br0 -> eth0: verdict fail, with a wrong-path finding and its fix."""
    return _report(
        {"br0": 100 * MB, "eth0": 100 * MB, "san0": 0, "ring1": 0},
        processed=100 * MB,
        duration=duration,
        prediction=LAN_PREDICTION,
        expectation=Expectation(interfaces=("san0",)),
        started=started,
    )


def san_pass(started: float = T0 + 3600, duration: float = 2.0, with_return: bool = False) -> Report:
    """Expected san0 (and its network), took san0: verdict pass."""
    return _report(
        {"br0": 0, "eth0": 0, "san0": 100 * MB, "ring1": 0},
        processed=100 * MB,
        duration=duration,
        prediction=SAN_PREDICTION,
        expectation=Expectation(interfaces=("san0",), networks=("198.18.0.0/24",)),
        started=started,
        with_return=with_return,
    )


def inconclusive(started: float = T0 + 7200) -> Report:
    """Only half of data_processed was seen: coverage fails, verdict inconclusive."""
    return _report(
        {"br0": 0, "eth0": 0, "san0": 50 * MB, "ring1": 0},
        processed=100 * MB,
        duration=2.0,
        prediction=SAN_PREDICTION,
        expectation=Expectation(interfaces=("san0",)),
        started=started,
    )


def observed(started: float = T0 + 10800) -> Report:
    """No expectation: verdict observed."""
    return _report(
        {"br0": 0, "eth0": 0, "san0": 100 * MB, "ring1": 0},
        processed=100 * MB,
        duration=2.0,
        prediction=SAN_PREDICTION,
        expectation=Expectation(),
        started=started,
    )


def hostile(started: float = T0 + 14400) -> Report:
    """A fail run whose user-controlled text tries to inject markup and external references."""
    evil = '<script src="https://evil.example/x.js"></script><img src="x.png">|**'
    report = lan_fail(started)
    return replace(
        report,
        vm="vm<b>01</b>",
        findings=(*report.findings, Finding("note", "info", evil, "<link href='http://evil.example/s.css'>")),
    )


def stored(report: Report, captures_dir: Path, chart: bool = True) -> Path:
    """REPORT stored as a run directory the way the main job stores it; returns the directory."""
    from verifier.render import chart as charts

    run_dir = runs.create(captures_dir, report.vm, report.destination, now=report.started_at)
    report = replace(report, run_dir=str(run_dir))
    runs.store(report, run_dir)
    if chart:
        charts.render(report, run_dir / "chart.png")
    return run_dir


def watched(started: float = T0 + 21600) -> Report:
    """`verify-path watch` on node1 with no VM or destination named: empty labels."""
    return replace(observed(started), vm="", destination="", mode="watch")


def analyzed(started: float = T0 + 25200) -> Report:
    """`verify-path analyze` without --vm/--dest: analyze's placeholder labels."""
    return replace(observed(started), vm="analyze", source="offline", destination="pcap", mode="analyze")
