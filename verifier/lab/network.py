"""Build and remove the lab's namespaces, veth links, bridges, addresses, shaping and hosts files.

Every link is a shared segment: a bridge per link in the hub namespace (spec.HUB), one veth per
node into it, so two nodes and three are wired the same way. The hub has no addresses, and no
lab address ever exists in the host's namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from verifier.lab import spec
from verifier.lab.system import netns_list, run

NETNS_ETC = Path("/etc/netns")


def build(nodes: tuple[str, ...] = spec.NODES) -> None:
    """Create the hub, the nodes and every link (each node's end shaped and addressed as in the
    two-node layout, where the LAN was tbf-shaped on both ends); the caller tears down on failure."""
    for ns in (spec.HUB, *nodes):
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    hub = ["ip", "-n", spec.HUB]
    # The hub is a switch: no address of any kind on it, not even IPv6 link-local ones, set
    # before its bridges and ports exist so that none of them ever gets one.
    for key in ("all", "default"):
        run(["ip", "netns", "exec", spec.HUB, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])
    for link in spec.LINKS:
        bridge = spec.hub_bridge(link)
        # STP off and no forward delay: a port forwards at once, like a switch without loops.
        run([*hub, "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        run([*hub, "link", "set", bridge, "up"])
        for node in nodes:
            port = spec.hub_port(node, link)
            # Created directly inside the namespaces: no temporary name ever shows on the host.
            run(
                ["ip", "link", "add", link.name, "netns", node, "type", "veth", "peer", "name", port, "netns", spec.HUB]
            )
            run([*hub, "link", "set", port, "master", bridge])
            run([*hub, "link", "set", port, "up"])
            _configure(node, link)
    for node in nodes:
        write_hosts(node, nodes)


def _configure(node: str, link: spec.LinkSpec) -> None:
    ipn = ["ip", "-n", node]
    if link.bridge:
        # STP off and no forward delay: the port forwards at once, like a static LAN bridge.
        run([*ipn, "link", "add", link.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        run([*ipn, "link", "set", link.name, "master", link.bridge])
    run([*ipn, "addr", "add", f"{link.address(node)}/{link.prefixlen()}", "dev", link.l3_interface])
    run([*ipn, "link", "set", link.name, "up"])
    if link.bridge:
        run([*ipn, "link", "set", link.bridge, "up"])
    if link.rate:
        shape(node, link.name, link.rate)


def shape(node: str, dev: str, rate: str) -> None:
    """Shape DEV's egress in NODE's namespace to RATE (tc's syntax, e.g. "1gbit") with tbf."""
    # tbf needs a burst of at least one GSO super-packet (64 KiB on veth), or it stalls.
    run(
        [
            "tc",
            "-n",
            node,
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "512kb",
            "latency",
            "20ms",
        ]
    )


def write_hosts(node: str, members: tuple[str, ...] = spec.NODES) -> None:
    directory = NETNS_ETC / node
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts").write_text(spec.hosts_file(node, members))


def remove(nodes: tuple[str, ...] = spec.ALL_NODES) -> list[str]:
    """Delete the namespaces (their veths go with them) and /etc/netns files; return what failed."""
    problems: list[str] = []
    present = set(netns_list())
    for node in (*nodes, spec.HUB):
        if node in present:
            proc = run(["ip", "netns", "del", node], check=False)
            if proc.returncode != 0:
                problems.append(f"netns {node}: {proc.stderr.strip()}")
        directory = NETNS_ETC / node
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
    try:
        NETNS_ETC.rmdir()  # only when empty: other tools may keep files there
    except OSError:
        pass
    return problems
