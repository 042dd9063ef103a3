"""Role labels for interfaces: corosync ring addresses, iSCSI sessions' local addresses, the user's.

A table that says "ring1 (corosync ring0)" and "san0 (iscsi)" makes a wrong path obvious.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from verifier.model import Topology

COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
ISCSI_HOSTS = Path("/sys/class/iscsi_host")
_RING = re.compile(r"^\s*(ring(\d+)_addr|bindnetaddr)\s*:\s*(\S+)", re.M)


def corosync_addresses(text: str) -> list[tuple[str, str]]:
    """(address or network, role) from a corosync.conf: ringN_addr and bindnetaddr lines."""
    out = []
    for _key, ring, value in _RING.findall(text):
        out.append((value, f"corosync ring{ring}" if ring else "corosync"))
    return out


def iscsi_addresses(root: Path = ISCSI_HOSTS) -> list[str]:
    """Local addresses of software-iSCSI hosts (iscsi_tcp sets /sys/class/iscsi_host/hostN/ipaddress)."""
    out = []
    for host in sorted(root.glob("host*")) if root.exists() else []:
        try:
            value = (host / "ipaddress").read_text().strip()
        except OSError:
            continue
        if value and value not in out:
            out.append(value)
    return out


def _owner(topology: Topology, value: str) -> str | None:
    """The interface holding VALUE as an address, or whose subnet contains it (bindnetaddr)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    for iface in topology.interfaces:
        for a in iface.addresses:
            if ipaddress.ip_interface(a).ip == addr:
                return iface.name
    for iface in topology.interfaces:
        for a in iface.addresses:
            if addr in ipaddress.ip_interface(a).network and not ipaddress.ip_interface(a).is_link_local:
                return iface.name
    return None


def label(
    topology: Topology,
    user: Mapping[str, str] | None = None,
    corosync_text: str | None = None,
    iscsi: list[str] | None = None,
) -> Topology:
    """Return TOPOLOGY with roles set; the user's labels win over discovered ones."""
    roles: dict[str, str] = {}
    # ringN_addr names the ring; bindnetaddr (in totem, before the nodelist) only says "corosync".
    found = corosync_addresses(corosync_text or "")
    for value, role in sorted(found, key=lambda vr: vr[1] == "corosync"):
        owner = _owner(topology, value)
        if owner:
            roles.setdefault(owner, role)
    for value in iscsi or []:
        owner = _owner(topology, value)
        if owner:
            roles.setdefault(owner, "iscsi")
    roles.update(user or {})
    return replace(topology, interfaces=tuple(replace(i, role=roles.get(i.name, i.role)) for i in topology.interfaces))


def discover(
    topology: Topology, user: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> Topology:
    env = os.environ if env is None else env
    conf = Path(env.get("VERIFY_PATH_COROSYNC_CONF") or COROSYNC_CONF)
    try:
        text = conf.read_text(errors="replace")
    except OSError:
        text = ""
    return label(topology, user, text, iscsi_addresses())
