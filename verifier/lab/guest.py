"""The lab guests vm01..vmNN: diskless TCG domains whose RAM holds random data, so migrations move bytes.

A diskless guest's RAM is zero pages and migrates as ~1 MB. QEMU's generic loader device
(`-device loader,file=F,addr=A,force-raw=on`, passed through libvirt's qemu:commandline
namespace) fills part of RAM with a file of random bytes: 96 MiB gave 97 MiB data_processed.
Each guest gets its own file; QEMU's command line carries `-name guest=<name>`, which is how
per-process tools tell the guests apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from verifier.lab import spec

CHUNK = 1 << 20


def write_data_file(path: Path, mib: int) -> None:
    """Random, incompressible bytes: zero pages would be skipped by QEMU's migration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(CHUNK))
    path.chmod(0o600)


IDLE_OS = "<os><type arch='x86_64' machine='pc'>hvm</type></os>"  # boots nothing: an idle guest


def domain_xml(name: str, data_file: Path | None, os_xml: str | None = None) -> str:
    """The lab guest: no disk, no NIC; random data at 64 MiB; OS_XML (the dirtying program's
    <os> element, lab/dirty.py) boots a kernel instead of nothing."""
    loader = ""
    if data_file is not None:
        arg = f"loader,file={data_file},addr={spec.GUEST_DATA_ADDR:#x},force-raw=on"
        loader = (
            "  <qemu:commandline>\n"
            "    <qemu:arg value='-device'/>\n"
            f"    <qemu:arg value={quoteattr(arg)}/>\n"
            "  </qemu:commandline>\n"
        )
    return (
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
        f"  <name>{name}</name>\n"
        f"  <memory unit='MiB'>{spec.GUEST_MEMORY_MIB}</memory>\n"
        "  <vcpu>1</vcpu>\n"
        f"  {os_xml or IDLE_OS}\n"
        "  <on_crash>destroy</on_crash>\n"
        "  <devices>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        "    <memballoon model='none'/>\n"
        "  </devices>\n"
        f"{loader}"
        "</domain>\n"
    )


def define_and_start(uri: str, xml: str) -> None:
    from verifier.hypervisor import domains  # libvirt only through the hypervisor stage

    domains.define_and_start(uri, xml)


def locate(uris: dict[str, str], name: str = spec.GUEST) -> dict[str, str]:
    """Map node -> domain state name ("running", "shut off", ...) for the nodes that know NAME."""
    return locate_all(uris, (name,), others=False)[name]


def locate_all(uris: dict[str, str], names: tuple[str, ...], others: bool = True) -> dict[str, dict[str, str]]:
    """Map guest -> {node -> state} for NAMES (an empty map where no node knows one), plus,
    with OTHERS, any further domain the nodes know, so `lab status` hides nothing."""
    from verifier.hypervisor import domains

    return domains.states(uris, names, others)
