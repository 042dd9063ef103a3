"""Every output format, rendered from a stored run: text, Markdown, HTML, JSON, JUnit XML."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sample_reports as samples

from verifier import runs
from verifier.model import Report, from_dict
from verifier.render import formats, html, junit
from verifier.render.formats import Format

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def stored_fail(tmp_path: Path) -> tuple[Report, Path]:
    run_dir = samples.stored(samples.lan_fail(), tmp_path)
    return runs.load(run_dir), run_dir


def test_the_mapping_covers_every_format() -> None:
    assert set(formats.RENDERERS) == set(Format)
    assert set(formats.SUFFIXES) == set(Format)
    assert formats.parse("JUnit") is Format.JUNIT
    with pytest.raises(ValueError, match="markdown"):
        formats.parse("pdf")


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_renders_a_stored_run(fmt: Format, stored_fail: tuple[Report, Path]) -> None:
    report, run_dir = stored_fail
    out = formats.render(report, fmt, run_dir)
    assert isinstance(out, str) and out.strip()
    if fmt is not Format.JSON:
        assert "FAIL" in out or 'failures="1"' in out


@pytest.mark.parametrize(
    "make", [samples.lan_fail, samples.san_pass, samples.inconclusive, samples.observed, samples.hostile]
)
def test_json_round_trips_through_from_dict(make: object, tmp_path: Path) -> None:
    assert callable(make)
    report = runs.load(samples.stored(make(), tmp_path))
    out = formats.render(report, Format.JSON, Path(report.run_dir or "."))
    assert from_dict(Report, json.loads(out)) == report


def test_json_round_trips_a_return_leg() -> None:
    report = samples.san_pass(with_return=True)
    assert report.return_leg is not None
    assert from_dict(Report, json.loads(formats.render(report, Format.JSON, None))) == report


# --- JUnit ------------------------------------------------------------------------------------


def _junit(report: Report) -> ET.Element:
    return ET.fromstring(formats.render(report, Format.JUNIT, None))


def _counts(el: ET.Element) -> tuple[int, int, int, int]:
    tests, failures, errors, skipped = (int(el.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped"))
    return tests, failures, errors, skipped


def _actual(suite: ET.Element) -> tuple[int, int, int, int]:
    cases = suite.findall("testcase")
    return (
        len(cases),
        sum(c.find("failure") is not None for c in cases),
        sum(c.find("error") is not None for c in cases),
        sum(c.find("skipped") is not None for c in cases),
    )


def _check_counts(root: ET.Element) -> ET.Element:
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "verify-path"
    assert _counts(suite) == _actual(suite) == _counts(root)
    return suite


def test_junit_pass_run_has_one_passing_case_per_expectation() -> None:
    suite = _check_counts(_junit(samples.san_pass()))
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["expect interface san0", "expect network 198.18.0.0/24", "stream observed", "coverage"]
    assert _counts(suite) == (4, 0, 0, 0)


def test_junit_fail_run_fails_the_expectation_naming_path_and_share() -> None:
    suite = _check_counts(_junit(samples.lan_fail()))
    assert _counts(suite) == (3, 1, 0, 0)
    case = suite.find("testcase[@name='expect interface san0']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "br0 -> eth0" in message and "100.0% on br0" in message and "0.0% on the expected link" in message
    assert "--via san0" in (failure.text or "")


def test_junit_inconclusive_run_is_an_error_and_a_coverage_failure() -> None:
    suite = _check_counts(_junit(samples.inconclusive()))
    assert _counts(suite) == (3, 1, 1, 0)
    expect = suite.find("testcase[@name='expect interface san0']")
    assert expect is not None and expect.find("error") is not None
    coverage = suite.find("testcase[@name='coverage']")
    assert coverage is not None
    failure = coverage.find("failure")
    assert failure is not None and "50.0%" in failure.get("message", "")


def test_junit_without_expectation_has_one_path_observed_case() -> None:
    suite = _check_counts(_junit(samples.observed()))
    assert [c.get("name") for c in suite.findall("testcase")] == ["path observed", "stream observed", "coverage"]
    assert _counts(suite) == (3, 0, 0, 0)


def test_junit_escapes_user_text() -> None:
    root = _junit(samples.hostile())  # parses: nothing user-controlled broke the XML
    _check_counts(root)
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["vm"] == "vm<b>01</b>"


def test_junit_watch_mode_skips_coverage() -> None:
    from dataclasses import replace

    from verifier.model import Coverage

    report = replace(samples.observed(), mode="watch", coverage=Coverage(None, 5, None, False, "no data_processed"))
    suite = _check_counts(_junit(report))
    assert _counts(suite) == (3, 0, 0, 1)
    assert junit.cases(report)[-1].outcome == "skipped"


# --- HTML -------------------------------------------------------------------------------------

EXTERNAL = [
    re.compile(r"https?://", re.I),
    re.compile(r"""<[^>]*\bsrc\s*=\s*(?!["']?data:)""", re.I),  # in a tag: escaped text has no "<"
    re.compile(r"<link\b", re.I),
    re.compile(r"<script\b[^>]*\bsrc", re.I),
    re.compile(r"url\(", re.I),
    re.compile(r"<[^>]*\bhref\s*=", re.I),
]


