"""The HTML report draws the path (inline SVG, no script, no external asset) and fits a phone; a
Markdown report written elsewhere with -o keeps a working chart link."""

from __future__ import annotations

import io
import re
from pathlib import Path

import sample_reports as samples

from verifier import runs
from verifier.cli import main
from verifier.model import Expectation, InterfaceReport
from verifier.render import diagram, html

LAN = Path(__file__).resolve().parent.parent / "captures" / "samples" / "lan-default"


def _svg(page: str) -> str:
    found = re.search(r'<svg class="diagram".*?</svg>', page, re.S)
    assert found, "no path diagram"
    return found.group(0)


def _lines(svg: str, cls: str) -> list[tuple[int, int, int, int]]:
    return [
        tuple(int(v) for v in m.groups())  # type: ignore[misc]
        for m in re.finditer(rf'<line class="{cls}" x1="(\d+)" y1="(\d+)" x2="(\d+)" y2="(\d+)"', svg)
    ]


def test_the_path_is_drawn_with_the_taken_and_the_expected_chains() -> None:
    report = runs.load(LAN)
    svg = _svg(html.render(report, LAN))
    assert "<script" not in svg and "href" not in svg and "http" not in svg
    for name in ("node1", "br0", "eth0", "ring1", "san0", "san1", "node2"):
        assert f">{name}</text>" in svg, name
    # Taken: node1 -> br0 -> eth0 -> node2, red in a failed run; expected: node1 -> san0 -> node2.
    assert len(_lines(svg, "taken")) == 3 and 'stroke="#c62828"' in svg
    assert len(_lines(svg, "expected")) == 2
    assert 'aria-label="path diagram: node1 to node2, took br0 -&gt; eth0"' in svg


def test_a_pass_draws_the_taken_path_as_expected() -> None:
    svg = _svg(html.render(samples.san_pass()))
    assert len(_lines(svg, "taken")) == 2 and not _lines(svg, "expected")
    assert "taken, as expected" in svg and "(198.18.0.0/24)" in svg


def test_a_bond_draws_one_row_per_member() -> None:
    ifaces = (
        InterfaceReport("bond0", "bond", None, None, 0, 0, 0, 0, 0.0, 0),
        InterfaceReport("eno1", "physical", "bond0", None, 0, 0, 0, 0, 0.0, 0),
        InterfaceReport("eno2", "physical", "bond0", None, 0, 0, 0, 0, 0.0, 0),
    )
    svg = diagram.render(ifaces, ("bond0", "eno2"), Expectation(interfaces=("bond0",)), "node1", "node2")
    # node1 -> bond0, bond0 -> eno2, eno2 -> node2 taken; the whole bond expected.
    assert len(_lines(svg, "taken")) == 3 and len(_lines(svg, "other")) == 0
    assert len(_lines(svg, "expected")) == 2  # bond0 -> eno1 -> node2: expected, not taken
    assert svg.count("<rect") == 5


def test_user_text_in_the_diagram_is_escaped() -> None:
    page = html.render(samples.hostile())
    svg = _svg(page)
    assert "<b>" not in svg


def test_the_page_is_made_for_a_phone_too() -> None:
    page = html.render(samples.lan_fail())
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width: 40em)" in page
    # Every table scrolls in its own box, so the page itself never scrolls sideways.
    assert page.count("<table>") == page.count('<div class="scroll"><table>') > 0


def test_markdown_written_elsewhere_copies_its_chart(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.lan_fail(), tmp_path / "captures")
    out_dir = tmp_path / "tickets"
    out_dir.mkdir()
    target = out_dir / "vm01.md"
    stdout = io.StringIO()
    code = main(["report", str(run_dir), "--format", "markdown", "-o", str(target)], env={}, stdout=stdout)
    assert code == 0
    md = target.read_text()
    assert "![throughput and bytes per interface](vm01.chart.png)" in md
    copy = out_dir / "vm01.chart.png"
    assert copy.read_bytes() == (run_dir / "chart.png").read_bytes()
    assert copy.stat().st_mode & 0o777 == 0o600
    # In the run directory itself the run's own chart is linked, nothing copied.
    inside = run_dir / "report.md"
    assert main(["report", str(run_dir), "--format", "markdown", "-o", str(inside)], env={}, stdout=stdout) == 0
    assert "](chart.png)" in inside.read_text() and not (run_dir / "report.chart.png").exists()


def test_markdown_of_a_run_without_a_chart_renders_one_beside_it(tmp_path: Path) -> None:
    run_dir = samples.stored(samples.san_pass(), tmp_path / "captures", chart=False)
    target = tmp_path / "r.md"
    assert main(["report", str(run_dir), "--format", "markdown", "-o", str(target)], env={}, stdout=io.StringIO()) == 0
    assert (tmp_path / "r.chart.png").read_bytes().startswith(b"\x89PNG")
    assert "](r.chart.png)" in target.read_text()
