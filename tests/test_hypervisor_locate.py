"""Where the guest is after an aborted migration: LibvirtHypervisor.locate waits, within a bound,
for the destination's incoming copy to go (libvirt tears it down after the migration call has
returned, not always before). Connections are small stand-ins for libvirt's; no lab needed."""

from __future__ import annotations

import time
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from verifier.hypervisor.connection import LibvirtHypervisor  # noqa: E402


class _Domain:
    def __init__(self, state: int) -> None:
        self._state = state

    def state(self) -> list[int]:
        return [self._state, 0]

    def isActive(self) -> int:  # noqa: N802 - libvirt's name
        return 1


class _Conn:
    """A host with VM in STATE for its first LOOKUPS lookups (None: for ever), then without it."""

    def __init__(self, state: int, lookups: int | None = None) -> None:
        self.state, self.left, self.seen = state, lookups, 0

    def lookupByName(self, _vm: str) -> Any:  # noqa: N802 - libvirt's name
        self.seen += 1
        if self.left is not None and self.seen > self.left:
            raise libvirt.libvirtError("Domain not found")
        return _Domain(self.state)


def _hypervisor(src: _Conn, dst: _Conn) -> LibvirtHypervisor:
    hv = LibvirtHypervisor("qemu+tcp://node1/system", "qemu+tcp://node2/system")
    hv._src, hv._dst = src, dst  # the connections it would open
    return hv


def test_the_incoming_copy_is_waited_for_until_it_has_gone() -> None:
    dst = _Conn(libvirt.VIR_DOMAIN_PAUSED, lookups=3)  # paused for the incoming migration, then gone
    hv = _hypervisor(_Conn(libvirt.VIR_DOMAIN_RUNNING), dst)
    started = time.monotonic()
    assert hv.locate("vm01", settle_s=5.0) == "source"
    took = time.monotonic() - started
    assert dst.seen >= 4 and 0.4 <= took < 2.0, (dst.seen, took)


def test_a_copy_that_stays_is_waited_for_no_longer_than_the_bound() -> None:
    dst = _Conn(libvirt.VIR_DOMAIN_PAUSED)
    hv = _hypervisor(_Conn(libvirt.VIR_DOMAIN_RUNNING), dst)
    started = time.monotonic()
    assert hv.locate("vm01", settle_s=0.5) == "source"  # a paused copy does not run there
    assert 0.5 <= time.monotonic() - started < 1.5


def test_no_wait_without_a_bound_or_for_a_guest_running_there() -> None:
    dst = _Conn(libvirt.VIR_DOMAIN_PAUSED)
    started = time.monotonic()
    assert _hypervisor(_Conn(libvirt.VIR_DOMAIN_RUNNING), dst).locate("vm01") == "source"
    running = _hypervisor(_Conn(libvirt.VIR_DOMAIN_RUNNING), _Conn(libvirt.VIR_DOMAIN_RUNNING))
    assert running.locate("vm01", settle_s=5.0) == "both"
    assert time.monotonic() - started < 0.2