@pytest.mark.parametrize("make", [samples.lan_fail, samples.hostile, samples.inconclusive])
def test_html_has_no_external_reference(make: object, tmp_path: Path) -> None:
    assert callable(make)
    run_dir = samples.stored(make(), tmp_path)
    page = formats.render(runs.load(run_dir), Format.HTML, run_dir)
    for pattern in EXTERNAL:
        assert not pattern.search(page), pattern.pattern
    assert "<script" not in page.lower()


def test_html_escapes_user_text() -> None:
    page = html.render(samples.hostile())
    assert "vm&lt;b&gt;01&lt;/b&gt;" in page
    assert "&lt;script src=&quot;https:&#47;&#47;evil.example/x.js&quot;&gt;" in page  # shown, never loaded
    assert "<b>01</b>" not in page


def test_html_embeds_the_stored_chart(stored_fail: tuple[Report, Path]) -> None:
    report, run_dir = stored_fail
    page = formats.render(report, Format.HTML, run_dir)
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1
    assert base64.b64decode(uris[0]) == (run_dir / "chart.png").read_bytes()


def test_html_renders_a_chart_when_the_run_has_none() -> None:
    page = formats.render(samples.san_pass(with_return=True), Format.HTML, None)
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 and base64.b64decode(uris[0]).startswith(PNG_MAGIC)
    assert "Return leg" in page


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_has_the_table_the_chain_the_fix_and_the_chart_link(stored_fail: tuple[Report, Path]) -> None:
    report, run_dir = stored_fail
    md = formats.render(report, Format.MARKDOWN, run_dir)
    assert md.startswith("# FAIL: vm01")
    assert "| interface | kind | master | role | tx | rx | packets | share | drops |" in md
    assert "| br0 | bridge | - | management | 105.0 MB | 2.5 MB |" in md
    assert "| eth0 | veth | br0 | - |" in md
    assert "1. **migration URI**:" in md and "(/etc/hosts: 203.0.113.12 node2)" in md
    assert "wrong-path" in md and "fix: verify-path vm01 node2 --via san0" in md
    assert "![throughput and bytes per interface](chart.png)" in md


def test_markdown_links_no_chart_when_there_is_none(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.san_pass(with_return=True), tmp_path, chart=False)
    md = formats.render(runs.load(run_dir), Format.MARKDOWN, run_dir)
    assert "chart.png" not in md
    assert "## Return leg" in md


def test_markdown_escapes_table_and_html() -> None:
    md = formats.render(samples.hostile(), Format.MARKDOWN, None)
    assert "<script" not in md and "<b>" not in md
    assert "\\|\\*\\*" in md


def test_the_external_reference_patterns_catch_real_references() -> None:
    for bad in ('<img src="x.png">', "<link rel=stylesheet>", '<script src="a.js">', "see https://x", '<a href="#">'):
        assert any(p.search(bad) for p in EXTERNAL), bad
    assert not any(p.search('<img alt="c" src="data:image/png;base64,AAAA">') for p in EXTERNAL)


# --- the real runs recorded in the lab (captures/samples/, committed) -------------------------

SAMPLES = sorted(p.parent for p in (Path(__file__).resolve().parent.parent / "captures" / "samples").glob("*/run.json"))


@pytest.mark.skipif(not SAMPLES, reason="no lab samples in captures/samples/ yet")
@pytest.mark.parametrize("run_dir", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_format_renders_the_lab_samples(run_dir: Path) -> None:
    report = runs.load(run_dir)
    for fmt in Format:
        assert formats.render(report, fmt, run_dir).strip()
    assert from_dict(Report, json.loads(formats.render(report, Format.JSON, run_dir))) == report
    _check_counts(_junit(report))
    page = formats.render(report, Format.HTML, run_dir)
    assert not any(p.search(page) for p in EXTERNAL)
    assert base64.b64encode((run_dir / "chart.png").read_bytes()).decode() in page
    assert "![throughput and bytes per interface](chart.png)" in formats.render(report, Format.MARKDOWN, run_dir)
