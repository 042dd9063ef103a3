"""`verify-path probe NODE_OR_URI DEST`: which link would a migration take, without moving a guest.

A command of its own rather than a `--probe` option of the main job: the job's first argument is
a guest that exists and that the job moves; a probe's is the source host, and the probe creates,
moves and destroys its own guest. An option would give VM two meanings and make every check on it
(exists, runs, has no job) conditional.

The probe is a transient domain `verify-path-probe-<8 hex digits>` on the source: no disk, no
network device, one vCPU, N MiB (default 256) of random bytes loaded into its RAM by QEMU's generic
loader device through libvirt's qemu:commandline namespace, like the lab's guests. KVM where
/dev/kvm opens, the CPU has vmx or svm and both daemons offer KVM; TCG (type 'qemu') otherwise. It
migrates with the main job's options through the same conductor, is verified like any run, and is
stored like any run, marked as a probe.

QEMU reads the loader's file when it starts, with -incoming on the destination too: a missing file
fails it there ("Cannot load specified image", hw/core/generic-loader.c). The content is not needed
there (during an incoming migration rom_reset() leaves RAM to the stream, hw/core/loader.c), and the
loader has no migration state, so the migration carries a destination XML without it
(VIR_MIGRATE_PARAM_DEST_XML) and the file never leaves the source. It lives in a private directory
(0700, the file 0600, owned by the DAC user QEMU runs as, from the source's capabilities) and goes
with the probe. AppArmor and SELinux label only files libvirt knows of, which a qemu:commandline
file is not: the probe (no disk, no network, no code of its own) runs without those labels.

Whatever happens (failure, Ctrl-C, SIGTERM, a migration timeout) the probe is destroyed on both
ends and the file removed; a probe that could not be destroyed is named, with where (exit 4).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from verifier import signals
from verifier.errors import UsageError
from verifier.hypervisor import Hypervisor, HypervisorFactory, ProgressFn
from verifier.jobs import Backends, Finished, JobOptions
from verifier.model import MigrationRequest, MigrationResult

PREFIX = "verify-path-probe-"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
DATA_ADDR_MIB = 64  # above the firmware's low memory, as in the lab (spec.GUEST_DATA_ADDR)
HEADROOM_MIB = 32  # RAM above the data, so that the guest's RAM holds all of it
DEFAULT_MIB = 256
MAX_MIB = 2048  # all RAM stays below the 32-bit PCI hole of pc and q35 machines
MAC_MODELS = ("apparmor", "selinux")
CHUNK = 1 << 20


class ProbeHost(Protocol):
    """What the probe asks of libvirt (verifier.hypervisor.probes.ProbeLibvirt is the real one)."""

    def source_hostname(self) -> str: ...
    def domain_types(self) -> tuple[frozenset[str], frozenset[str]]: ...
    def security_labels(self, virt_type: str) -> tuple[tuple[str, str], ...]: ...
    def create_transient(self, xml: str) -> None: ...
    def migratable_xml(self, name: str) -> str: ...
    def destroy_everywhere(self, name: str) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    mib: int
    kvm: bool
    owner: tuple[int, int] | None  # uid, gid QEMU runs as; None: leave the file root's
    unconfined: tuple[str, ...] = ()  # security drivers whose labels the probe runs without

    @property
    def memory_mib(self) -> int:
        return DATA_ADDR_MIB + self.mib + HEADROOM_MIB


@dataclass(frozen=True)
class ProbeOutcome:
    finished: Finished
    left_behind: tuple[str, ...]  # one line per host where the probe may still run


def probe_name(token: str | None = None) -> str:
    return PREFIX + (token or secrets.token_hex(4))


def kvm_usable(dev: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """/dev/kvm opens for reading and writing and the CPU advertises vmx (Intel) or svm (AMD)."""
    try:
        os.close(os.open(dev, os.O_RDWR | os.O_CLOEXEC))
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags = {w for line in text.splitlines() if line.startswith("flags") for w in line.partition(":")[2].split()}
    return bool(flags & {"vmx", "svm"})


def dac_owner(label: str) -> tuple[int, int] | None:
    """libvirt's DAC base label, which its capabilities always write as "+uid:+gid", as (uid, gid)."""
    user, _, group = label.partition(":")
    if not (user.startswith("+") and group.startswith("+") and user[1:].isdigit() and group[1:].isdigit()):
        return None
    return int(user[1:]), int(group[1:])


def plan(host: ProbeHost, mib: int, kvm_here: bool, name: str | None = None) -> ProbeSpec:
    """The probe to start: KVM only when this host and both daemons can run it."""
    src_types, dst_types = host.domain_types()
    kvm = kvm_here and "kvm" in src_types and "kvm" in dst_types
    labels = host.security_labels("kvm" if kvm else "qemu")
    owner = next((dac_owner(label) for model, label in labels if model == "dac" and label), None)
    unconfined = tuple(model for model, _ in labels if model in MAC_MODELS)
    return ProbeSpec(name or probe_name(), mib, kvm, owner, unconfined)


