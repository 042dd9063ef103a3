"""The links a forecast is made for: the predicted path's and every other that reaches the
destination by name (hosts file), never the corosync ring (bulk traffic there risks fencing)."""

from __future__ import annotations

from pathlib import Path

from verifier.diagnose.classify import link_rate_bps
from verifier.model import Topology
from verifier.predict.links import is_ring
from verifier.predict.uri import dest_on_link
from verifier.resolve import HOSTS


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
