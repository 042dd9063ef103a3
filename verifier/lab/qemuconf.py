"""The lab's destination-config reader: a lab node's qemu.conf lives under the lab's state
directory, where the tool (run with `lab exec`) can read it although libvirtd sees it elsewhere."""

from __future__ import annotations

from verifier.destconf import DestConfig, read_file
from verifier.lab import spec


def read(dest: str) -> DestConfig:
    if dest not in spec.ALL_NODES:
        return DestConfig(None)
    conf = spec.node_dir(dest) / "etc" / "qemu.conf"
    return read_file(conf) if conf.exists() else DestConfig(None)
