"""Rates in words: bits/s for links (how they are sold), bytes/s for memory (how libvirt counts).

MB and Mbit are decimal (10**6), as link speeds and `ethtool` are; MiB (2**20) appears only where
libvirt's own unit is MiB/s (`--bandwidth`, `virsh migrate-setspeed`).
"""

from __future__ import annotations

MB = 1_000_000
MIB = 1 << 20


def link_text(bps: float) -> str:
    """A link's rate as it is sold: "1 Gbit/s", "2.5 Gbit/s", "100 Mbit/s"."""
    if bps >= 1e9:
        return f"{bps / 1e9:.1f}".removesuffix(".0") + " Gbit/s"
    return f"{bps / 1e6:.0f} Mbit/s"


def bytes_rate(bytes_per_s: float) -> str:
    """A memory rate in MB/s (one decimal below 10 MB/s, so small rates do not read as 0)."""
    value = bytes_per_s / MB
    return f"{value:.1f} MB/s" if value < 10 else f"{value:.0f} MB/s"


def both(bps: float) -> str:
    """A measured rate in both units: "117 MB/s (938 Mbit/s)"."""
    return f"{bytes_rate(bps / 8)} ({bps / 1e6:.0f} Mbit/s)"


def size(n_bytes: float) -> str:
    """An amount of memory: "512 MiB" for whole MiB, else decimal MB."""
    if n_bytes >= MIB and n_bytes % MIB == 0:
        return f"{int(n_bytes) // MIB} MiB"
    return f"{n_bytes / MB:.0f} MB"


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
