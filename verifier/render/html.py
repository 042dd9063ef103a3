"""A run as one self-contained HTML file that opens offline, on a desk or on a phone.

Inline CSS, the path drawn as inline SVG, the chart embedded as a base64 data:image/png URI, no
external reference of any kind (no links, scripts, fonts or remote images; a
Content-Security-Policy forbids loading any), and every piece of user-controlled text
HTML-escaped (even "scheme://" in a message is written as character references, so the file
holds no literal URL at all). Wide tables scroll inside their own box, so the page itself never
scrolls sideways at a phone's 390 px.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from verifier.model import Coverage, Expectation, InterfaceReport, Leg, MigrationResult, Report
from verifier.render import diagram
from verifier.render.text import VERDICT_WORDS, foreign_text, verdict_line
from verifier.render.units import human_bytes
from verifier.render.words import (
    cap_text,
    diagnosis_lines,
    known_labels,
    leg_headline,
    run_figure_lines,
    streams_text,
    subject,
)

CHART = "chart.png"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em;
  overflow-wrap: anywhere; }
h1 { font-size: 1.5em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: 600; }
.pass, .observed { background: #e3f4e3; border-left: 6px solid #2e7d32; }
.fail { background: #fde7e7; border-left: 6px solid #c62828; }
.inconclusive, .other { background: #fff4dd; border-left: 6px solid #ef8f00; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0; overflow-wrap: normal; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.on-path td { font-weight: 600; }
dt { font-weight: 600; float: left; clear: left; width: 11em; }
dd { margin-left: 12em; }
.error { color: #c62828; } .warning { color: #ef8f00; } .info { color: #1565c0; }
.fix { color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
img, svg.diagram { max-width: 100%; height: auto; display: block; }
@media (max-width: 40em) {
  body { margin: 0.5em auto; padding: 0 0.6em; }
  h1 { font-size: 1.2em; }
  dt { float: none; width: auto; }
  dd { margin-left: 1em; }
}
"""


def e(text: object) -> str:
    """TEXT escaped; "://" as character references too (it reads the same), so that not even a URL in
    a message leaves a literal scheme://host in the file."""
    return html.escape(str(text), quote=True).replace("://", ":&#47;&#47;")


def _path(path: tuple[str, ...]) -> str:
    return e(" -> ".join(path)) if path else "nothing seen"


def _dl(pairs: list[tuple[str, str]]) -> str:
    """A definition list; values are already HTML."""
    return "<dl>\n" + "\n".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "\n</dl>\n"


def _migration(m: MigrationResult, cov: Coverage, mode: str, figures: list[str]) -> list[tuple[str, str]]:
    pairs = []
    if mode == "migrate":
        pairs.append(("migration", e(m.status)))
        pairs.append(("migrate URI", e(m.migrate_uri or "(libvirt default: the destination hands out its address)")))
        if m.dest_uri:
            pairs.append(("destination URI", e(m.dest_uri)))
        if m.downtime_ms is not None:
            pairs.append(("downtime", f"{m.downtime_ms} ms"))
        if m.error:
            pairs.append(("error", e(m.error)))
    else:
        pairs.append(("mode", e(mode) + (f", {m.duration_s:.1f} s watched" if m.duration_s else "")))
    for line in figures:
        key, _, value = line.partition(": ")
        pairs.append((key, e(value)))
    if cov.ratio is not None:
        pairs.append(
            (
                "coverage",
                f"{cov.ratio:.1%} of data_processed seen as TCP payload" + ("" if cov.ok else f" - {e(cov.reason)}"),
            )
        )
    elif cov.reason:
        pairs.append(("coverage", "unknown - " + e(cov.reason)))
    return pairs


def interface_table(interfaces: tuple[InterfaceReport, ...], on_path: tuple[str, ...] = ()) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("interface", "kind", "master", "role", "tx", "rx", "packets", "share", "drops")
    )
    rows = []
    for r in interfaces:
        cls = ' class="on-path"' if r.name in on_path else ""
        rows.append(
            f"<tr{cls}><td>{e(r.name)}</td><td>{e(r.kind)}</td><td>{e(r.master or '-')}</td>"
            f'<td>{e(r.role or "-")}</td><td class="n">{human_bytes(r.bytes_tx)}</td>'
            f'<td class="n">{human_bytes(r.bytes_rx)}</td><td class="n">{r.packets}</td>'
            f'<td class="n">{r.share:.1%}</td><td class="n">{r.drops}</td></tr>'
        )
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table></div>\n"
    )


def _reasons(report: Report) -> str:
    pred = report.prediction
    items = []
    for reason in pred.reasons:
        ev = f" <code>{e(reason.evidence)}</code>" if reason.evidence else ""
        items.append(f"<li><b>{e(reason.step)}</b>: {e(reason.detail)}{ev}</li>")
    out = "<ol>\n" + "\n".join(items) + "\n</ol>\n" if items else "<p>no explanation recorded</p>\n"
    if pred.interface:
        out += f"<p>predicted {_path(pred.path)}; observed {_path(report.observed_path)}</p>\n"
    return out


