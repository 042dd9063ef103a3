"""Charts with matplotlib's Agg backend: throughput per interface over time against each link's
capacity and any cap, the wire rate, passes over memory and memory remaining, bytes per chain.

PNG or SVG, as PATH's suffix says (matplotlib's savefig picks the format from it). The numbers are
verifier.render.chartdata's (tested without pixels); the title says the verdict and the bottleneck
at a glance. `render_compare` puts two runs side by side.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from verifier.figures import figures
from verifier.model import Leg, Report
from verifier.render import chartdata
from verifier.render.words import headline, leg_headline, subject

COLOURS = {"expected": "tab:green", "path": "tab:blue", "other": "tab:gray"}
LEVEL_STYLE = {"link": ("tab:gray", ":"), "path-link": ("tab:purple", "-."), "cap": ("tab:red", "--")}


def title(report: Report) -> str:
    """The verdict headline, and the bottleneck class when the run was diagnosed."""
    lines = textwrap.wrap(headline(report), 110)
    d = report.diagnosis
    fig = figures(report)
    rate = ""
    if fig.wire_rate_bps is not None:
        rate = f"wire rate {'at least ' if fig.wire_rate_lower_bound else ''}{fig.wire_rate_bps / 1e6:.0f} Mbit/s"
    lines.append(" \u00b7 ".join(p for p in (f"bottleneck: {d.bottleneck}" if d else "", rate) if p))
    return "\n".join(line for line in lines if line)


def warm() -> None:
    """Load matplotlib and draw one small throwaway figure (Agg, fonts, layout), so that the run's
    chart, drawn when the migration ends, pays only for itself (store.prepare calls this while
    the migration runs)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1], label="x")
    ax.set_title("warm")
    ax.legend()
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def figure(report: Report) -> Any:
    """The run chart as a matplotlib Figure: one row for the run, one more for a return leg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    legs: list[tuple[Report | Leg, str]] = [(report, "throughput per interface")]
    if report.return_leg is not None:
        legs.append((report.return_leg, "return leg: " + leg_headline(report.return_leg, report.expected)))
    fig, axes = plt.subplots(
        len(legs), 2, figsize=(13, 4.8 * len(legs)), gridspec_kw={"width_ratios": [2.2, 1]}, squeeze=False
    )
    for (run, name), (ax_t, ax_b) in zip(legs, axes, strict=True):
        _throughput(ax_t, report, run, name)
        _totals(ax_b, report, run)
    fig.suptitle(title(report))
    return fig


def render(report: Report, path: Path) -> Path:
    return _save(figure(report), path)


def _throughput(ax: Any, report: Report, run: Report | Leg, name: str) -> None:
    expected = report.expected.interfaces
    drawn = chartdata.series(run, expected)
    for s in drawn:
        colour = COLOURS["expected"] if s.expected else (COLOURS["path"] if s.on_path else None)
        ax.step(
            s.xs,
            s.mbit,
            ":" if s.member else "-",
            where="post",
            linewidth=2.5 if s.expected or s.on_path else 1.2,
            color=colour,
            label=s.label,
        )
    levels = chartdata.levels(report, run, drawn)
    # A 10 Gbit/s line over a 400 Mbit/s stream would flatten the stream to the axis: lines far
    # above everything else are named at the top edge instead of stretching the scale.
    near = [lv.mbit for lv in levels if lv.kind != "link"] + [y for s in drawn for y in s.mbit]
    top = max([1.0, *near]) * 1.25
    above = [lv for lv in levels if lv.kind == "link" and lv.mbit > 3 * max([1.0, *near])]
    for level in levels:
        if level in above:
            continue
        if level.kind == "wire":
            ax.hlines(level.mbit, level.start, level.end, colors="black", linestyles="--", label=level.label)
        else:
            colour, style = LEVEL_STYLE[level.kind]
            ax.axhline(level.mbit, color=colour, linestyle=style, linewidth=1.2, label=level.label)
    tl = run.timeline if run.timeline is not None and run.timeline.wire_bins else None
    for t, n in chartdata.iterations(tl):
        ax.axvline(t, color="tab:orange", alpha=0.5, linewidth=1)
        ax.annotate(f" pass {n}", (t, 0.02), xycoords=("data", "axes fraction"), fontsize=7, va="bottom", rotation=90)
    left = min([0.0, *(x for s in drawn for x in s.xs[:1])])
    ax.set_xlim(left=left)
    # Never a negative axis (an empty run): zero at the bottom, room above the highest line.
    ax.set_ylim(bottom=0, top=max([top, *(lv.mbit * 1.1 for lv in levels if lv not in above)]))
    for n, level in enumerate(above):
        ax.annotate(
            f"\u2191 {level.label} (above the scale)",
            (0.01, 0.98 - 0.06 * n),
            xycoords="axes fraction",
            fontsize=7,
            va="top",
            color="tab:gray",
        )
    ax.set_xlabel("seconds since the job started" if tl else "seconds since capture start")
    ax.set_ylabel("Mbit/s (1 s bins)")
    ax.set_title(textwrap.shorten(name, 90), fontsize=10)
    ax.grid(alpha=0.3)
    left_over = chartdata.remaining(tl)
    if left_over:
        ax_m = ax.twinx()
        ax_m.fill_between(
            [t for t, _ in left_over], [m for _, m in left_over], color="tab:gray", alpha=0.15, step="post"
        )
        ax_m.set_ylabel("memory remaining (MB)", color="tab:gray")
        ax_m.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")


def _totals(ax: Any, report: Report, run: Report | Leg) -> None:
    from verifier.render.units import human_bytes

    bars = chartdata.totals(run, report.expected.interfaces)
    names = [b[0] + ("\n[expected]" if b[2] == "expected" else "") for b in bars]
    drawn = ax.bar(names, [b[1] for b in bars], color=[COLOURS[b[2]] for b in bars])
    for bar, (_, mb, _role) in zip(drawn, bars, strict=True):
        ax.annotate(
            human_bytes(mb * 1e6), (bar.get_x() + bar.get_width() / 2, mb), ha="center", va="bottom", fontsize=7
        )
    ax.set_ylabel("MB captured (tx + rx), each chain once")
    ax.set_ylim(bottom=0, top=max([1.0, *(b[1] * 1.12 for b in bars)]))
    fig = figures(run)
    rate = (
        f", wire rate {'≥ ' if fig.wire_rate_lower_bound else ''}{fig.wire_rate_bps / 1e6:.0f} Mbit/s"
        if fig.wire_rate_bps
        else ""
    )
    ax.set_title(f"bytes per interface{rate}", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)


def _pair(a: str, b: str) -> str:
    return a if a == b else f"{a} / {b}"


def _timeline(report: Report) -> list[float]:
    """Mbit/s per second on the observed path's L3 interface (the wire rate's), idle seconds as zeros."""
    name = report.observed_path[0] if report.observed_path else report.observed_interface
    r = next((i for i in report.interfaces if i.name == name), None)
    if r is None or not r.bins:
        return []
    ys = [0.0] * (max(b.second for b in r.bins) + 2)
    for b in r.bins:
        ys[b.second] = (b.bytes_tx + b.bytes_rx) * 8 / 1e6
    return ys


def render_compare(a: Report, b: Report, path: Path) -> Path:
    """Runs A and B side by side: bytes per interface (grouped bars), each run's observed interface
    over time. Returns PATH (mode 0600)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from verifier.render.units import human_bytes

    fig, (ax_b, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1]})
    by_a = {r.name: r.bytes_tx + r.bytes_rx for r in a.interfaces}
    by_b = {r.name: r.bytes_tx + r.bytes_rx for r in b.interfaces}
    names = list(by_a) + [n for n in by_b if n not in by_a]
    xs = list(range(len(names)))
    width = 0.4
    for offset, values, run, colour in ((-width / 2, by_a, "A", "tab:blue"), (width / 2, by_b, "B", "tab:orange")):
        heights = [values.get(n, 0) / 1e6 for n in names]
        bars = ax_b.bar([x + offset for x in xs], heights, width, label=run, color=colour)
        for bar, n in zip(bars, names, strict=True):
            if n in values:
                ax_b.annotate(
                    human_bytes(values[n]),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax_b.set_xticks(xs, names, fontsize=8)
    ax_b.set_ylabel("MB captured (tx + rx)")
    ax_b.set_title("bytes per interface")
    ax_b.legend(fontsize=8)
    ax_b.grid(alpha=0.3, axis="y")

    for report, run, colour in ((a, "A", "tab:blue"), (b, "B", "tab:orange")):
        ys = _timeline(report)
        if ys:
            fig_r = figures(report)
            rate = ""
            if fig_r.wire_rate_bps is not None:
                bound = "at least " if fig_r.wire_rate_lower_bound else ""
                rate = f", wire rate {bound}{fig_r.wire_rate_bps / 1e6:.0f} Mbit/s"
            ax_t.step(
                range(len(ys)), ys, "-", where="post", color=colour, label=f"{run}: {report.observed_interface}{rate}"
            )
    ax_t.set_xlabel("seconds since capture start")
    ax_t.set_ylabel("Mbit/s on the observed interface (1 s bins)")
    ax_t.set_ylim(bottom=0, top=max(1.0, ax_t.get_ylim()[1]))
    ax_t.set_title("throughput over time")
    if ax_t.get_legend_handles_labels()[0]:
        ax_t.legend(fontsize=8)
    ax_t.grid(alpha=0.3)

    def via(r: Report) -> str:
        return " -> ".join(r.observed_path) or "nothing seen"

    fig.suptitle(
        f"{_pair(subject(a), subject(b))}\nA {a.verdict.upper()} via {via(a)}   vs   B {b.verdict.upper()} via {via(b)}"
    )
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    """PNG or SVG by the suffix; mode 0600 like every file of a run."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if path.exists():
        path.chmod(0o600)
    return path
