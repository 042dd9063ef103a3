"""The lab's fixed shape: nodes, links, addresses and names (pure data, no side effects).

These names (node1, node2, br0, eth0, ring1, san0, san1, vm01..vmNN, nodeN-san) are a contract that
tests and other checks rely on. Addresses come only from documentation ranges (RFC 5737,
RFC 2544) and only ever exist inside the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

NODES: tuple[str, ...] = ("node1", "node2")  # the default lab
ALL_NODES: tuple[str, ...] = ("node1", "node2", "node3")  # `lab up --nodes 3`
HUB = "vplab-hub"  # the namespace holding one bridge per link: every node's veth is a port of it
LAYOUT_VERSION = 4  # bump when what `lab up` builds changes
GUEST = "vm01"  # the default (and first) guest; `lab up --guests N` adds vm02..vmN
# Each guest is an idle TCG QEMU of ~240 MiB RSS plus its data file in /run (tmpfs): eight keep
# the lab under 3 GiB and its start-up within seconds on a 2-core machine.
GUESTS_MAX = 8
STATE_DIR = Path(os.environ.get("VERIFY_PATH_LAB_DIR", "/run/verify-path-lab"))
LIBVIRT_PORT = 16509
GUEST_MEMORY_MIB = 256
# The generic loader writes the random data at 64 MiB into guest RAM (design.md section 5).
GUEST_DATA_ADDR = 0x4000000
GUEST_DATA_MAX_MIB = GUEST_MEMORY_MIB - 64 - 32
DEFAULT_GUEST_DATA_MIB = 96
LAN_RATE = "1gbit"


@dataclass(frozen=True)
class LinkSpec:
    """One shared segment (a bridge in the hub namespace), the same interface name on every node."""

    name: str  # interface name on each node
    role: str
    subnet: str
    host_names: tuple[str, ...]  # name suffixes that resolve to this link, "" = the bare node name
    bridge: str | None = None  # L3 lives on this bridge, the veth is its port
    rate: str | None = None  # tbf shaping on egress

    def address(self, node: str) -> str:
        net = ipaddress.ip_network(self.subnet)
        return str(net.network_address + 10 + node_index(node))

    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def l3_interface(self) -> str:
        return self.bridge or self.name


# 192.0.2.0/24 is left out on purpose: sandboxes and CI hosts often number their own uplink
# from it, and lab addresses must never look like the host's.
LINKS: tuple[LinkSpec, ...] = (
    LinkSpec("eth0", "lan", "203.0.113.0/24", ("",), bridge="br0", rate=LAN_RATE),
    LinkSpec("ring1", "corosync", "198.51.100.0/24", ("-ring",)),
    LinkSpec("san0", "storage", "198.18.0.0/24", ("-san",)),
    LinkSpec("san1", "storage", "198.18.1.0/24", ("-san1",)),
)


def node_index(node: str) -> int:
    if node not in ALL_NODES:
        raise ValueError(f"unknown lab node {node!r}; the lab has {', '.join(ALL_NODES)}")
    return ALL_NODES.index(node) + 1


def nodes(count: int = len(NODES)) -> tuple[str, ...]:
    """node1..nodeCOUNT: the nodes `lab up --nodes COUNT` builds."""
    if not 2 <= count <= len(ALL_NODES):
        raise ValueError(f"the lab has 2..{len(ALL_NODES)} nodes, not {count}")
    return ALL_NODES[:count]


def hub_port(node: str, link: LinkSpec) -> str:
    """The hub's end of NODE's veth on LINK, e.g. n1-san0 (at most 15 characters)."""
    return f"n{node_index(node)}-{link.name}"


def hub_bridge(link: LinkSpec) -> str:
    return f"hub-{link.name}"


def link(name: str) -> LinkSpec:
    for spec in LINKS:
        if name in (spec.name, spec.bridge):
            return spec
    raise KeyError(name)


def hosts_file(node: str, members: tuple[str, ...] = NODES) -> str:
    """The /etc/hosts each node sees (ip netns exec bind-mounts /etc/netns/NODE/hosts)."""
    node_index(node)
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for spec in LINKS:
        for suffix in spec.host_names:
            for peer in members:
                lines.append(f"{spec.address(peer)}\t{peer}{suffix}")
    return "\n".join(lines) + "\n"


def corosync_conf(members: tuple[str, ...] = NODES) -> str:
    """A corosync.conf naming ring1 as ring0, so the tool's role discovery has something real to find."""
    nodes = "".join(
        f"    node {{\n        name: {n}\n        nodeid: {node_index(n)}\n"
        f"        ring0_addr: {link('ring1').address(n)}\n    }}\n"
        for n in members
    )
    return (
        "totem {\n    version: 2\n    cluster_name: verify-path-lab\n    transport: knet\n}\n"
        f"nodelist {{\n{nodes}}}\n"
    )


def libvirt_uri(node: str) -> str:
    """The URI users and tests give to reach a node's libvirtd from inside the lab."""
    node_index(node)
    return f"qemu+tcp://{node}/system"


def host_uuid(node: str) -> str:
    # Distinct per node: libvirt refuses to migrate to "the same host" otherwise.
    return f"00000000-0000-4000-8000-0000000000{node_index(node):02d}"


def guest_names(count: int = 1) -> tuple[str, ...]:
    """vm01..vmNN: the names `lab up --guests COUNT` defines, in order."""
    if not 1 <= count <= GUESTS_MAX:
        raise ValueError(f"the lab has 1..{GUESTS_MAX} guests, not {count}")
    return tuple(f"vm{i:02d}" for i in range(1, count + 1))


def guest_data_file(name: str, state_dir: Path = STATE_DIR) -> Path:
    """The random bytes loaded into NAME's RAM; vm01 keeps the file name it had before N guests."""
    return state_dir / ("guest-data.bin" if name == GUEST else f"guest-data-{name}.bin")


def node_dir(node: str, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / node


def run_dir(node: str, state_dir: Path = STATE_DIR) -> Path:
    """The host path of NODE's /run/libvirt: its QEMU driver keeps `qemu/<domain>.pid` there."""
    return node_dir(node, state_dir) / "run"


def socket_uri(node: str, state_dir: Path = STATE_DIR) -> str:
    """A URI that reaches a node's libvirtd from the host's namespace, through its unix socket."""
    return f"qemu:///system?socket={run_dir(node, state_dir) / 'libvirt-sock'}"


# Host paths that each node's libvirtd sees replaced by its own directory (design.md section 5).
LIBVIRT_PATHS: tuple[tuple[str, str], ...] = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
)
