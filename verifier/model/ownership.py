"""Who owns which TCP connection, as the ownership sampler found it: the migration's own flows and
everyone else's on the watched ports. `flow_key` matches them to captured connections whichever
end each side calls client or local."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass


@functools.lru_cache(maxsize=4096)  # a host has few distinct addresses, and this runs per socket
def canonical_ip(text: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 becomes dotted IPv4, IPv6 is compressed."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; a capture sees a.b.c.d.
        return str(addr.ipv4_mapped)
    return str(addr)


FlowKey = tuple[tuple[str, int], tuple[str, int]]
# One connection as this host's socket sees it: local address, local port, remote address, remote
# port (canonical_ip spellings), as a capture announces a new connection and sock_diag lists it.
Endpoints = tuple[str, int, str, int]


def flow_key(a_ip: str, a_port: int, b_ip: str, b_port: int) -> FlowKey:
    """The same key for both ends of a connection, whichever side is called client or local."""
    a = (canonical_ip(a_ip), a_port)
    b = (canonical_ip(b_ip), b_port)
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class OwnedFlow:
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str
    inode: int
    pid: int | None
    owner: str  # "qemu (vm01)", "iperf3", or "unknown"
    role: str  # migration | foreign

    @property
    def key(self) -> FlowKey:
        return flow_key(self.local, self.local_port, self.remote, self.remote_port)

    @property
    def local_end(self) -> tuple[str, int]:
        """This host's (address, port), in the spelling of Connection.server_end."""
        return canonical_ip(self.local), self.local_port


@dataclass(frozen=True)
class Ownership:
    owner_pid: int | None
    owner: str
    flows: tuple[OwnedFlow, ...]
    foreign: tuple[OwnedFlow, ...]
    problem: str | None  # set when ownership could not be determined: count by port range instead
    samples: int
    busy_ports: tuple[int, ...] = ()  # every local TCP port in use on this host at the end (for a free range)
    dumps: int = 0  # socket-table dumps among the samples (the costly part)
    cpu_s: float = 0.0  # the sampling thread's own CPU time, so its cost can be reported

    def owns(self, a_ip: str, a_port: int, b_ip: str, b_port: int) -> bool:
        key = flow_key(a_ip, a_port, b_ip, b_port)
        return any(flow.key == key for flow in self.flows)
