"""Port profiles: which ports carry a migration stream, per hypervisor stack (design.md section 4)."""

from __future__ import annotations

from verifier.capture.counting import PortRanges
from verifier.errors import UsageError

PROFILES: dict[str, PortRanges] = {
    "qemu": ((49152, 49215),),  # libvirt QEMU migration_port_min..max default; NBD shares it
    "libxl": ((49152, 49216),),  # libvirt's Xen driver
    "xend": ((8002, 8002), (8003, 8003)),  # legacy xend relocation (8003: SSL)
    "proxmox": ((60000, 60050),),  # Proxmox insecure migration
    "tunnel": ((16509, 16509), (16514, 16514), (22, 22)),  # VIR_MIGRATE_TUNNELLED: libvirtd tcp/tls, ssh
}


def merge(*groups: PortRanges) -> PortRanges:
    seen: list[tuple[int, int]] = []
    for group in groups:
        for rng in group:
            if rng not in seen:
                seen.append(rng)
    return tuple(seen)


def ports_for(
    profile: str, extra: PortRanges = (), dest_range: tuple[int | None, int | None] = (None, None)
) -> PortRanges:
    """The profile's ports, the destination's configured QEMU range (qemu profile), then --ports."""
    if profile not in PROFILES:
        raise UsageError(f"unknown --profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    base = PROFILES[profile]
    lo, hi = dest_range
    if profile == "qemu" and lo and hi and 1 <= lo <= hi <= 65535:
        base = merge(base, ((lo, hi),))
    return merge(base, extra)


def ports_text(ports: PortRanges) -> str:
    """49152-49215,8002: the --ports syntax, for messages and reports."""
    return ",".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in ports)


def parse_ports(text: str) -> PortRanges:
    """`--ports 49152-49215,8002` -> ((49152, 49215), (8002, 8002)); a usage error otherwise."""
    ranges = []
    for part in text.split(","):
        lo_s, sep, hi_s = part.strip().partition("-")
        try:
            lo, hi = int(lo_s), int(hi_s) if sep else int(lo_s)
        except ValueError:
            raise UsageError(f"--ports {text!r} is malformed", hint="use e.g. 49152-49215,8002") from None
        # Port 0 is allowed: a SYN to port 0 is a real frame, and 0-65535 must mean every port.
        if not (0 <= lo <= hi <= 65535):
            raise UsageError(f"--ports range {part!r} is outside 0-65535 or reversed", hint="use e.g. 49152-49215")
        ranges.append((lo, hi))
    return tuple(ranges)


def free_range(taken: set[int], size: int = 64, start: int = 49152) -> tuple[int, int] | None:
    """The first block of SIZE ports from START (libvirt's default is 49152-49215, 64 ports) that
    holds none of TAKEN: a migration_port_min/max no other program on this host uses."""
    lo = start
    while lo + size - 1 <= 65535:
        block = range(lo, lo + size)
        clash = [p for p in taken if p in block]
        if not clash:
            return lo, lo + size - 1
        lo = max(clash) + 1
    return None
