"""Read the destination's qemu.conf when we can see it: this host's own, or a lab node's.

libvirt's destination hands out `migration_host` (default: its hostname) as the address the
source's QEMU connects to; knowing it predicts the path before migrating (design.md section 4).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

SYSTEM_QEMU_CONF = Path("/etc/libvirt/qemu.conf")
_SETTING = re.compile(
    r"^\s*(migration_host|migration_address|migration_port_min|migration_port_max)"
    r'\s*=\s*"?([^"#\s]*)"?',
    re.M,
)


@dataclass(frozen=True)
class DestConfig:
    path: Path | None  # None: the destination's qemu.conf is not readable from here
    migration_host: str | None = None
    migration_address: str | None = None
    port_min: int | None = None
    port_max: int | None = None


def parse(text: str, path: Path) -> DestConfig:
    values = {k: v for k, v in _SETTING.findall(text)}

    def num(key: str) -> int | None:
        value = values.get(key)
        return int(value) if value and value.isdigit() else None

    return DestConfig(
        path,
        values.get("migration_host") or None,
        values.get("migration_address") or None,
        num("migration_port_min"),
        num("migration_port_max"),
    )


def locate(dest: str, dest_hostname: str | None = None) -> Path | None:
    """Where DEST's qemu.conf is readable from this host, if anywhere."""
    from verifier.lab import spec

    if dest in spec.NODES:
        lab_conf = spec.node_dir(dest) / "etc" / "qemu.conf"
        if lab_conf.exists():
            return lab_conf
    local = socket.gethostname()
    if local in (dest, dest_hostname) and SYSTEM_QEMU_CONF.exists():
        return SYSTEM_QEMU_CONF
    return None


def read(dest: str, dest_hostname: str | None = None) -> DestConfig:
    path = locate(dest, dest_hostname)
    if path is None:
        return DestConfig(None)
    try:
        return parse(path.read_text(errors="replace"), path)
    except OSError:
        return DestConfig(None)
