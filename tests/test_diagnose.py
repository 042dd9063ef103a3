"""diagnose: the pre-copy forecast, the bottleneck classes, the JSON shape, the prescriptions.

The time series are shaped like recorded runs: `recorded()` steps a pre-copy migration in 50 ms
ticks (QEMU's start-up with no totals first, then a full pass, then what the guest dirtied), and
reports what the hypervisor's 0.5 s polls and the capture's bins would have seen: frame bytes are
payload * 1514/1448 (Ethernet, IP and TCP headers at MTU 1500), memory_dirty_rate in 4 KiB pages/s
from the second pass on, the completed job's statistics last.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace

import pytest

from verifier import prescribe
from verifier.diagnose import convergence
from verifier.diagnose.classify import cap_in_effect, diagnose, link_rate_bps, wire_rate
from verifier.diagnose.fixes import FIXES, findings
from verifier.model import (
    Bottleneck,
    Diagnosis,
    Facts,
    Finding,
    Interface,
    JobProgress,
    JobSample,
    LinkForecast,
    RateCap,
    Severity,
    Timeline,
    Topology,
    from_dict,
    to_dict,
)

MiB = 1 << 20
FRAME = 1514 / 1448  # captured frame bytes per payload byte
GBIT = 1_000_000_000


def recorded(
    memory: int,
    send_Bps: float,
    dirty_Bps: float = 0.0,
    wss: int | None = None,
    abort_at: float | None = None,
    bin_s: float = 1.0,
    startup: float = 1.4,
    throttle: int | None = None,
) -> tuple[Timeline, bool]:
    """A pre-copy run as polled and captured: (timeline, completed)."""
    dt, wss = 0.05, wss or memory
    samples: list[JobSample] = []
    bins: dict[int, float] = defaultdict(float)
    tick, sent, remaining, iteration, dirty = 0, 0.0, float(memory), 1, 0.0

    def poll(downtime: int | None = None, done: bool = False) -> JobProgress:
        return JobProgress(
            data_total=memory,
            data_processed=int(sent),
            data_remaining=0 if done else int(remaining),
            memory_bps=send_Bps,
            memory_iteration=iteration,
            memory_remaining=0 if done else int(remaining),
            memory_dirty_rate=int(dirty_Bps / 4096) if iteration > 1 and dirty_Bps else None,
            memory_page_size=4096,
            downtime_ms=downtime,
            auto_converge_throttle=throttle,
        )

    while tick * dt < startup:  # the destination QEMU starting: libvirt reports no totals yet
        if tick % 10 == 0:
            samples.append(JobSample(tick * dt, JobProgress()))
        tick += 1
    while True:
        t = tick * dt
        if remaining <= send_Bps * 0.3:
            # QEMU syncs the dirty bitmap (a new iteration) and stops the guest when all that is
            # left, the freshly dirtied pages included, fits in the 300 ms downtime limit.
            iteration, remaining, dirty = iteration + 1, remaining + dirty, 0.0
        if remaining <= send_Bps * 0.3:
            bins[int(t / bin_s + 1e-9)] += remaining * FRAME
            sent += remaining
            samples.append(JobSample(t + remaining / send_Bps, poll(int(1000 * remaining / send_Bps) + 20, True)))
            return Timeline(tuple(samples), tuple((k * bin_s, int(v)) for k, v in sorted(bins.items())), bin_s), True
        if abort_at is not None and t >= abort_at:
            return Timeline(tuple(samples), tuple((k * bin_s, int(v)) for k, v in sorted(bins.items())), bin_s), False
        if tick % 10 == 0:
            samples.append(JobSample(t, poll()))
        chunk = min(remaining, send_Bps * dt)
        remaining, sent = remaining - chunk, sent + chunk
        bins[int(t / bin_s + 1e-9)] += chunk * FRAME
        dirty = min(float(wss), dirty + dirty_Bps * dt)
        tick += 1


def by(
    timeline: Timeline,
    link: int | None,
    cap: RateCap | None = None,
    completed: bool = True,
    streams: int = 1,
    tls: bool = False,
    compressed: bool = False,
) -> Diagnosis:
    return diagnose(timeline, link, cap, streams, tls, compressed, completed)


# --- the pre-copy model, on worked examples --------------------------------------------------


def test_usable_rate_of_a_gigabit_link() -> None:
    # 1448 payload bytes per 1538 bytes of wire time: 1e9 / 8 * 1448 / 1538 = 117.685 MB/s.
    assert convergence.usable_Bps(GBIT) == pytest.approx(117.685e6, rel=1e-4)
    assert convergence.usable_Bps(10 * GBIT, ceiling_Bps=370e6) == 370e6


def test_forecast_the_issue_example() -> None:
    """512 MiB guest dirtying 150 MB/s; br0 1 Gbit/s; san0 10 Gbit/s where the sender tops at 370 MB/s."""
    br0, san0 = convergence.forecast(512 * MiB, 150e6, [("br0", GBIT), ("san0", 10 * GBIT)], ceiling_Bps=370e6)
    # br0: 150 MB/s dirtied >= 117.7 MB/s sent: pass 2 would be min(512 MiB, 150e6 * 4.56 s) = all of it.
    assert (br0.converges, br0.iterations, br0.duration_s) == (False, None, None)
    assert "over br0 (1 Gbit/s, ~118 MB/s) the guest's 150 MB/s dirty rate never converges" in br0.text
    # san0 at 370 MB/s; the stop-and-copy may hold 370e6 * 0.3 s = 111 MB.
    #   pass 1: 536,870,912 B / 370e6 = 1.451 s, dirtying 150e6 * 1.451 = 217.6 MB (> 111 MB)
    #   pass 2: 217.6 MB / 370e6 = 0.588 s, dirtying 150e6 * 0.588 = 88.2 MB (<= 111 MB)
    #   stop-and-copy: 88.2 MB / 370e6 = 0.238 s; total 1.451 + 0.588 + 0.238 = 2.278 s, 3 passes
    assert san0.converges and san0.iterations == 3
    assert san0.duration_s == pytest.approx(2.28, abs=0.01)
    assert "over san0 (10 Gbit/s, ~370 MB/s, the sender's limit) about 3 iterations, about 2.3 s" in san0.text
    assert san0.usable_bps == 2_960_000_000 and san0.rate_bps == 10 * GBIT  # bits/s, not bytes
    assert convergence.summary((br0, san0)) == f"{br0.text}; {san0.text}"


def test_forecast_idle_guest_one_pass_and_the_empty_stop_and_copy() -> None:
    # 1 GiB, nothing dirtied: 1,073,741,824 / 117.685e6 = 9.124 s, then an empty stop-and-copy.
    (f,) = convergence.forecast(1024 * MiB, 0.0, [("br0", GBIT)])
    assert (f.converges, f.iterations) == (True, 2)
    assert f.duration_s == pytest.approx(9.12, abs=0.01)


def test_forecast_small_guest_fits_in_the_downtime() -> None:
    # 16 MiB = 16.8 MB <= 117.685e6 * 0.3 = 35.3 MB: stopped and copied at once, 0.14 s.
    (f,) = convergence.forecast(16 * MiB, 50e6, [("br0", GBIT)])
    assert (f.converges, f.iterations) == (True, 1)
    assert f.duration_s == pytest.approx(16 * MiB / 117.685e6, abs=0.01)
    assert "fits in the downtime" in f.text


def test_forecast_close_race_runs_out_of_iterations() -> None:
    # 110 / 117.685 = 0.935 per pass: 4 GiB needs ln(4295 / 35.3) / ln(1 / 0.935) = 71 passes > 30.
    (f,) = convergence.forecast(4096 * MiB, 110e6, [("br0", GBIT)])
    assert not f.converges and f.iterations is None
    assert "93 % of what it can send: not converged within 30 iterations" in f.text
    # A longer allowed downtime (2 s: 235 MB) brings it home: 4295 MB * 0.9347**k <= 235 MB from
    # k = 44 passes on, plus the stop-and-copy: 45 iterations.
    (g,) = convergence.forecast(4096 * MiB, 110e6, [("br0", GBIT)], max_downtime_s=2.0, max_iterations=60)
    assert g.converges and g.iterations == 45
    assert "(4096 MiB, then 4014 MB, then ..., then 220 MB;" in g.text


# --- the classifier, on recorded-looking runs --------------------------------------------------


def test_wire_rate_excludes_start_up_tail_and_the_partial_edge_bins() -> None:
    # 1 s bins: nothing while QEMU starts, a partial first bin, 3 full ones, a partial last, idle.
    bins = ((0.0, 0), (1.0, 40_000_000), (2.0, 100_000_000), (3.0, 100_000_000), (4.0, 100_000_000), (5.0, 7))
    rate, flowed = wire_rate(Timeline(wire_bins=bins + ((6.0, 0),), bin_s=1.0))
    assert rate == 800_000_000  # 300 MB in the 3 inner bins: 100 MB/s = 800 Mbit/s
    assert flowed == 5.0
    # Two bins only: everything over both, a lower bound.
    assert wire_rate(Timeline(wire_bins=((0.0, 0), (0.1, 5_000_000), (0.2, 5_000_000)), bin_s=0.1)) == (
        400_000_000,
        pytest.approx(0.2),
    )
    assert wire_rate(Timeline()) == (None, 0.0)


def test_link_bound_on_a_shaped_gigabit_lan() -> None:
    # br0 -> eth0, eth0 a 10G veth shaped by tbf to 1000 Mbit/s: the chain's slowest is 1 Gbit/s.
    topo = Topology(
        "node1",
        (
            Interface("eth0", 2, "veth", master="br0", speed_mbps=10000, rate_limit_mbps=1000),
            Interface("br0", 3, "bridge", members=("eth0",)),
        ),
    )
    link = link_rate_bps(topo, ("br0", "eth0"))
    assert link == GBIT
    timeline, done = recorded(1024 * MiB, 117e6 / FRAME, dirty_Bps=2e6, wss=64 * MiB)
    d = by(timeline, link, completed=done)
    assert d.bottleneck == Bottleneck.LINK and d.converged
    assert d.wire_rate_bps == 936_000_000  # 117 MB/s of frames, in bits/s
    assert d.wire_rate_bps / 8 == 117e6
    assert d.transfer_rate_bps == pytest.approx(117e6 / FRAME * 8, rel=1e-6)  # libvirt's memory_bps * 8
    assert d.link_rate_bps == GBIT and d.cap_bps is None
    assert d.iterations == 3 and d.downtime_ms is not None
    assert "117 MB/s (936 Mbit/s) on the wire" in d.evidence[0] and "94 % of the path's slowest link" in d.evidence[0]


def test_link_bound_over_a_bond_counts_one_member() -> None:
    # One TCP stream stays on one member: 2 x 1G bond = 1 Gbit/s for it.
    topo = Topology(
        "node1",
        (
            Interface("eno1", 2, "physical", master="bond0", speed_mbps=1000),
            Interface("eno2", 3, "physical", master="bond0", speed_mbps=1000),
            Interface("bond0", 4, "bond", members=("eno1", "eno2")),
        ),
    )
    assert link_rate_bps(topo, topo.chain_down("bond0")) == GBIT
    assert link_rate_bps(Topology("x", ()), ("br0",)) is None


def test_cap_bound_by_bandwidth_20_mib() -> None:
    cap = cap_in_effect(20, None)
    assert cap == RateCap(20 * MiB * 8, "--bandwidth 20 MiB/s")  # 167,772,160 bits/s
    timeline, done = recorded(256 * MiB, 20 * MiB, bin_s=0.1)
    d = by(timeline, GBIT, cap, completed=done)
    assert d.bottleneck == Bottleneck.CAP
    # 20 MiB/s of payload is 20.97 MB/s; with headers ~21.9 MB/s on the wire.
    assert d.wire_rate_bps is not None and 21e6 <= d.wire_rate_bps / 8 <= 22.5e6
    assert d.cap_bps == 167_772_160 and d.cap_source == "--bandwidth 20 MiB/s"
    assert any("a cap of 21 MB/s (168 Mbit/s) was in effect (--bandwidth 20 MiB/s)" in e for e in d.evidence)


def test_cap_precedence_and_libvirts_unlimited() -> None:
    # --bandwidth overrides the domain's max speed for that migration; 8796093022207 is "none".
    assert cap_in_effect(20, 100) == RateCap(20 * MiB * 8, "--bandwidth 20 MiB/s")
    assert cap_in_effect(None, 100) == RateCap(100 * MiB * 8, "libvirt max speed 100 MiB/s (virsh migrate-setspeed)")
    assert cap_in_effect(None, 8796093022207) is None and cap_in_effect(None, 0) is None


def test_a_cap_above_the_link_never_engaged() -> None:
    timeline, done = recorded(512 * MiB, 117e6 / FRAME)
    d = by(timeline, GBIT, cap_in_effect(None, 1000), completed=done)  # 8.4 Gbit/s cap on 1 Gbit/s
    assert d.bottleneck == Bottleneck.LINK and d.cap_bps == 1000 * MiB * 8


def test_not_converging_150_mb_s_dirty_over_117() -> None:
    # 512 MiB guest, 128 MiB of it rewritten at 150 MB/s; 1 Gbit/s; aborted after 20 s.
    timeline, done = recorded(512 * MiB, 112e6, dirty_Bps=150e6, wss=128 * MiB, abort_at=20)
    d = by(timeline, GBIT, completed=done)
    assert d.bottleneck == Bottleneck.NOT_CONVERGING and not d.converged
    assert d.dirty_rate_bps == (150_000_000 // 4096) * 4096 * 8  # pages/s * page size * 8: bits/s
    assert d.iterations is not None and d.iterations >= 10
    grew = next(e for e in d.evidence if e.startswith("iterations grew"))
    assert "the memory left to send did not fall" in grew
    assert "the guest dirtied 150 MB/s against 112 MB/s sent" in d.evidence
    assert any("was full: only a faster one can outrun the guest" in e for e in d.evidence)


def test_not_converging_just_under_the_link_wherever_the_polls_fall() -> None:
    # The lab's busy guest: 150 MiB rewritten about as fast as the shaped LAN sends (here 108 of
    # 112 MB/s). Passes last about two polls, so the polls sample each pass's sawtooth at one point
    # and drift: the window's later half can average less than its earlier one though the passes
    # do not shrink. Whatever the phase, 2.2 GB sent for a 256/512 MiB guest is not converging.
    for memory in (256 * MiB, 512 * MiB):
        for k in range(20):
            startup = 1.0 + k * 0.025  # where the 0.5 s polls fall on the passes
            timeline, done = recorded(memory, 112e6, dirty_Bps=108e6, wss=150 * MiB, abort_at=20, startup=startup)
            d = by(timeline, GBIT, completed=done)
            assert not done and d.bottleneck == Bottleneck.NOT_CONVERGING, (memory, startup, d.evidence)
            assert any("times the guest's" in e for e in d.evidence)


def test_a_converging_run_aborted_in_its_fourth_pass_is_not_called_stuck() -> None:
    # Passes shrinking (256, 144, 77 MB after the first) when aborted, 1.4 times the guest's memory
    # sent: nowhere near re-sending it all twice over, nor SLOW_ITERATIONS passes.
    timeline, done = recorded(1024 * MiB, 112e6, dirty_Bps=60e6, wss=256 * MiB, abort_at=14.7)
    d = by(timeline, GBIT, completed=done)
    assert not done and d.iterations is not None and 3 <= d.iterations < 10
    assert d.bottleneck == Bottleneck.LINK, d.evidence


def test_not_converging_beats_the_cap() -> None:
    timeline, done = recorded(512 * MiB, 20 * MiB, dirty_Bps=40e6, wss=64 * MiB, abort_at=40)
    d = by(timeline, GBIT, cap_in_effect(20, None), completed=done)
    assert d.bottleneck == Bottleneck.NOT_CONVERGING
    assert any("also held by a cap" in e for e in d.evidence)


def test_completed_only_with_auto_converge_is_not_converging() -> None:
    timeline, done = recorded(512 * MiB, 112e6, dirty_Bps=30e6, wss=64 * MiB, throttle=60)
    d = by(timeline, GBIT, completed=done)
    assert done and d.converged and d.bottleneck == Bottleneck.NOT_CONVERGING
    assert any("auto-converge throttling the guest's vCPUs by 60 %" in e for e in d.evidence)


def test_a_converging_run_aborted_in_its_first_pass_is_not_called_stuck() -> None:
    timeline, done = recorded(4096 * MiB, 112e6, dirty_Bps=5e6, abort_at=10)
    d = by(timeline, GBIT, completed=done)
    assert not done and d.bottleneck == Bottleneck.LINK


def test_sender_bound_single_stream_on_10g_tcg() -> None:
    timeline, done = recorded(1024 * MiB, 370e6, dirty_Bps=20e6, wss=64 * MiB, bin_s=0.1)
    d = by(timeline, 10 * GBIT, completed=done)
    assert d.bottleneck == Bottleneck.SENDER
    assert d.wire_rate_bps is not None and d.wire_rate_bps == pytest.approx(370e6 * FRAME * 8, rel=0.01)
    assert d.cause is not None and "single stream on a fast link" in d.cause
    assert by(timeline, 10 * GBIT, tls=True).cause == "TLS: every stream is encrypted on one core of the sending host"
    assert "compression" in (by(timeline, 10 * GBIT, compressed=True).cause or "")


def test_without_capture_bins_libvirts_rate_decides_and_wire_stays_null() -> None:
    timeline, done = recorded(1024 * MiB, 117e6)
    d = by(replace(timeline, wire_bins=()), GBIT, completed=done)
    assert d.wire_rate_bps is None and d.bottleneck == Bottleneck.LINK
    assert d.evidence[0].startswith("no capture bins: libvirt's data_processed grew at")


# --- JSON ---------------------------------------------------------------------------------------

KEYS = {
    "class",
    "converged",
    "iterations",
    "downtime_ms",
    "wire_rate_bps",
    "link_rate_bps",
    "cap_bps",
    "dirty_rate_bps",
    "evidence",
}


def test_json_shape_names_class_and_round_trips() -> None:
    timeline, done = recorded(512 * MiB, 112e6, dirty_Bps=150e6, wss=128 * MiB, abort_at=20)
    d = by(timeline, GBIT, completed=done)
    data = json.loads(json.dumps(to_dict(d)))
    assert set(data) >= KEYS
    assert set(data) - KEYS == {"cap_source", "transfer_rate_bps", "cause"}  # working data stays out
    assert "bottleneck" not in data and data["class"] == "not-converging"
    assert data["converged"] is False and isinstance(data["evidence"], list)
    assert all(isinstance(data[k], int) for k in ("wire_rate_bps", "link_rate_bps", "dirty_rate_bps"))
    assert data["cap_bps"] is None
    back = from_dict(Diagnosis, data)
    assert back == replace(d, streams=1, tls=False, compressed=False, remaining_bytes=None)


def test_json_name_rename_is_opt_in() -> None:
    @dataclass(frozen=True)
    class Renamed:
        kind: str = field(metadata={"json_name": "class"})
        n: int = 0

    assert to_dict(Renamed("x", 2)) == {"class": "x", "n": 2}
    assert from_dict(Renamed, {"class": "x", "n": 2}) == Renamed("x", 2)
    # Every other dataclass keeps its field names.
    assert set(to_dict(Finding("c", Severity.INFO, "m"))) == {"code", "severity", "message", "fix"}
    assert set(to_dict(LinkForecast("san0", 1, True, 2, 1.0, "t"))) == {
        "interface",
        "rate_bps",
        "converges",
        "iterations",
        "duration_s",
        "text",
        "usable_bps",
    }


# --- findings and their prescriptions ----------------------------------------------------------

CTX = prescribe.Context(Topology("node1", ()), "node2", "vm 01", "qemu+tcp://node2/system")
URI = "qemu+tcp://node2/system"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lead's wiring: the four codes in prescribe.FIXES."""
    for code, fix in FIXES.items():
        monkeypatch.setitem(prescribe.FIXES, code, fix)


