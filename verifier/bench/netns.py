"""The bench's own two namespaces and two veth pairs, so the iperf3 cases need no lab.

vpbench1 (client, where every capture runs) and vpbench2 (iperf3 servers), joined by two veth
pairs named like the lab's storage links: san0 (198.18.210.0/24) and san1 (198.18.211.0/24), both
from the benchmarking range (RFC 2544), used nowhere else in the project. The lab's node1/node2
are never touched: another engineer may be using them while the bench runs. Whatever `bench_pair`
creates it removes on the way out, also after an error or Ctrl-C; a leftover from a killed run is
removed before building.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CLIENT, SERVER = "vpbench1", "vpbench2"


@dataclass(frozen=True)
class Link:
    name: str  # the same interface name at both ends, like the lab's links
    client: str  # address in CLIENT
    server: str  # address in SERVER


LINKS = (Link("san0", "198.18.210.1", "198.18.210.2"), Link("san1", "198.18.211.1", "198.18.211.2"))


def link(name: str) -> Link:
    return next(lk for lk in LINKS if lk.name == name)


def inside(ns: str, *argv: str) -> list[str]:
    """ARGV run in namespace NS (ip netns exec execs it: the pid is the program's own)."""
    return ["ip", "netns", "exec", ns, *argv]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)


def remove() -> list[str]:
    """Delete both namespaces (their veths go with them); the names that could not be deleted."""
    present = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    names = {line.split()[0] for line in present.splitlines() if line.strip()}
    failed = []
    for ns in (CLIENT, SERVER):
        if ns in names and subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False).returncode:
            failed.append(ns)
    return failed


def build() -> None:
    for ns in (CLIENT, SERVER):
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    for lk in LINKS:
        # Both ends are created in place: the names never exist in the host's namespace, where
        # they could collide with anyone's interfaces.
        peer = f"vpb-{lk.name}"  # temporary name inside SERVER until renamed below
        _run(["ip", "link", "add", lk.name, "netns", CLIENT, "type", "veth", "peer", "name", peer, "netns", SERVER])
        _run(["ip", "-n", SERVER, "link", "set", peer, "name", lk.name])
        for ns, addr in ((CLIENT, lk.client), (SERVER, lk.server)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", lk.name])
            _run(["ip", "-n", ns, "link", "set", lk.name, "up"])


@contextmanager
def bench_pair() -> Iterator[None]:
    """The namespaces for the duration of the with-block; removed after, whatever happened."""
    remove()  # a previous run killed with SIGKILL
    try:
        build()
        yield
    finally:
        failed = remove()
        if failed:
            raise RuntimeError(f"could not delete namespaces {', '.join(failed)}: remove them with `ip netns del`")


def set_offloads(iface: str, on: bool) -> None:
    """TSO, GSO and GRO on IFACE at both ends: off makes the stack send MTU-sized frames."""
    value = "on" if on else "off"
    for ns in (CLIENT, SERVER):
        _run(inside(ns, "ethtool", "-K", iface, "tso", value, "gso", value, "gro", value))
