"""Charts with matplotlib's Agg backend: throughput per interface over time, bytes per interface.

PNG or SVG, as PATH's suffix says (matplotlib's savefig picks the format from it). `render_compare`
puts two runs side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verifier.model import Report


def render(report: Report, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    expected = set(report.expected.interfaces)
    shown = [r for r in report.interfaces if r.bins]
    # A dense timeline from the first armed second: idle seconds are zeros, not gaps.
    span = max((b.second for r in shown for b in r.bins), default=0) + 2
    for r in shown:
        ys = [0.0] * span
        for b in r.bins:
            ys[b.second] = (b.bytes_tx + b.bytes_rx) * 8 / 1e6
        style = "-" if r.master is None else ":"
        width = 2.5 if r.name in expected else 1.5
        label = r.name + (f" ({r.role})" if r.role else "") + (" [expected]" if r.name in expected else "")
        ax_t.step(range(span), ys, style, where="post", linewidth=width, label=label)
    ax_t.set_xlabel("seconds since capture start")
    ax_t.set_ylabel("Mbit/s on the migration ports")
    ax_t.set_title("throughput per interface")
    if shown:
        ax_t.legend(fontsize=8)
    ax_t.grid(alpha=0.3)

    names = [r.name + (f"\n{r.role}" if r.role else "") for r in report.interfaces]
    values = [(r.bytes_tx + r.bytes_rx) / 1e6 for r in report.interfaces]
    colours = [
        "tab:green" if r.name in expected else ("tab:blue" if r.name in report.observed_path else "tab:gray")
        for r in report.interfaces
    ]
    ax_b.bar(names, values, color=colours)
    ax_b.set_ylabel("MB captured (tx + rx)")
    ax_b.set_title("bytes per interface")
    ax_b.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"{report.vm}: {report.source} -> {report.destination}, verdict {report.verdict.upper()}"
        f" via {' -> '.join(report.observed_path) or 'nothing seen'}"
    )
    return _save(fig, path)


def _pair(a: str, b: str) -> str:
    return a if a == b else f"{a} / {b}"


def _timeline(report: Report) -> list[float]:
    """Mbit/s per second on the observed interface, idle seconds as zeros."""
    r = next((i for i in report.interfaces if i.name == report.observed_interface), None)
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
            ax_t.step(range(len(ys)), ys, "-", where="post", color=colour, label=f"{run}: {report.observed_interface}")
    ax_t.set_xlabel("seconds since capture start")
    ax_t.set_ylabel("Mbit/s on the observed interface")
    ax_t.set_title("throughput over time")
    if ax_t.get_legend_handles_labels()[0]:
        ax_t.legend(fontsize=8)
    ax_t.grid(alpha=0.3)

    def via(r: Report) -> str:
        return " -> ".join(r.observed_path) or "nothing seen"

    fig.suptitle(
        f"{_pair(a.vm, b.vm)}: {_pair(a.source, b.source)} -> {_pair(a.destination, b.destination)}\n"
        f"A {a.verdict.upper()} via {via(a)}   vs   B {b.verdict.upper()} via {via(b)}"
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
