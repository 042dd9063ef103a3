"""The HTML report in a real browser: headless Chromium at a phone's 390 px and a desk's 1280 px.

No horizontal overflow (the page's scrollWidth stays within the viewport: wide tables scroll in
their own box), and the verdict banner and the path diagram are on screen. The screenshots are
kept beside the report in the test's directory, to be looked at.

Not a lab test, but CI must not pass by skipping it: without Chromium it skips, except under
VERIFY_PATH_REQUIRE_LAB=1, where it fails (Debian's package `chromium`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from html import escape, unescape
from pathlib import Path
from typing import Any

import pytest
import sample_diagnosed
import sample_reports as samples

from verifier import runs
from verifier.model import Report
from verifier.render import html

REPO = Path(__file__).resolve().parent.parent
LAN = REPO / "captures" / "samples" / "lan-default"
WIDTHS = (390, 1280)

# The report is measured inside an iframe exactly WIDTH px wide: its media queries see that width,
# whatever the smallest window the browser allows (headless Chromium's --dump-dom lays out at 500
# px at least). srcdoc keeps the frame same-origin for the probe; the report inside stays as it
# is, its Content-Security-Policy included. The result is written into the DOM for --dump-dom.
PROBE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body {{ margin: 0; }} iframe {{ border: 0; }}</style></head>
<body><iframe id="report" width="{width}" height="2000" srcdoc="{page}"></iframe>
<script>
document.getElementById('report').addEventListener('load', function () {{
  var doc = this.contentDocument, d = doc.documentElement;
  function box(sel) {{
    var el = doc.querySelector(sel);
    if (!el) {{ return null; }}
    var r = el.getBoundingClientRect(), cs = doc.defaultView.getComputedStyle(el);
    return {{left: r.left, right: r.right, width: r.width, height: r.height,
            shown: cs.display !== 'none' && cs.visibility !== 'hidden'}};
  }}
  var out = {{scrollWidth: d.scrollWidth, clientWidth: d.clientWidth,
             verdict: box('p.verdict'), diagram: box('svg.diagram'), chart: box('img')}};
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script></body></html>
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        problem = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("VERIFY_PATH_REQUIRE_LAB") == "1":
            pytest.fail(f"browser test cannot run: {problem}")
        pytest.skip(problem)
    return found


def _run(browser: str, tmp: Path, width: int, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{width}"
    try:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},2000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)  # a fresh profile per run; only the pictures stay


def _measure(browser: str, page: str, tmp: Path, width: int) -> dict[str, Any]:
    probe = tmp / f"probe-{width}.html"
    probe.write_text(PROBE.format(width=width, page=escape(page, quote=True)))
    proc = _run(
        browser,
        tmp,
        max(width, 800),
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no measurement from chromium: {proc.stderr[-800:]}"
    return dict(json.loads(unescape(found.group(1))))


def _png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return int(struct.unpack(">I", data[16:20])[0])


def _reports() -> list[tuple[str, Report, Path | None]]:
    return [
        ("lan-default", runs.load(LAN), LAN),  # a real failed run, with its stored chart
        (
            "diagnosed",
            replace(sample_diagnosed.diagnosed(), return_leg=samples.san_pass(with_return=True).return_leg),
            None,
        ),
        ("hostile", samples.hostile(), None),  # long unbroken user text
    ]


@pytest.mark.parametrize(("name", "report", "run_dir"), _reports(), ids=[r[0] for r in _reports()])
def test_the_html_report_fits_a_phone_and_a_desk(
    name: str, report: Report, run_dir: Path | None, tmp_path: Path
) -> None:
    browser = _chromium()
    page = html.render(report, run_dir)
    target = tmp_path / f"{name}.html"
    target.write_text(page)
    for width in WIDTHS:
        m = _measure(browser, page, tmp_path, width)
        viewport = m["clientWidth"]
        assert viewport <= width and viewport >= width - 20, m
        assert m["scrollWidth"] <= viewport, f"{name} at {width} px scrolls sideways: {m}"
        for part in ("verdict", "diagram"):
            box = m[part]
            assert box is not None and box["shown"], f"{part} missing at {width} px: {m}"
            assert box["width"] > 50 and box["height"] > 20 and box["left"] >= 0, f"{part} at {width} px: {box}"
            assert box["right"] <= viewport + 1, f"{part} overflows at {width} px: {box}"
        shot = tmp_path / f"{name}-{width}.png"
        proc = _run(browser, tmp_path, width, f"--screenshot={shot}", target.as_uri())
        assert shot.is_file(), proc.stderr[-800:]
        assert _png_width(shot) == width
