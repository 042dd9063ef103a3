"""The probe guest's libvirt calls: LibvirtHypervisor plus what making and removing a throwaway
guest needs, on the same source and destination connections.

What the probe needs (verifier.probe.ProbeHost): the virtualization types both hosts offer (KVM
only when the destination can run it too), the source's security drivers and the DAC user QEMU runs
as (so that QEMU can read the random data file), a transient domain started from XML, its
migratable XML, and destroying it on both ends whatever state it is in.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from verifier.errors import EnvironmentProblem, VerifierError
from verifier.hypervisor._lib import libvirt
from verifier.hypervisor.connection import LibvirtHypervisor

ARCH = "x86_64"


def domain_types(capabilities: str, arch: str = ARCH) -> frozenset[str]:
    """The <domain type=...> a host can run for ARCH, from its capabilities XML ("qemu", "kvm")."""
    root = ET.fromstring(capabilities)
    return frozenset(
        d.get("type", "")
        for guest in root.findall("./guest")
        for a in guest.findall("arch")
        if a.get("name") == arch
        for d in a.findall("domain")
    )


def security_labels(capabilities: str, virt_type: str) -> tuple[tuple[str, str], ...]:
    """(model, base label for VIRT_TYPE) per security driver: ("dac", "+64055:+994"), ("apparmor", "")."""
    root = ET.fromstring(capabilities)
    out = []
    for model in root.findall("./host/secmodel"):
        name = (model.findtext("model") or "").strip()
        label = next((b.text or "" for b in model.findall("baselabel") if b.get("type") == virt_type), "")
        if name:
            out.append((name, label.strip()))
    return tuple(out)


class ProbeLibvirt(LibvirtHypervisor):
    """LibvirtHypervisor with the probe's methods (fold these into LibvirtHypervisor)."""

    def domain_types(self) -> tuple[frozenset[str], frozenset[str]]:
        """(the source's, the destination's) domain types for x86_64."""
        return domain_types(self.src.getCapabilities()), domain_types(self.dst.getCapabilities())

    def security_labels(self, virt_type: str) -> tuple[tuple[str, str], ...]:
        return security_labels(self.src.getCapabilities(), virt_type)

    def create_transient(self, xml: str) -> None:
        """Start a transient domain on the source: nothing is defined, destroying it leaves nothing."""
        lv = libvirt()
        try:
            self.src.createXML(xml, 0)
        except lv.libvirtError as exc:
            raise EnvironmentProblem(
                f"cannot start the probe guest on {self.source_uri}: {exc.get_error_message()}",
                hint="see the libvirt log of that host (/var/log/libvirt/qemu/verify-path-probe-*.log)",
            ) from None

    def migratable_xml(self, name: str) -> str:
        """NAME's live XML as a migration sends it (VIR_DOMAIN_XML_MIGRATABLE)."""
        lv = libvirt()
        try:
            return str(self.src.lookupByName(name).XMLDesc(lv.VIR_DOMAIN_XML_MIGRATABLE))
        except lv.libvirtError as exc:
            raise EnvironmentProblem(f"cannot read the probe's XML: {exc.get_error_message()}") from None

    def destroy_everywhere(self, name: str) -> tuple[str, ...]:
        """Destroy NAME on the source and on the destination; one line per place it may be left.

        Both ends are always tried: a failed or interrupted migration can leave the guest on
        either, and an aborted incoming one on the destination for a moment. Absent is success.
        """
        ends: tuple[tuple[str, str, Callable[[], Any]], ...] = (
            ("source", self.source_uri, lambda: self.src),  # a property: opening it may fail
            ("destination", self.dest_uri, lambda: self.dst),
        )
        left = []
        for role, uri, connection in ends:
            problem = _destroy(connection, name)
            if problem:
                left.append(f"{name} on the {role} {uri}: {problem}")
        return tuple(left)


def _destroy(connection: Callable[[], Any], name: str) -> str:
    """ "" when NAME is gone from the host CONNECTION() reaches, else why it may still be there."""
    lv = libvirt()
    try:
        dom = connection().lookupByName(name)
        dom.destroy()
    except lv.libvirtError as exc:
        # Gone already, or went between the look-up and the destroy: what we wanted.
        if exc.get_error_code() in (lv.VIR_ERR_NO_DOMAIN, lv.VIR_ERR_OPERATION_INVALID):
            return ""
        return str(exc.get_error_message())
    except VerifierError as exc:  # the daemon is unreachable: the guest may still run there
        return exc.one_line()
    return ""
