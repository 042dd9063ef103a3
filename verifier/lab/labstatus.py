"""`lab status`: what exists now, read from the namespaces, the daemons and the state file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verifier.lab import daemon, guest, spec
from verifier.lab.control import guest_names, members_of, read_state
from verifier.lab.system import netns_list


def status(state_dir: Path = spec.STATE_DIR) -> dict[str, Any]:
    """What exists now: nodes, links, addresses, daemons and where each guest runs."""
    from verifier import topology

    state = read_state(state_dir) or {}
    present = set(netns_list())
    nodes = []
    for node in members_of(state):
        entry: dict[str, Any] = {"name": node, "netns": node in present, "uri": spec.libvirt_uri(node)}
        if node in present:
            topo = topology.discover(netns=node)
            entry["links"] = [
                {
                    "name": i.name,
                    "kind": i.kind,
                    "master": i.master,
                    "state": i.operstate,
                    "addresses": [a for a in i.addresses if not a.startswith("fe80")],
                    "mtu": i.mtu,
                }
                for i in topo.interfaces
                if i.kind != "loopback"
            ]
        pid = int(state.get("pids", {}).get(node, 0) or 0)
        entry["libvirtd"] = {"pid": pid or None, "running": bool(pid) and daemon.alive(pid)}
        ssh_pid = int(state.get("sshd", {}).get(node, 0) or 0)
        entry["sshd"] = {"pid": ssh_pid or None, "running": bool(ssh_pid) and daemon.alive(ssh_pid)}
        nodes.append(entry)
    running = {n["name"]: spec.socket_uri(n["name"], state_dir) for n in nodes if n["libvirtd"]["running"]}
    return {
        "state_dir": str(state_dir),
        "phase": state.get("phase", "down"),
        "options": state.get("options"),
        "nodes": nodes,
        "guests": guest.locate_all(running, guest_names(state_dir)) if running else {},
        "notes": [
            "no bond: the bonding driver is absent on this kernel, so the LAN is eth0 "
            "bridged into br0; bond logic is tested on netlink snapshots"
        ],
    }
