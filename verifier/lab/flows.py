"""The lab's background traffic as data: which iperf3 flows cross which link, on which ports and
at which rates (load.py runs them). Why these ports and rates: load.py's docstring."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from verifier.errors import UsageError
from verifier.lab import spec

DEFAULT_LINKS: tuple[str, ...] = ("br0", "ring1", "san0", "san1")
IN_RANGE_PORT = 49152  # libvirt's first migration port (migration_port_min)
OUT_OF_RANGE_PORT = 5201  # iperf3's default port
COROSYNC_PORT = 5405  # corosync/knet's default UDP port
# Mbit/s of TCP per link, split over the link's TCP flows; see the module docstring for why.
DEFAULT_RATES_MBIT: Mapping[str, int] = {"br0": 300, "ring1": 100, "san0": 1000, "san1": 1000}
COROSYNC_RATE_MBIT = 10


@dataclass(frozen=True)
class Flow:
    """One iperf3 test: a server on SERVER_NODE at ADDRESS:PORT and a client on CLIENT_NODE."""

    link: str  # the client-side interface it crosses (br0, ring1, ...), for reports
    server_node: str
    client_node: str
    address: str
    port: int
    protocol: str = "tcp"  # "tcp" or "udp"
    rate_mbit: int | None = None  # None: as fast as it goes (TCP only; UDP needs a rate)

    def server_argv(self) -> list[str]:
        # -1: one test, then exit; -B: listen on this link's address only, so the same port can
        # serve every link and the flow can only arrive over its own link.
        return [
            *netns_argv(self.server_node),
            "iperf3",
            "-s",
            "-1",
            "-B",
            self.address,
            "-p",
            str(self.port),
        ]

    def client_argv(self, duration_s: float) -> list[str]:
        argv = [
            *netns_argv(self.client_node),
            "iperf3",
            "-c",
            self.address,
            "-p",
            str(self.port),
            "-t",
            str(max(1, math.ceil(duration_s))),  # iperf3 takes whole seconds
            "--connect-timeout",
            "3000",
        ]
        if self.protocol == "udp":
            argv.append("-u")
        if self.rate_mbit is not None:
            argv += ["-b", f"{self.rate_mbit}M"]
        elif self.protocol == "tcp":
            argv += ["-b", "0"]  # explicit: unlimited
        return argv

    def __str__(self) -> str:
        rate = f"{self.rate_mbit} Mbit/s" if self.rate_mbit is not None else "unlimited"
        return f"{self.protocol.upper()} {self.client_node} -> {self.address}:{self.port} on {self.link} ({rate})"


def netns_argv(node: str) -> list[str]:
    return ["ip", "netns", "exec", node]


def plan(
    links: Sequence[str] = DEFAULT_LINKS,
    *,
    in_range_port: int | None = IN_RANGE_PORT,
    out_of_range_port: int | None = OUT_OF_RANGE_PORT,
    udp_port: int | None = COROSYNC_PORT,
    rates_mbit: Mapping[str, int] | None = None,
    udp_rate_mbit: int = COROSYNC_RATE_MBIT,
    server_node: str = "node2",
    client_node: str = "node1",
) -> list[Flow]:
    """The flows `background_load` runs for LINKS (pure: nothing starts)."""
    rates = dict(DEFAULT_RATES_MBIT) | dict(rates_mbit or {})
    ports = [p for p in (in_range_port, out_of_range_port) if p is not None]
    flows: list[Flow] = []
    for name in links:
        try:
            link = spec.link(name)
        except KeyError:
            known = ", ".join(lk.l3_interface for lk in spec.LINKS)
            raise UsageError(f"unknown lab link {name!r}", hint=f"use some of {known}") from None
        address = link.address(server_node)
        rate = rates.get(link.l3_interface)
        per_flow = None if rate is None else max(1, rate // max(1, len(ports)))
        for port in ports:
            flows.append(Flow(link.l3_interface, server_node, client_node, address, port, "tcp", per_flow))
        if link.role == "corosync" and udp_port is not None:
            flows.append(Flow(link.l3_interface, server_node, client_node, address, udp_port, "udp", udp_rate_mbit))
    keys = [(f.server_node, f.address, f.port) for f in flows]
    if len(set(keys)) != len(keys):
        raise UsageError("two flows would share one server address and port", hint="use distinct ports")
    return flows
