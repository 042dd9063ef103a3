"""Charts with matplotlib's Agg backend: throughput per interface over time, bytes per interface."""

from __future__ import annotations

from pathlib import Path

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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if path.exists():
        path.chmod(0o600)
    return path
