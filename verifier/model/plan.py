"""Everything decided before anything moves, handed from the predict stage to the conductor."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.model.diagnosis import LinkForecast
from verifier.model.findings import Finding, Prediction
from verifier.model.network import Topology


@dataclass(frozen=True)
class Plan:
    """Everything decided before anything is captured or migrated (no live connection in here)."""

    topology: Topology
    watch: tuple[str, ...]
    prediction: Prediction
    ports: tuple[tuple[int, int], ...]
    findings: tuple[Finding, ...] = ()
    forecasts: tuple[LinkForecast, ...] = ()  # per candidate link, when the guest's dirty rate is known
