"""profiles.ports_for: each stack's documented ports, the destination's QEMU range, --ports extras."""

from __future__ import annotations

import pytest

from verifier.errors import ExitCode, UsageError
from verifier.profiles import ports_for

QEMU_DEFAULT = (49152, 49215)  # libvirt qemu.conf migration_port_min / migration_port_max defaults


@pytest.mark.parametrize(
    ("profile", "ports"),
    [
        ("qemu", (QEMU_DEFAULT,)),
        ("libxl", ((49152, 49216),)),
        ("xend", ((8002, 8002), (8003, 8003))),  # relocation, and its SSL port
        ("proxmox", ((60000, 60050),)),
        ("tunnel", ((16509, 16509), (16514, 16514), (22, 22))),  # libvirtd tcp, libvirtd tls, ssh
    ],
)
def test_profile_ports(profile: str, ports: tuple) -> None:
    assert ports_for(profile) == ports


def test_qemu_adds_the_destinations_range() -> None:
    assert ports_for("qemu", dest_range=(50000, 50063)) == (QEMU_DEFAULT, (50000, 50063))
    # The default range read back from the destination is not listed twice.
    assert ports_for("qemu", dest_range=QEMU_DEFAULT) == (QEMU_DEFAULT,)
    assert ports_for("qemu", dest_range=(65535, 65535)) == (QEMU_DEFAULT, (65535, 65535))


@pytest.mark.parametrize("bad", [(None, None), (50000, None), (None, 50000), (50010, 50000), (0, 10), (60000, 70000)])
def test_qemu_ignores_an_unreadable_or_invalid_range(bad: tuple) -> None:
    assert ports_for("qemu", dest_range=bad) == (QEMU_DEFAULT,)


def test_only_qemu_uses_the_destination_range() -> None:
    assert ports_for("proxmox", dest_range=(50000, 50063)) == ((60000, 60050),)


def test_extra_ports_are_appended_once() -> None:
    extra = ((22, 22), (2222, 2222), (2222, 2222))
    assert ports_for("tunnel", extra) == ((16509, 16509), (16514, 16514), (22, 22), (2222, 2222))
    got = ports_for("qemu", ((50000, 50063), (5900, 5999)), (50000, 50063))
    assert got == (QEMU_DEFAULT, (50000, 50063), (5900, 5999))


def test_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        ports_for("vmware")
    assert "vmware" in err.value.message
    assert err.value.exit_code == ExitCode.USAGE
    assert all(p in (err.value.hint or "") for p in ("qemu", "libxl", "xend", "proxmox", "tunnel"))