def path_diagram(report: Report) -> str:
    """The path explanation drawn: source, the watched chains, destination; taken and expected."""
    return diagram.render(
        report.interfaces,
        report.observed_path,
        report.expected,
        report.source if report.mode != "analyze" else "pcap files",
        dict(known_labels(report)).get("destination", report.prediction.target_host or ""),
        failed=report.verdict == "fail",
    )


def _findings(report: Report) -> str:
    if not report.findings:
        return "<p>no findings</p>\n"
    items = []
    for f in report.findings:
        sev = f.severity if f.severity in ("error", "warning", "info") else "info"
        fix = f'<br><span class="fix">fix: {e(f.fix)}</span>' if f.fix else ""
        items.append(f'<li><span class="{sev}">[{e(f.severity)}]</span> <b>{e(f.code)}</b>: {e(f.message)}{fix}</li>')
    return "<ul>\n" + "\n".join(items) + "\n</ul>\n"


def _diagnosis(report: Report) -> str:
    lines = diagnosis_lines(report)
    if not lines:
        return ""
    items = "".join(f"<li>{e(ev)}</li>" for ev in lines[1:])
    return f"<p><b>{e(lines[0])}</b></p>\n" + (f"<ul>{items}</ul>\n" if items else "")


def _foreign(report: Report) -> str:
    counted, flows = foreign_text(report)
    if counted is None:
        return ""
    out = f"<p>counted: {e(counted)}</p>\n"
    if flows:
        out += "<p>other traffic on the migration ports (not counted in the verdict):</p>\n<ul>\n"
        out += "\n".join(f"<li>{e(flow)}</li>" for flow in flows) + "\n</ul>\n"
    return out


def _leg(leg: Leg, expected: Expectation) -> str:
    cls = leg.verdict if leg.verdict in ("pass", "fail", "inconclusive", "observed") else "other"
    pairs = [("observed path", _path(leg.observed_path))]
    pairs += _migration(leg.migration, leg.coverage, "migrate", run_figure_lines(leg))
    return (
        f'<p class="verdict {cls}">{e(leg_headline(leg, expected))}</p>\n'
        + _dl(pairs)
        + interface_table(leg.interfaces, leg.observed_path)
    )


def chart_png(report: Report, run_dir: Path | None) -> bytes:
    """RUN_DIR's chart.png, or the chart rendered afresh when there is none."""
    if run_dir is not None and (run_dir / CHART).is_file():
        return (run_dir / CHART).read_bytes()
    from verifier.render import chart

    with tempfile.TemporaryDirectory() as tmp:
        return chart.render(report, Path(tmp) / CHART).read_bytes()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _facts(report: Report) -> list[tuple[str, str]]:
    facts = [(k, e(v)) for k, v in known_labels(report)]
    want = report.expected.interfaces + report.expected.networks
    if want:
        share = f" ({report.expected_share:.1%} of the stream there)" if report.expected_share is not None else ""
        facts.append(("expected", e(", ".join(want)) + share))
    facts.append(("observed path", _path(report.observed_path)))
    if report.prediction.path:
        facts.append(("predicted path", _path(report.prediction.path)))
    facts += _migration(report.migration, report.coverage, report.mode, run_figure_lines(report))
    streams, cap = streams_text(report), cap_text(report)
    if streams:
        facts.append(("streams", e(streams)))
    if cap:
        facts.append(("bandwidth cap", e(cap)))
    if report.run_dir:
        facts.append(("run", e(report.run_dir)))
    return facts


def render(report: Report, run_dir: Path | None = None) -> str:
    """The whole report as one HTML document."""
    word = VERDICT_WORDS.get(report.verdict, report.verdict.upper())
    cls = report.verdict if report.verdict in ("pass", "fail", "inconclusive", "observed") else "other"
    body = [
        f"<h1>{e(word)}: {e(subject(report))}</h1>",
        f'<p class="verdict {cls}">{e(verdict_line(report))}</p>',
        "<h2>Migration</h2>",
        _dl(_facts(report)),
        "<h2>Interfaces</h2>",
        interface_table(report.interfaces, report.observed_path),
        "<h2>Path explanation</h2>",
        path_diagram(report),
        _reasons(report),
    ]
    why = _diagnosis(report)
    if why:
        body += ["<h2>Why it went this fast</h2>", why]
    others = _foreign(report)
    if others:
        body += ["<h2>Traffic on the migration ports</h2>", others]
    body += ["<h2>Findings</h2>", _findings(report)]
    if report.return_leg is not None:
        body += ["<h2>Return leg (received here)</h2>", _leg(report.return_leg, report.expected)]
    body += [
        "<h2>Chart</h2>",
        f'<img alt="throughput and bytes per interface" src="{data_uri(chart_png(report, run_dir))}">',
    ]
    title = f"verify-path {word}: {subject(report)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
