"""The whole job offline: run_job and run_watch end to end on recordings of the real lab (node1's
netlink dumps, libvirt's job statistics of real migrations, the sample runs' pcaps), as any user.

These are the same stages the lab tests drive through the CLI; here each situation is cheap to set
up, so each gets its own test: the default LAN path, --via san0, an interrupt, a failed
destination, a policy rule, and the checks that must stop a run before anything moves.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import fakes
import pytest

from verifier import pipeline
from verifier.errors import EnvironmentProblem, ExitCode, UsageError, exit_code_for
from verifier.jobs import JobOptions
from verifier.model import Expectation, MigrationStatus, Verdict

LAN = {"br0": fakes.SAMPLES / "lan-default" / "br0.pcap", "eth0": fakes.SAMPLES / "lan-default" / "eth0.pcap"}
SAN = {"san0": fakes.SAMPLES / "via-san0" / "san0.pcap"}


def options(tmp: Path, **kw: object) -> JobOptions:
    base = JobOptions(
        vm="vm01",
        dest="node2",
        connect_uri="qemu+tcp://node1/system",
        dest_uri="qemu+tcp://node2/system",
        expectation=Expectation(("san0",)),
        captures_dir=tmp / "captures",
        roles=(("ring1", "corosync ring0"),),  # what the lab's corosync.conf tells the live run
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def run(tmp: Path, opts: JobOptions, hv: fakes.RecordedHypervisor, pcaps: dict[str, Path], **kw: object):  # type: ignore[no-untyped-def]
    b = fakes.backends(tmp, hv, pcaps, **kw)  # type: ignore[arg-type]
    return pipeline.run_job(opts, b, lock=fakes.no_lock)


def stored(report_dir: str | None) -> dict[str, object]:
    assert report_dir is not None
    path = Path(report_dir) / "run.json"
    assert path.stat().st_mode & 0o777 == 0o600
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_default_path_takes_the_lan_and_fails_with_the_migration_host_fix(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("default"))
    done = run(tmp_path, options(tmp_path), hv, LAN)
    report = done.report
    assert report.verdict == Verdict.FAIL and exit_code_for(report.verdict) == ExitCode.WRONG_PATH
    assert report.observed_path == ("br0", "eth0")
    assert report.prediction.interface == "br0" and report.prediction.uri_origin == "hostname"
    assert report.coverage.ok and 0.99 < (report.coverage.ratio or 0) < 1.01
    (wrong,) = [f for f in report.findings if f.code == "wrong-path"]
    assert "hostname 'node2' resolves here to 203.0.113.12" in wrong.message
    assert 'migration_host = "node2-san" and migration_address = "198.18.0.12"' in wrong.fix
    assert "--migrateuri tcp://198.18.0.12" in wrong.fix
    assert hv.migrations[0].migrate_uri is None and hv.closed  # libvirt's default; connection closed
    # Why it took as long as it did: the shaped 1 Gbit/s LAN was full (100 ms bins of the stream).
    d = report.diagnosis
    assert d is not None and d.bottleneck == "link-bound" and d.converged
    assert d.link_rate_bps == 1_000_000_000 and d.wire_rate_bps is not None
    assert 0.90 <= d.wire_rate_bps / d.link_rate_bps <= 1.0
    assert d.transfer_rate_bps and abs(d.wire_rate_bps / d.transfer_rate_bps - 1) < 0.05  # libvirt agrees
    (slow,) = [f for f in report.findings if f.code == "bottleneck-link"]
    assert "--via san0" in slow.fix and "ring1" not in slow.fix
    on_disk = stored(report.run_dir)
    assert on_disk["verdict"] == "fail" and on_disk["observed_interface"] == "br0"
    assert on_disk["diagnosis"]["class"] == "link-bound"  # type: ignore[index]
    assert len(on_disk["timeline"]["samples"]) == 11  # type: ignore[index]  # 10 polls + the completed job
    assert done.stored.chart is not None and done.stored.chart.exists()


def test_via_san0_passes(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    report = run(tmp_path, options(tmp_path, via="san0"), hv, SAN).report
    assert report.verdict == Verdict.PASS and report.observed_interface == "san0"
    assert hv.migrations[0].migrate_uri == "tcp://198.18.0.12"
    assert report.prediction.uri_origin == "via" and report.prediction.interface == "san0"
    assert not [f for f in report.findings if f.severity == "error"]
    assert (report.expected_share or 0) >= 0.95


def test_interrupt_keeps_the_partial_run_and_says_where_the_guest_is(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("default"), interrupt_after=3)
    report = run(tmp_path, options(tmp_path), hv, LAN).report
    assert report.verdict == Verdict.INTERRUPTED
    assert exit_code_for(report.verdict, report.migration.status) == ExitCode.INTERRUPTED
    (note,) = [f for f in report.findings if f.code == "interrupted"]
    assert note.fix == "the guest is on the source host"
    assert stored(report.run_dir)["verdict"] == "interrupted"


def test_destination_failure_is_exit_5_with_libvirts_words(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("default"), fail_after=10)
    report = run(tmp_path, options(tmp_path), hv, LAN).report
    assert report.migration.status == MigrationStatus.FAILED
    assert exit_code_for(report.verdict, report.migration.status) == ExitCode.MIGRATION_FAILED
    (failed,) = [f for f in report.findings if f.code == "migration-failed"]
    assert "Unable to write to socket" in failed.message and failed.fix == "the guest is on the source host"
    assert report.migration.data_processed and report.migration.data_processed > 0


def test_policy_rule_sends_the_san_address_out_of_san1_and_the_fix_removes_the_rule(tmp_path: Path) -> None:
    dump = fakes.with_policy_rule(fakes.netlink(), "198.18.0.12", table=100, via_iface="san1")
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    # The lab run of this case saw the stream on san1: the san0 capture replayed under that name.
    report = run(tmp_path, options(tmp_path, via="san0"), hv, {"san1": SAN["san0"]}, dump=dump).report
    rule = next(r for r in report.prediction.reasons if r.step == "policy rule")
    assert rule.detail == "100: from all to 198.18.0.12/32 lookup 100"
    assert report.prediction.interface == "san1" and report.prediction.table == 100
    assert report.verdict == Verdict.FAIL and report.observed_interface == "san1"
    (wrong,) = [f for f in report.findings if f.code == "wrong-path"]
    assert "(`ip rule del priority 100`)" in wrong.fix


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"expectation": Expectation(("san9",))}, UsageError, "--expect names missing interface(s): san9"),
        ({"expectation": Expectation((), ("10.99.0.0/24",))}, UsageError, "no interface of this host"),
        ({"interfaces": ("nosuch0",)}, UsageError, "--interfaces names missing"),
        ({"via": "nosuch0"}, UsageError, "--via nosuch0: no such interface"),
        ({"migrate_uri": "tcp://nosuchhost-san"}, UsageError, "'nosuchhost-san' does not resolve"),
        ({"vm": "vm99"}, UsageError, "no domain named 'vm99'"),
    ],
)
def test_bad_names_stop_the_run_before_anything_moves(
    tmp_path: Path, changes: dict[str, object], error: type[Exception], words: str
) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("default"))
    with pytest.raises(error) as exc:
        run(tmp_path, options(tmp_path, **changes), hv, LAN)
    assert words in str(exc.value)
    assert hv.migrations == []  # nothing migrated
    assert not (tmp_path / "captures").exists()  # nothing stored


def test_a_migration_host_that_does_not_resolve_is_an_environment_problem(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor({**fakes.recording("default"), "hostname": "node2.invalid"})
    with pytest.raises(EnvironmentProblem, match="'node2.invalid' \\(hostname\\), which does not resolve"):
        run(tmp_path, options(tmp_path), hv, LAN)
    assert hv.migrations == []


def test_the_corosync_ring_is_an_error_unless_expected(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    b = fakes.backends(tmp_path, hv, {})
    roles = (("ring1", "corosync ring0"),)
    plan = pipeline.predict_only(options(tmp_path, via="ring1", roles=roles, expectation=Expectation()), b)
    (ring,) = [f for f in plan.findings if f.code == "ring-link"]
    assert ring.severity == "error" and "corosync ring" in ring.message
    assert ring.fix.startswith("keep migrations off ring1: --via san0")
    expected = options(tmp_path, via="ring1", roles=roles, expectation=Expectation(("ring1",)))
    (ring,) = [f for f in pipeline.predict_only(expected, b).findings if f.code == "ring-link"]
    assert ring.severity == "warning"


def test_on_a_busy_host_only_the_migrations_own_connections_decide(tmp_path: Path) -> None:
    """The SAN sample's stream is QEMU's; the LAN sample's, replayed beside it on br0, belongs to
    another program on 49152 (as iperf3 did in the lab): pass on san0, the LAN flow foreign."""
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    owners = fakes.RecordedOwners(mine=(fakes.SAN_FLOW,), foreign=((fakes.LAN_FLOW, "iperf3", 777),))
    report = run(tmp_path, options(tmp_path, via="san0"), hv, {**LAN, **SAN}, owners=owners).report
    assert report.attribution == "ownership"
    assert report.verdict == Verdict.PASS and report.observed_path == ("san0",)
    assert report.coverage.ok and 0.95 <= (report.coverage.ratio or 0) <= 1.05
    (foreign,) = report.foreign
    assert (foreign.server_port, foreign.owner, foreign.pid) == (49152, "iperf3", 777)
    assert foreign.interfaces == ("br0", "eth0") and foreign.bytes > 100_000_000
    shares = {i.name: i.share for i in report.interfaces}
    assert shares["san0"] == 1.0 and shares["br0"] == 0.0
    (shared,) = [f for f in report.findings if f.code == "port-range-shared"]
    assert "port 49152 on 203.0.113.12" in shared.message and "iperf3 (pid 777)" in shared.message
    # A free 64-port block on this host, above the ones in use (49152 here), with the firewall rule.
    assert "migration_port_min = 49153 and migration_port_max = 49216" in shared.fix
    assert "--dport 49153:49216" in shared.fix
    assert not [f for f in report.findings if f.code == "impossible-count"]
    owner = {c.server: c.owner for c in report.return_leg.connections} if report.return_leg else {}
    assert owner == {}


def test_without_owners_the_stream_kind_decides_and_the_report_says_so(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    owners = fakes.RecordedOwners(problem="cannot read /proc/4242/fd (Permission denied): run as root")
    report = run(tmp_path, options(tmp_path, via="san0"), hv, {**LAN, **SAN}, owners=owners).report
    # Both replayed streams start with QEVM: without owners both count, and the verdict cannot pass.
    assert report.attribution == "classification" and report.verdict != Verdict.PASS
    (fallback,) = [f for f in report.findings if f.code == "attribution-fallback"]
    assert "Permission denied" in fallback.message and "run as root" in fallback.fix


def test_watch_reports_what_it_saw(tmp_path: Path) -> None:
    hv = fakes.RecordedHypervisor(fakes.recording("san0"))
    b = fakes.backends(tmp_path, hv, SAN)
    opts = options(tmp_path, vm="", dest="", connect_uri="", dest_uri="")
    report = pipeline.run_watch(opts, b, duration=0.1, until_idle=None).report
    assert report.mode == "watch" and report.observed_interface == "san0"
    assert report.verdict == Verdict.PASS  # expected san0
    assert stored(report.run_dir)["mode"] == "watch"