def fixed(
    d: Diagnosis,
    faster: tuple[str, int] | None = None,
    faster_name: str | None = None,
    forecast: LinkForecast | None = None,
) -> Finding:
    (finding,) = prescribe.attach(findings(d, "vm 01", faster, faster_name, forecast), CTX)
    return finding


def test_link_bound_fix_names_the_faster_link(registered: None) -> None:
    timeline, done = recorded(1024 * MiB, 117e6 / FRAME)
    f = fixed(by(timeline, GBIT, completed=done), faster=("san0", 10 * GBIT), faster_name="node2-san")
    assert f.code == "bottleneck-link" and f.severity == Severity.WARNING
    assert "the path's 1 Gbit/s link is full" in f.message
    assert "verify-path 'vm 01' node2 --via san0" in f.fix
    assert f"virsh migrate --live --p2p 'vm 01' {URI} --migrateuri tcp://node2-san" in f.fix
    assert 'migration_host = "node2-san" in node2\'s /etc/libvirt/qemu.conf' in f.fix
    alone = fixed(by(timeline, GBIT, completed=done))
    assert alone.severity == Severity.INFO and "no faster link reaches node2" in alone.fix


def test_cap_fix_removes_the_cap_where_it_was_set(registered: None) -> None:
    timeline, done = recorded(256 * MiB, 20 * MiB, bin_s=0.1)
    f = fixed(by(timeline, GBIT, cap_in_effect(20, None), completed=done))
    assert f.code == "bottleneck-cap"
    assert "drop --bandwidth" in f.fix
    assert "virsh migrate-setspeed 'vm 01' 120" in f.fix  # ceil(1e9 / 8 / 2**20) = 120 MiB/s
    assert "pcs resource update 'vm 01' migration_speed=0" in f.fix


