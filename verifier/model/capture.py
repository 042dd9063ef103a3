"""What the capture stage counted: per interface and direction, per second, per connection."""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier.model.ownership import FlowKey, canonical_ip, flow_key
from verifier.model.serial import INTERNAL


@dataclass(frozen=True)
class Bin:
    second: int
    bytes_tx: int
    bytes_rx: int


@dataclass(frozen=True)
class InterfaceCount:
    name: str
    bytes_tx: int = 0
    bytes_rx: int = 0
    packets_tx: int = 0
    packets_rx: int = 0
    payload_tx: int = 0
    payload_rx: int = 0
    drops: int = 0
    kernel_packets: int = 0
    bins: tuple[Bin, ...] = ()
    pcap: str | None = None
    other_bytes: int = 0  # matched the filter but not a migration connection
    counter_tx: int | None = None  # the interface's own byte counters over the capture (sysfs)
    counter_rx: int | None = None
    # (tenth of a second since the capture started, bytes both ways): kept per connection, for the
    # diagnosis of short migrations; not stored in the run.
    fine_bins: tuple[tuple[int, int], ...] = field(default=(), metadata=INTERNAL)

    @property
    def packets(self) -> int:
        return self.packets_tx + self.packets_rx

    @property
    def payload(self) -> int:
        return self.payload_tx + self.payload_rx


@dataclass(frozen=True)
class Connection:
    """One TCP connection on the watched ports, oriented client -> server."""

    client: str
    client_port: int
    server: str
    server_port: int
    payload_to_server: int
    payload_to_client: int
    packets: int
    interfaces: tuple[str, ...]
    first_payload: str = ""  # hex of the first bytes the client sent
    kind: str = "unknown"  # qemu-main | multifd | nbd | tls | libvirtd-tunnel | ssh-tunnel | unknown
    first_payload_server: str = ""  # hex of the first bytes the server sent
    owner: str | None = None  # the local process that owns it: "qemu (vm01)", "iperf3 (pid 4242)"
    # This connection's own counts per interface, so a verdict can rest on the migration's own
    # connections alone (working data: the run keeps the per-interface totals, not these).
    per_interface: tuple[InterfaceCount, ...] = field(default=(), metadata=INTERNAL)
    # The capture saw its SYN: who connected is known, not guessed from the ports (a connection
    # older than the capture, from an ephemeral port inside the ranges, is guessed wrong).
    by_syn: bool = field(default=False, metadata=INTERNAL)

    @property
    def key(self) -> FlowKey:
        """As OwnedFlow.key: a socket and a captured connection of the same 4-tuple match."""
        return flow_key(self.client, self.client_port, self.server, self.server_port)

    @property
    def server_end(self) -> tuple[str, int]:
        """(address, port) of the end that accepted, in the spelling of OwnedFlow.local_end."""
        return canonical_ip(self.server), self.server_port


@dataclass(frozen=True)
class CaptureResult:
    interfaces: tuple[InterfaceCount, ...]
    connections: tuple[Connection, ...]
    ports: tuple[tuple[int, int], ...]
    started_at: float
    ended_at: float
    snaplen: int
    bpf: str
    problems: tuple[str, ...] = ()  # e.g. a pcap that could not be written completely
    engine: str = "ring"  # which engine counted: ring (TPACKET_V3, Python) | ebpf (kernel maps) | pcap
    pcaps: str = "every frame"  # what the pcaps hold: every frame (headers) | sampled | none
    engine_note: str = ""  # why this engine (the ring, when eBPF could not load)

    def get(self, name: str) -> InterfaceCount | None:
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True)
class ForeignFlow:
    """A connection seen on the watched ports that is not the migration's: another program's
    (GlusterFS bricks from 49152, a backup, another guest's migration)."""

    client: str
    client_port: int
    server: str
    server_port: int
    interfaces: tuple[str, ...]
    bytes: int  # on the wire, both ways, where it was largest (a bridge and its port see it twice)
    payload: int
    kind: str = "unknown"
    owner: str | None = None  # "qemu (vm02)", "iperf3"; None when no local process holds it
    pid: int | None = None
