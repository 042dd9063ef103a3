"""Reconciliation on hand-built inputs: shares, observed path, coverage, verdicts and findings."""

from __future__ import annotations

from verifier import reconcile
from verifier.model import (
    CaptureResult,
    Connection,
    Expectation,
    Facts,
    Interface,
    InterfaceCount,
    MigrationResult,
    OwnedFlow,
    Prediction,
    Topology,
)

TOPO = Topology(
    "node1",
    (
        Interface("br0", 3, "bridge", members=("eth0",), addresses=("203.0.113.11/24",)),
        Interface("eth0", 2, "veth", master="br0"),
        Interface("san0", 4, "veth", addresses=("198.18.0.11/24",)),
        Interface("ring1", 5, "veth", addresses=("198.51.100.11/24",)),
    ),
)
MB = 1_000_000


def capture(**payload: int) -> CaptureResult:
    counts = tuple(
        InterfaceCount(name, bytes_tx=p + p // 20, payload_tx=p, packets_tx=p // 30000 + 1)
        for name, p in payload.items()
    )
    return CaptureResult(counts, (), ((49152, 49215),), 0.0, 1.0, 128, "tcp")


def done(processed: int | None = 100 * MB) -> MigrationResult:
    return MigrationResult("completed", None, data_processed=processed, duration_s=2.0)


def test_lan_stream_fails_a_san_expectation_and_counts_the_bridge_once() -> None:
    leg = reconcile.decide(
        TOPO,
        capture(br0=100 * MB, eth0=100 * MB, san0=0, ring1=0),
        done(),
        Prediction("node2", "203.0.113.12", "br0", ("br0", "eth0")),
        Expectation(interfaces=("san0",)),
    )
    assert leg.verdict == "fail"
    assert leg.observed_interface == "br0" and leg.observed_path == ("br0", "eth0")
    shares = {r.name: r.share for r in leg.interfaces}
    assert shares == {"br0": 1.0, "eth0": 1.0, "san0": 0.0, "ring1": 0.0}
    assert leg.coverage.ok and leg.coverage.ratio == 1.0
    wrong = [f for f in leg.findings if f.code == "wrong-path"]
    # Reconcile names what the fix must aim at; prescribe words it.
    assert wrong and wrong[0].fix == "" and wrong[0].facts == Facts(expected="san0")
    assert [r.name for r in leg.interfaces] == ["br0", "eth0", "san0", "ring1"]


def test_expecting_a_bridge_port_passes_when_the_port_carried_it() -> None:
    leg = reconcile.decide(
        TOPO, capture(br0=50 * MB, eth0=50 * MB), done(50 * MB), None, Expectation(interfaces=("eth0",))
    )
    assert leg.verdict == "pass" and leg.expected_share == 1.0


def test_expect_net_selects_the_interface_holding_an_address_in_it() -> None:
    leg = reconcile.decide(
        TOPO,
        capture(br0=3 * MB, eth0=3 * MB, san0=97 * MB),
        done(100 * MB),
        None,
        Expectation(networks=("198.18.0.0/24",)),
    )
    assert leg.verdict == "pass"
    assert abs(leg.expected_share - 0.97) < 1e-9


def test_94_percent_is_not_enough() -> None:
    leg = reconcile.decide(
        TOPO, capture(br0=6 * MB, eth0=6 * MB, san0=94 * MB), done(100 * MB), None, Expectation(interfaces=("san0",))
    )
    assert leg.verdict == "fail"


def test_without_expectation_the_verdict_is_observed() -> None:
    leg = reconcile.decide(TOPO, capture(san0=100 * MB), done(), None, Expectation())
    assert leg.verdict == "observed" and leg.observed_interface == "san0"


def test_low_coverage_is_inconclusive_with_the_reason() -> None:
    leg = reconcile.decide(TOPO, capture(san0=50 * MB), done(100 * MB), None, Expectation(interfaces=("san0",)))
    assert leg.verdict == "inconclusive"
    assert not leg.coverage.ok and "not watched" in leg.coverage.reason
    assert any(f.code == "coverage" for f in leg.findings)


def test_no_stream_is_inconclusive() -> None:
    leg = reconcile.decide(TOPO, capture(san0=0, br0=0), done(), None, Expectation(interfaces=("san0",)))
    assert leg.verdict == "inconclusive" and leg.observed_interface is None
    assert any(f.code == "no-stream" for f in leg.findings)


def test_prediction_mismatch_is_a_finding() -> None:
    leg = reconcile.decide(TOPO, capture(san0=100 * MB), done(), Prediction("x", "1", "br0", ("br0",)), Expectation())
    assert any(f.code == "prediction-mismatch" for f in leg.findings)


def test_drops_are_reported_and_only_fail_when_counts_do_not_reconcile() -> None:
    cap = capture(san0=100 * MB)
    cap = CaptureResult(
        tuple(c.__class__(**{**c.__dict__, "drops": 7}) for c in cap.interfaces), (), cap.ports, 0, 1, 128, ""
    )
    leg = reconcile.decide(TOPO, cap, done(), None, Expectation(interfaces=("san0",)))
    assert leg.verdict == "pass"
    assert any(f.code == "capture-drops" and "7" in f.message for f in leg.findings)


def test_failed_migration_is_inconclusive_and_says_where_the_guest_is() -> None:
    failed = MigrationResult("failed", None, error="connection reset", guest_location="source")
    leg = reconcile.decide(TOPO, capture(san0=10 * MB), failed, None, Expectation(interfaces=("san0",)))
    assert leg.verdict == "inconclusive"
    assert any(f.code == "migration-failed" and f.facts == Facts(location="source") for f in leg.findings)


def test_more_captured_than_the_interface_carried_is_flagged_and_inconclusive() -> None:
    cap = capture(san0=100 * MB)
    honest = CaptureResult(
        tuple(c.__class__(**{**c.__dict__, "counter_tx": c.bytes_tx + 10, "counter_rx": 0}) for c in cap.interfaces),
        (),
        cap.ports,
        0,
        1,
        128,
        "",
    )
    assert reconcile.decide(TOPO, honest, done(), None, Expectation(interfaces=("san0",))).verdict == "pass"
    bogus = CaptureResult(
        tuple(c.__class__(**{**c.__dict__, "counter_tx": c.bytes_tx // 2}) for c in cap.interfaces),
        (),
        cap.ports,
        0,
        1,
        128,
        "",
    )
    leg = reconcile.decide(TOPO, bogus, done(), None, Expectation(interfaces=("san0",)))
    assert leg.verdict == "inconclusive"
    assert any(f.code == "impossible-count" and "san0 tx" in f.message for f in leg.findings)


def test_watch_splits_a_guest_that_leaves_and_comes_back_into_two_migrations() -> None:
    """A round trip in one watch window: the source QEMU's outbound connection and the incoming
    QEMU's inbound one are two migrations of vm01, each with its own flows; the rest is foreign."""
    ports = ((49152, 49215),)
    out = OwnedFlow("198.18.0.11", 40000, "198.18.0.12", 49152, "ESTABLISHED", 1, 10, "qemu (vm01)", "migration")
    back = OwnedFlow("198.18.0.11", 49153, "198.18.0.12", 50000, "ESTABLISHED", 2, 20, "qemu (vm01)", "migration")
    other = OwnedFlow("198.18.0.11", 40001, "198.18.0.12", 49154, "ESTABLISHED", 3, 30, "qemu (vm02)", "migration")
    gluster = OwnedFlow("198.18.0.11", 49152, "198.18.0.12", 51000, "ESTABLISHED", 4, 40, "glusterfsd", "foreign")
    seen = CaptureResult((), (), ports, 0.0, 1.0, 128, "tcp")  # no connection seen: the ports decide
    groups = reconcile.by_domain((out, back, other, gluster), seen)
    assert [(guest, way, o.owner_pid, o.flows) for guest, way, o in groups] == [
        ("vm01", "inbound", 20, (back,)),
        ("vm01", "outbound", 10, (out,)),
        ("vm02", "outbound", 30, (other,)),
    ]
    inbound = groups[0][2]
    assert set(inbound.foreign) == {out, other, gluster}


def test_watch_tells_the_way_by_who_connected_when_the_source_port_is_in_the_range() -> None:
    """A source QEMU whose ephemeral port fell inside the migration range (49166 -> 49153): both
    ends are in the range, and the capture's SYN says which one connected. An incoming QEMU that
    accepted from such a port is still inbound."""
    ports = ((49152, 49215),)
    out = OwnedFlow("203.0.113.11", 49166, "203.0.113.12", 49153, "ESTABLISHED", 1, 10, "qemu (vm02)", "migration")
    back = OwnedFlow("203.0.113.11", 49154, "203.0.113.12", 49170, "ESTABLISHED", 2, 20, "qemu (vm01)", "migration")
    conns = (
        Connection("203.0.113.11", 49166, "203.0.113.12", 49153, 50 * MB, 0, 1000, ("br0",)),
        Connection("::ffff:203.0.113.12", 49170, "203.0.113.11", 49154, 50 * MB, 0, 1000, ("br0",)),
    )
    captured = CaptureResult((), conns, ports, 0.0, 1.0, 128, "tcp")
    ways = [(guest, way) for guest, way, _ in reconcile.by_domain((out, back), captured)]
    assert ways == [("vm01", "inbound"), ("vm02", "outbound")]
