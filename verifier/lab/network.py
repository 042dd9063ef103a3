"""Build and remove the lab's namespaces, veth links, bridge, addresses, shaping and hosts files."""

from __future__ import annotations

import shutil
from pathlib import Path

from verifier.lab import spec
from verifier.lab.system import netns_list, run

NETNS_ETC = Path("/etc/netns")


def build(nodes: tuple[str, ...] = spec.NODES) -> None:
    """Create both nodes and every link; the caller tears down on failure."""
    first, second = nodes
    for node in nodes:
        run(["ip", "netns", "add", node])
        run(["ip", "-n", node, "link", "set", "lo", "up"])
    for link in spec.LINKS:
        # Created directly inside the namespaces: no temporary name ever shows on the host.
        run(
            ["ip", "link", "add", link.name, "netns", first, "type", "veth", "peer", "name", link.name, "netns", second]
        )
        for node in nodes:
            _configure(node, link)
    for node in nodes:
        write_hosts(node)


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
        # tbf needs a burst of at least one GSO super-packet (64 KiB on veth), or it stalls.
        run(
            [
                "tc",
                "-n",
                node,
                "qdisc",
                "replace",
                "dev",
                link.name,
                "root",
                "tbf",
                "rate",
                link.rate,
                "burst",
                "512kb",
                "latency",
                "20ms",
            ]
        )


def write_hosts(node: str) -> None:
    directory = NETNS_ETC / node
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts").write_text(spec.hosts_file(node))


def remove(nodes: tuple[str, ...] = spec.NODES) -> list[str]:
    """Delete the namespaces (their veths go with them) and hosts files; return what failed."""
    problems: list[str] = []
    present = set(netns_list())
    for node in nodes:
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