def domain_xml(spec: ProbeSpec, data_file: Path) -> str:
    """No disk, no NIC, no USB, no balloon; libvirt picks the host's default machine and emulator."""
    arg = f"loader,file={data_file},addr={DATA_ADDR_MIB << 20:#x},force-raw=on"
    labels = "".join(f"  <seclabel type='none' model={quoteattr(m)}/>\n" for m in spec.unconfined)
    return (
        f"<domain type='{'kvm' if spec.kvm else 'qemu'}' xmlns:qemu='{QEMU_NS}'>\n"
        f"  <name>{escape(spec.name)}</name>\n"
        f"  <memory unit='MiB'>{spec.memory_mib}</memory>\n"
        "  <vcpu>1</vcpu>\n"
        "  <os><type arch='x86_64'>hvm</type></os>\n"
        "  <on_crash>destroy</on_crash>\n"
        "  <devices>\n"
        "    <controller type='usb' model='none'/>\n"
        "    <memballoon model='none'/>\n"
        "  </devices>\n"
        f"{labels}"
        "  <qemu:commandline>\n"
        "    <qemu:arg value='-device'/>\n"
        f"    <qemu:arg value={quoteattr(arg)}/>\n"
        "  </qemu:commandline>\n"
        "</domain>\n"
    )


def without_loader(xml: str) -> str:
    """The migratable XML for the destination: the same domain without the qemu:commandline."""
    ET.register_namespace("qemu", QEMU_NS)
    root = ET.fromstring(xml)
    for element in root.findall(f"{{{QEMU_NS}}}commandline"):
        root.remove(element)
    return ET.tostring(root, encoding="unicode")


def write_data(directory: Path, mib: int, owner: tuple[int, int] | None) -> Path:
    """MIB MiB of random bytes (zero pages would not be sent) in DIRECTORY, mode 0600; the file and
    DIRECTORY become OWNER's, the user QEMU runs as."""
    path = directory / "memory.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(CHUNK))
    if owner is not None:
        os.chown(directory, *owner)
        os.chown(path, *owner)
    return path


def with_dest_xml(req: MigrationRequest, xml: str) -> MigrationRequest:
    """REQ carrying the destination XML (VIR_MIGRATE_PARAM_DEST_XML): the guest without its loader
    device, so the random data file never has to exist on the destination."""
    return replace(req, dest_xml=xml)


class DestXmlHypervisor:
    """The conductor's hypervisor, every migration carrying the probe's destination XML; every
    other call goes to the real one unchanged."""

    def __init__(self, inner: Hypervisor, xml: str) -> None:
        self.inner, self.xml = inner, xml

    def __enter__(self) -> DestXmlHypervisor:  # special methods bypass __getattr__
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def migrate(self, req: MigrationRequest, progress: ProgressFn) -> MigrationResult:
        return self.inner.migrate(with_dest_xml(req, self.xml), progress)


def probe_options(opts: JobOptions, name: str) -> JobOptions:
    """OPTS for the probe NAME, marked as a probe in run.json's options."""
    return replace(opts, vm=name, probe=True)


def run(
    opts: JobOptions,
    backends: Backends,
    host: ProbeHost,
    spec: ProbeSpec,
    conduct: Callable[[JobOptions, Backends], Finished],
    warn: Callable[[str], None],
    tmp_base: Path | None = None,
) -> ProbeOutcome:
    """Start SPEC's probe on the source, run the job on it with CONDUCT, destroy it on both ends."""
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_base))  # 0700; nothing else exists yet
    try:
        data = write_data(workdir, spec.mib, spec.owner)
        backends.log(f"starting {spec.name}: {spec.mib} MiB of random memory, {'KVM' if spec.kvm else 'TCG'}")
        host.create_transient(domain_xml(spec, data))
        dest_xml = without_loader(host.migratable_xml(spec.name))
        factory: HypervisorFactory = backends.hypervisor

        def hypervisor(source_uri: str, dest_uri: str) -> Hypervisor:
            return DestXmlHypervisor(factory(source_uri, dest_uri), dest_xml)

        finished = conduct(probe_options(opts, spec.name), replace(backends, hypervisor=hypervisor))
    finally:
        # A second Ctrl-C must not leave a guest running on someone's hypervisor.
        with signals.shielded("removing the probe guest"):
            try:
                left = host.destroy_everywhere(spec.name)
            except Exception as exc:  # noqa: BLE001 - the original error must not be masked
                left = (f"{spec.name}: could not check whether it is gone ({exc})",)
            shutil.rmtree(workdir, ignore_errors=True)
            for line in left:
                warn(f"verify-path: probe left behind: {line}; remove it with `virsh destroy {spec.name}` there")
    return ProbeOutcome(finished, left)


def check_node(node: str, libvirt_hostname: str) -> None:
    """The probe sniffs this host's interfaces: NODE must be this host."""
    if node.split(".", 1)[0].lower() != libvirt_hostname.split(".", 1)[0].lower():
        raise UsageError(
            f"this host is {libvirt_hostname!r}, not {node!r}: a probe migrates from the host it runs on",
            hint=f"run it on {node} (the playbook does), or give this host's libvirt URI",
        )
