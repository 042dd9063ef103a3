"""Reports a person reads: headlines without placeholders, prose wrapped at the terminal's width,
the streams and the cap in the text, the return leg checked against --expect."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sample_diagnosed
import sample_reports as samples

from verifier import runs
from verifier.model import Expectation, Report, Verdict
from verifier.render import formats, html, markdown, text
from verifier.render.formats import Format

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.parent for p in (REPO / "captures" / "samples").glob("*/run.json"))


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (samples.lan_fail(), "FAIL: vm01 from node1 to node2: the stream took br0 -> eth0; 0.0% on expected san0"),
        (samples.watched(), "OBSERVED: watch on node1: the stream took san0"),
        (replace(samples.watched(), destination="node2"), "OBSERVED: watch on node1 (a migration to node2): "),
        (samples.analyzed(), "OBSERVED: pcap files: the stream took san0"),
        (replace(samples.analyzed(), vm="vm07"), "OBSERVED: pcap files (vm07): the stream took san0"),
        (
            replace(samples.watched(), verdict=Verdict.INCONCLUSIVE, observed_path=(), observed_interface=None),
            "INCONCLUSIVE: watch on node1: no migration stream seen",
        ),
    ],
    ids=["migrate", "watch", "watch-dest", "analyze", "analyze-vm", "nothing-seen"],
)
def test_headlines_say_what_is_known(report: Report, line: str) -> None:
    head = text.verdict_line(report)
    assert head.startswith(line)
    for placeholder in ("  ", " vm ", "offline", "-> pcap", " -> ;", "took nothing seen"):
        assert placeholder not in head, placeholder
    assert markdown.render(report).splitlines()[0] == f"# {head.split(':')[0]}: {head.split(': ')[1]}"
    page = html.render(report)
    assert "<dt>VM</dt><dd></dd>" not in page and "<dd>offline</dd>" not in page


def test_every_prose_line_fits_the_terminal_and_tables_stay_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "72")  # shutil.get_terminal_size reads it first
    for run_dir in SAMPLES:
        out = text.render(runs.load(run_dir))
        table_rows = [
            line for line in out.splitlines() if line.startswith("  ") and line.rstrip().endswith(("0", "drops"))
        ]
        assert any("interface  kind" in row for row in table_rows)
        long = [line for line in out.splitlines() if len(line) > 72 and line not in table_rows]
        # A word longer than the width (a path, a URI) may stay whole; nothing else passes 72.
        assert all(" " not in line.strip() or len(max(line.split(), key=len)) > 40 for line in long), long
        assert max(len(line) for line in out.splitlines()) < 120  # was 408


def test_a_fix_wraps_under_its_finding() -> None:
    out = text.render(runs.load(SAMPLES[0]), 80)
    fix = [line for line in out.splitlines() if line.startswith("      fix: on node2:")]
    assert fix, out
    after = out.splitlines()[out.splitlines().index(fix[0]) + 1]
    assert after.startswith("        ") and len(fix[0]) <= 80


def test_parallel_streams_and_the_cap_are_in_the_text_report() -> None:
    report = sample_diagnosed.diagnosed()
    out = text.render(report, 100)
    assert "streams: 3 connections: 1 main + 2 multifd (--parallel 2)" in out
    assert "bandwidth cap: 168 Mbit/s (--bandwidth 20 MiB/s), and it held the stream" in out
    assert "bottleneck: cap-bound" in out
    # A run recorded before the diagnosis: the cap from its options.
    older = replace(report, diagnosis=None)
    assert "bandwidth cap: 168 Mbit/s (--bandwidth 20 MiB/s)" in text.render(older, 100)
    for fmt in (Format.MARKDOWN, Format.HTML):
        page = formats.render(report, fmt, None)
        assert "1 main + 2 multifd (--parallel 2)" in page and "--bandwidth 20 MiB/s" in page


def test_the_return_leg_is_checked_against_the_expectation() -> None:
    report = samples.san_pass(with_return=True)
    assert report.return_leg is not None and report.return_leg.expected_share == 1.0
    out = text.render(report, 100)
    assert "return leg (received here): PASS: the stream took san0; 100.0% on expected san0" in out
    page = html.render(report)
    assert "PASS: the stream took san0; 100.0% on expected san0" in page
    md = markdown.render(report)
    assert "- PASS: the stream took san0; 100.0% on expected san0" in md
    # A leg the reconcile stage could not check says so rather than looking checked.
    older = replace(report, return_leg=replace(report.return_leg, verdict=Verdict.OBSERVED, expected_share=None))
    assert "return leg (received here): OBSERVED: the stream took san0; not checked against expected san0" in (
        text.render(older, 120)
    )
    unexpected = replace(report, expected=Expectation())
    assert "on expected" not in text.render(unexpected, 120).split("return leg")[1].splitlines()[0]


def test_foreign_flows_and_attribution_reach_markdown_and_html() -> None:
    report = sample_diagnosed.diagnosed()
    flow = "198.18.0.11:50412 -> 198.18.0.12:49153 on san0: 5.0 MB (iperf3 pid 4242)"
    assert flow in text.render(report, 120)
    md = markdown.render(report)
    assert "## Traffic on the migration ports" in md
    assert "counted: the connections its QEMU holds (socket ownership)" in md and f"- {flow}" in md
    page = html.render(report)
    assert "counted: the connections its QEMU holds (socket ownership)" in page
    assert html.e(flow) in page


def test_the_progress_line_shows_whether_it_converges() -> None:
    from verifier.model import JobProgress
    from verifier.render.progress import line

    job = JobProgress(
        data_total=300 << 20,
        data_processed=120 << 20,
        data_remaining=180 << 20,
        memory_bps=117e6,
        memory_iteration=4,
        memory_remaining=90 << 20,
        memory_dirty_rate=38400,
        memory_page_size=4096,
        downtime_ms=770,
    )
    text = line(job, 0.0, True)
    assert "pass 4" in text and "94.4 MB of memory left" in text and "dirtied 157.3 MB/s" in text
    assert "expected downtime 770 ms" in text
