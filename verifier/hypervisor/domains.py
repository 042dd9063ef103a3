"""Domains as objects to define, start, find and destroy: for the lab's guests (and the probe).

Kept apart from the migration job: these calls make and look up guests, they never move one.
"""

from __future__ import annotations

from verifier.hypervisor._lib import libvirt


def reachable(uri: str) -> str | None:
    """None when the daemon at URI answers; else libvirt's reason (no stray stderr line)."""
    lv = libvirt()
    try:
        lv.open(uri).close()
    except lv.libvirtError as exc:
        return str(exc.get_error_message())
    return None


def define_and_start(uri: str, xml: str) -> None:
    lv = libvirt()
    conn = lv.open(uri)
    try:
        dom = conn.defineXML(xml)
        if not dom.isActive():
            dom.create()
    finally:
        conn.close()


def states(uris: dict[str, str], names: tuple[str, ...], others: bool = True) -> dict[str, dict[str, str]]:
    """Map guest -> {node -> state} for NAMES (an empty map where no node knows one), plus,
    with OTHERS, any further domain the nodes know."""
    lv = libvirt()
    words = {
        lv.VIR_DOMAIN_RUNNING: "running",
        lv.VIR_DOMAIN_PAUSED: "paused",
        lv.VIR_DOMAIN_SHUTOFF: "shut off",
        lv.VIR_DOMAIN_SHUTDOWN: "shutting down",
        lv.VIR_DOMAIN_CRASHED: "crashed",
    }
    found: dict[str, dict[str, str]] = {name: {} for name in names}
    for node, uri in uris.items():
        try:
            conn = lv.open(uri)
        except lv.libvirtError:
            for where in found.values():
                where[node] = "unreachable"
            continue
        try:
            for dom in conn.listAllDomains():
                if not (others or dom.name() in found):
                    continue
                try:
                    state = dom.state()[0]
                except lv.libvirtError:
                    continue  # gone since the listing (migrated away, undefined)
                found.setdefault(dom.name(), {})[node] = words.get(state, "other")
        except lv.libvirtError:
            pass  # the daemon went away mid-listing: report what was seen
        finally:
            conn.close()
    return dict(sorted(found.items()))
