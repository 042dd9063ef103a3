"""A pre-copy model of a live migration: will it converge over this link, in how many passes, how long.

QEMU's pre-copy sends all of guest memory once, then, pass after pass, what the guest dirtied
during the previous pass. Before each pass it compares what is left with what the link can send
within the allowed downtime (`downtime-limit`, 300 ms by default; `virsh migrate-setmaxdowntime`):
once the remainder fits, it pauses the guest and copies the rest (the stop-and-copy). So with
memory M, dirty rate D and usable rate R, pass k sends r(k-1) in t(k) = r(k-1) / R and leaves
r(k) = min(M, D * t(k)) = M * (D/R)**k: it converges when D < R, and never when D >= R (each pass
leaves at least as much as it sent). The remainder is capped at M: a guest cannot dirty more
memory than it has (its real working set may be smaller, which only helps).

The usable rate of a link is what one migration gets from it as payload: TCP over Ethernet at
MTU 1500 carries 1448 payload bytes (timestamps on) in 1538 bytes of wire time (preamble,
inter-frame gap, Ethernet header and FCS, IP and TCP headers): 94 % of the line rate, so 1 Gbit/s
gives about 117 MB/s. A measured ceiling (a cap, or the sender's own limit) lowers it further.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from verifier.diagnose.units import bytes_rate, link_text, seconds, size
from verifier.model import LinkForecast

PAYLOAD_SHARE = 1448 / 1538  # TCP payload per frame's wire time at MTU 1500 (jumbo frames do ~5 % better)
DOWNTIME_S = 0.3  # QEMU's default downtime-limit (300 ms)
MAX_ITERATIONS = 30


def usable_Bps(rate_bps: float, ceiling_Bps: float | None = None) -> float:
    """Payload bytes/s one migration gets from a link of RATE_BPS, under an optional measured ceiling."""
    usable = rate_bps * PAYLOAD_SHARE / 8
    return min(usable, ceiling_Bps) if ceiling_Bps else usable


@dataclass(frozen=True)
class PreCopy:
    """The model's run: passes over memory (the stop-and-copy included) and their sizes."""

    converges: bool
    iterations: int | None  # comparable to libvirt's memory_iteration at completion
    duration_s: float | None
    passes: tuple[float, ...]  # bytes sent in each pass, the stop-and-copy last


def precopy(
    memory_bytes: float,
    dirty_Bps: float,
    usable: float,
    max_downtime_s: float = DOWNTIME_S,
    max_iterations: int = MAX_ITERATIONS,
) -> PreCopy:
    """Run the pre-copy model (see the module docstring) for one link's usable rate in bytes/s."""
    if usable <= 0:
        return PreCopy(False, None, None, ())
    threshold = usable * max_downtime_s
    remaining = float(memory_bytes)
    elapsed = 0.0
    sent: list[float] = []
    while len(sent) < max_iterations:
        if remaining <= threshold:
            # Small enough to copy within the downtime limit: the guest pauses, the rest goes.
            sent.append(remaining)
            return PreCopy(True, len(sent), elapsed + remaining / usable, tuple(sent))
        if sent and dirty_Bps >= usable:
            break  # each pass leaves at least what it sent: no later pass can do better
        took = remaining / usable
        elapsed += took
        sent.append(remaining)
        remaining = min(float(memory_bytes), dirty_Bps * took)
    return PreCopy(False, None, None, tuple(sent))


def forecast(
    memory_bytes: int,
    dirty_rate_Bps: float,
    links: Sequence[tuple[str, int]],
    max_downtime_s: float = DOWNTIME_S,
    max_iterations: int = MAX_ITERATIONS,
    ceiling_Bps: float | None = None,
    ceiling_why: str = "the sender's limit",
) -> tuple[LinkForecast, ...]:
    """Per candidate link (name, rate in bits/s): converges?, iterations, duration, a sentence.

    MEMORY_BYTES is the guest's memory, DIRTY_RATE_BPS what it dirties per second (bytes: libvirt's
    memory_dirty_rate times the page size, or the dirtyrate.* domain stats). CEILING_BPS, when
    given, is the fastest one migration can send whatever the link (a cap, or the rate a stream
    reached before on a faster link); CEILING_WHY says which, for the sentence.
    """
    out = []
    for name, rate_bps in links:
        line = usable_Bps(rate_bps)
        usable = usable_Bps(rate_bps, ceiling_Bps)
        model = precopy(memory_bytes, dirty_rate_Bps, usable, max_downtime_s, max_iterations)
        where = f"over {name} ({link_text(rate_bps)}, ~{bytes_rate(usable)}"
        where += f", {ceiling_why})" if usable < line else ")"
        out.append(
            LinkForecast(
                interface=name,
                rate_bps=int(rate_bps),
                converges=model.converges,
                iterations=model.iterations,
                duration_s=round(model.duration_s, 2) if model.duration_s is not None else None,
                text=f"{where} {_verdict(model, memory_bytes, dirty_rate_Bps, usable, max_iterations)}",
                usable_bps=int(usable * 8),
            )
        )
    return tuple(out)


def _verdict(model: PreCopy, memory: float, dirty: float, usable: float, max_iterations: int) -> str:
    if model.converges and model.duration_s is not None:
        if len(model.passes) == 1:
            return f"the whole {size(memory)} fits in the downtime: 1 pass, about {seconds(model.duration_s)}"
        shown = [size(b) for b in model.passes]
        if len(shown) > 4:  # a long race: the first passes and the last tell it
            shown = [*shown[:2], "...", shown[-1]]
        steps = ", then ".join(shown)
        return (
            f"about {model.iterations} iterations, about {seconds(model.duration_s)} "
            f"({steps}; the guest dirties {bytes_rate(dirty)})"
        )
    if dirty >= usable:
        return (
            f"the guest's {bytes_rate(dirty)} dirty rate never converges: every pass leaves at least as much as it sent"
        )
    return (
        f"the guest's {bytes_rate(dirty)} dirty rate is {100 * dirty / usable:.0f} % of what it can send: "
        f"not converged within {max_iterations} iterations"
    )


def summary(forecasts: Sequence[LinkForecast]) -> str:
    """All links' sentences in one line, as the report shows them before migrating."""
    return "; ".join(f.text for f in forecasts)
