"""Read the destination's qemu.conf when we can see it: this host's own, or (through a reader
the lab supplies) a lab node's.

libvirt's destination hands out `migration_host` (default: its hostname) as the address the
source's QEMU connects to; knowing it predicts the path before migrating (design.md section 4).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
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


DestConfigReader = Callable[[str], DestConfig]  # destination name -> what its qemu.conf says


def read_file(path: Path) -> DestConfig:
    try:
        return parse(path.read_text(errors="replace"), path)
    except OSError:
        return DestConfig(None)


def read_local(dest: str) -> DestConfig:
    """The destination's qemu.conf is readable here only when the destination is this host."""
    if dest == socket.gethostname() and SYSTEM_QEMU_CONF.exists():
        return read_file(SYSTEM_QEMU_CONF)
    return DestConfig(None)


def first_of(*readers: DestConfigReader) -> DestConfigReader:
    """The first reader that can see the destination's qemu.conf wins (the lab's, then this host's)."""

    def read(dest: str) -> DestConfig:
        for reader in readers:
            conf = reader(dest)
            if conf.path is not None:
                return conf
        return DestConfig(None)

    return read
