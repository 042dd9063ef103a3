"""The links a forecast is made for: the predicted path's and every other that reaches the
destination by name (hosts file), never the corosync ring (bulk traffic there risks fencing)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from verifier.diagnose.classify import link_rate_bps
from verifier.diagnose.convergence import forecast
from verifier.model import LinkForecast, Plan, Topology
from verifier.predict.links import is_ring
from verifier.predict.uri import dest_on_link
from verifier.resolve import HOSTS


class GuestMeter(Protocol):
    """What the forecast asks of the hypervisor: the guest's memory and how fast it dirties it."""

    def memory_bytes(self, vm: str) -> int | None: ...
    def dirty_rate(self, vm: str, seconds: int = 1) -> float | None: ...


def candidate_links(topology: Topology, path: tuple[str, ...], dest: str, hosts: Path = HOSTS) -> list[tuple[str, int]]:
    names: list[str] = [path[0]] if path else []
    for iface in topology.interfaces:
        if iface.master or iface.kind == "loopback" or iface.name in names or is_ring(topology, iface.name):
            continue
        if dest_on_link(topology, dest, iface.name, hosts):
            names.append(iface.name)
    out = []
    for name in names:
        rate = link_rate_bps(topology, topology.chain_down(name))
        if rate:
            out.append((name, rate))
    return out


def forecast_plan(hv: GuestMeter, vm: str, plan: Plan, dest: str, hosts: Path = HOSTS) -> tuple[LinkForecast, ...]:
    """Before migrating: the guest's dirty rate (QEMU measures it), and per link that reaches the
    destination whether a pre-copy migration would converge there, and how long it would take."""
    memory = hv.memory_bytes(vm)
    dirty = hv.dirty_rate(vm) if memory else None
    if not memory or dirty is None:
        return ()
    return forecast(memory, dirty, candidate_links(plan.topology, plan.prediction.path, dest, hosts))