def test_not_converging_fix_lists_every_way_out(registered: None) -> None:
    timeline, done = recorded(512 * MiB, 112e6, dirty_Bps=150e6, wss=128 * MiB, abort_at=20)
    d = by(timeline, GBIT, completed=done)
    (san0,) = convergence.forecast(512 * MiB, 150e6, [("san0", 10 * GBIT)], ceiling_Bps=370e6)
    f = fixed(d, faster=("san0", 10 * GBIT), faster_name="node2-san", forecast=san0)
    assert f.code == "not-converging" and "did not converge" in f.message
    assert "verify-path 'vm 01' node2 --via san0" in f.fix and "about 3 iterations" in f.fix
    assert f"virsh migrate --live --p2p --auto-converge 'vm 01' {URI}" in f.fix
    # up to 166 MB left per pass at 112 MB/s: 1.48 s, rounded up to 1500 ms.
    assert "virsh migrate-setmaxdowntime 'vm 01' 1500" in f.fix
    assert f"virsh migrate --live --p2p --postcopy --postcopy-after-precopy 'vm 01' {URI}" in f.fix
    assert "a network failure (or either host failing) during post-copy loses the guest" in f.fix
    assert f"--timeout 120 --timeout-suspend 'vm 01' {URI}" in f.fix and "--timeout-postcopy" in f.fix


def test_sender_fix_adds_streams(registered: None) -> None:
    timeline, done = recorded(1024 * MiB, 370e6, bin_s=0.1)
    f = fixed(by(timeline, 10 * GBIT, completed=done))
    assert f.code == "bottleneck-sender"
    # 10 Gbit/s / 3.1 Gbit/s on the wire = 3.2 -> 4 streams.
    assert "verify-path 'vm 01' node2 --parallel 4" in f.fix
    assert f"virsh migrate --live --p2p --parallel --parallel-connections 4 'vm 01' {URI}" in f.fix
    tls = fixed(by(timeline, 10 * GBIT, tls=True, completed=done))
    assert "TLS encrypts each stream on one core" in tls.fix and "--parallel-connections 4" in tls.fix


def test_fixes_without_a_diagnosis_still_name_the_guest() -> None:
    # A finding whose facts are plain Facts (e.g. rebuilt from elsewhere) gets generic but real commands.
    assert "virsh migrate-setspeed 'vm 01' 8796093022207" in FIXES["bottleneck-cap"](Facts(), CTX)
    assert "virsh migrate-setmaxdowntime 'vm 01' MS" in FIXES["not-converging"](Facts(), CTX)
