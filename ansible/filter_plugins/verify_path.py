"""Jinja filters for verify-cluster.yml: the ordered pairs to probe, and rounds that share no host.

A host takes part in at most one pair per round, as source or as destination: a `watch` on a
destination must see only the probe sent to it, and a probe's counters only its own stream. Pairs
of a round run in parallel (as forks allow); rounds run one after the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Pair = dict[str, str]


def _pair(value: Any) -> Pair:
    """A pair as {"source", "dest"}: from a dict, a two-item list, or "a:b" / "a->b"."""
    if isinstance(value, dict):
        source, dest = value.get("source"), value.get("dest") or value.get("destination")
    elif isinstance(value, str):
        source, _, dest = value.replace("->", ":").partition(":")
    elif isinstance(value, Sequence) and len(value) == 2:
        source, dest = value
    else:
        raise ValueError(f"verify_path_pairs: {value!r} is not a pair (use [source, dest])")
    source, dest = str(source or "").strip(), str(dest or "").strip()
    if not source or not dest or source == dest:
        raise ValueError(f"verify_path_pairs: {value!r} needs two different hosts")
    return {"source": source, "dest": dest}


def all_pairs(hosts: Iterable[str]) -> list[Pair]:
    """Every ordered pair of HOSTS."""
    names = list(dict.fromkeys(hosts))
    return [{"source": a, "dest": b} for a in names for b in names if a != b]


def rounds(pairs: Iterable[Any], per_round: int = 0) -> list[list[Pair]]:
    """PAIRS in rounds where no host appears twice, at most PER_ROUND pairs each (0: no limit).

    Greedy, in the order given: each round takes every remaining pair whose hosts are still free.
    """
    remaining = list(dict.fromkeys((p["source"], p["dest"]) for p in map(_pair, pairs)))
    out: list[list[Pair]] = []
    while remaining:
        busy: set[str] = set()
        taken: list[tuple[str, str]] = []
        for source, dest in remaining:
            if source in busy or dest in busy or (per_round and len(taken) >= per_round):
                continue
            taken.append((source, dest))
            busy.update((source, dest))
        out.append([{"source": s, "dest": d} for s, d in taken])
        remaining = [p for p in remaining if p not in taken]
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"verify_path_all_pairs": all_pairs, "verify_path_rounds": rounds}
