"""What the run chart draws, as plain numbers: pure, so tests check it without reading pixels.

Throughput is per one-second capture bin: the capture counts per second, so a migration of two
seconds has two points, and 100 ms bins (which would show a short migration's shape) would need
the capture to count them; it does not. The wire rate line is verifier.figures's, the same figure
the text report prints.

Time axis: with a timeline (runs since the diagnosis), seconds since the migration job started,
so the job's polls (iterations, memory remaining) line up with the bytes; the interfaces' capture
bins count from the capture's start, and are shifted so that the observed interface's first busy
second meets the timeline's first busy wire bin (the same bytes, counted twice). Without one,
seconds since the capture started.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.diagnose.units import MIB
from verifier.figures import Run, figures, wire_bins, wire_interface
from verifier.model import InterfaceReport, Report, Timeline


@dataclass(frozen=True)
class Series:
    name: str
    label: str
    xs: tuple[float, ...]
    mbit: tuple[float, ...]  # Mbit/s in each one-second bin
    expected: bool
    on_path: bool
    member: bool  # a bond member: part of its master's stream, drawn thinner


@dataclass(frozen=True)
class Level:
    """A horizontal line: a link's capacity, a cap, the wire rate."""

    mbit: float
    label: str
    kind: str  # link | path-link | cap | wire
    start: float | None = None  # the wire rate spans the flow only
    end: float | None = None


def _chains(interfaces: tuple[InterfaceReport, ...]) -> dict[str, list[str]]:
    names = {r.name for r in interfaces}
    ports: dict[str, list[str]] = {}
    for r in interfaces:
        if r.master and r.master in names:
            ports.setdefault(r.master, []).append(r.name)
    return ports


def heads(interfaces: tuple[InterfaceReport, ...]) -> list[InterfaceReport]:
    """The interfaces that are not a port or member of another watched one: a bridge and its port
    carry the same bytes, so totals count the head of each chain once."""
    names = {r.name for r in interfaces}
    return [r for r in interfaces if not (r.master and r.master in names)]


def _active(bins: tuple[tuple[float, int], ...]) -> list[float]:
    return sorted(start for start, n in bins if n > 0)


def shift(run: Run) -> float:
    """Seconds to add to capture bins to put them on the timeline's axis (0 without one)."""
    tl = run.timeline
    name = wire_interface(run)
    r = next((i for i in run.interfaces if i.name == name), None)
    if tl is None or not tl.wire_bins or r is None:
        return 0.0
    wire = _active(tl.wire_bins)
    capture = _active(tuple((float(b.second), b.bytes_tx + b.bytes_rx) for b in r.bins))
    return wire[0] - capture[0] if wire and capture else 0.0


def series(run: Run, expected: tuple[str, ...]) -> list[Series]:
    """One line per chain head with bytes, per bond member, and per expected interface (a flat
    zero when the stream missed it: a failed run still shows where it should have gone)."""
    ports = _chains(run.interfaces)
    by_name = {r.name: r for r in run.interfaces}
    offset = shift(run)
    # A line with no bins (an expected link the stream missed) spans the others' seconds.
    longest = max((b.second for r in run.interfaces for b in r.bins), default=0) + 2
    out = []
    for r in run.interfaces:
        master = by_name.get(r.master or "")
        member = master is not None and master.kind == "bond"
        head = master is None
        if not (r.bins and (head or member)) and r.name not in expected:
            continue
        span = max((b.second for b in r.bins), default=0) + 2 if r.bins else longest
        ys = [0.0] * span
        for b in r.bins:
            ys[b.second] = (b.bytes_tx + b.bytes_rx) * 8 / 1e6
        via = [p for p in ports.get(r.name, []) if by_name[p].kind != "bond"]
        label = (
            r.name
            + (f" via {', '.join(via)}" if via and master is None and by_name[r.name].kind == "bridge" else "")
            + (f" ({r.role})" if r.role else "")
            + (" [expected]" if r.name in expected else "")
        )
        xs = tuple(float(s) + offset for s in range(span))
        out.append(Series(r.name, label, xs, tuple(ys), r.name in expected, r.name in run.observed_path, member))
    return out


def levels(report: Report, run: Run, drawn: list[Series]) -> list[Level]:
    """Capacity lines (one per distinct speed), the path's slowest link, the cap, the wire rate.
    RUN is REPORT or its return leg; the cap and the diagnosis are the outbound run's."""
    fig = figures(run)
    tl, _ = wire_bins(run)
    out = []
    speeds: dict[int, list[str]] = {}
    for s in drawn:
        r = next(i for i in run.interfaces if i.name == s.name)
        if r.speed_mbps:
            speeds.setdefault(r.speed_mbps, []).append(r.name)
    for mbps, names in sorted(speeds.items()):
        out.append(Level(float(mbps), f"link {mbps} Mbit/s: {', '.join(names)}", "link"))
    d = report.diagnosis
    if run is report and d is not None and d.link_rate_bps and d.link_rate_bps / 1e6 not in speeds:
        out.append(
            Level(d.link_rate_bps / 1e6, f"slowest link on the path {d.link_rate_bps / 1e6:.0f} Mbit/s", "path-link")
        )
    cap = cap_mbit(report) if run is report else None
    if cap is not None:
        out.append(Level(cap[0], f"cap {cap[0]:.0f} Mbit/s ({cap[1]})", "cap"))
    if fig.wire_rate_bps is not None:
        active = _active(tl.wire_bins)
        delta = 0.0 if fig.wire_source == "timeline" else shift(run)
        word = "at least " if fig.wire_rate_lower_bound else ""
        out.append(
            Level(
                fig.wire_rate_bps / 1e6,
                f"wire rate {word}{fig.wire_rate_bps / 1e6:.0f} Mbit/s",
                "wire",
                active[0] + delta,
                active[-1] + tl.bin_s + delta,
            )
        )
    return out


def cap_mbit(report: Report) -> tuple[float, str] | None:
    d = report.diagnosis
    if d is not None and d.cap_bps:
        return d.cap_bps / 1e6, d.cap_source or "cap"
    bandwidth = report.options.get("bandwidth")
    if bandwidth:
        return float(bandwidth) * MIB * 8 / 1e6, f"--bandwidth {bandwidth} MiB/s"
    return None


def iterations(tl: Timeline | None) -> list[tuple[float, int]]:
    """(t, pass number) where a new pass over memory began, from the job's polls."""
    out: list[tuple[float, int]] = []
    last = None
    for s in tl.samples if tl else ():
        it = s.progress.memory_iteration
        if it is not None and last is not None and it > last:
            out.append((s.t, it))
        last = it if it is not None else last
    return out


def remaining(tl: Timeline | None) -> list[tuple[float, float]]:
    """(t, MB of memory still to send) per poll."""
    return [
        (s.t, s.progress.memory_remaining / 1e6)
        for s in (tl.samples if tl else ())
        if s.progress.memory_remaining is not None
    ]


def totals(run: Run, expected: tuple[str, ...]) -> list[tuple[str, float, str]]:
    """(label, MB, colour role) per chain head: expected | path | other."""
    ports = _chains(run.interfaces)
    out = []
    for r in heads(run.interfaces):
        below = ports.get(r.name, [])
        label = r.name + (f"\n({', '.join(below)})" if below else "") + (f"\n{r.role}" if r.role else "")
        chain = {r.name, *below}
        role = "expected" if chain & set(expected) else ("path" if chain & set(run.observed_path) else "other")
        out.append((label, (r.bytes_tx + r.bytes_rx) / 1e6, role))
    return out
