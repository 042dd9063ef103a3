"""The counter's object, loaded: whether it loads here at all (available(), the kernel verifier's
own answer, with the reason when not), and that test load kept for the capture that follows.

Loading and verifying count.bpf.o is the engine's largest fixed cost (about 0.01 s of CPU, most
of it the kernel's verifier); a run asks available(keep=True) when it chooses its engine and then
starts the capture, and take() hands the capture the object available() loaded, so the run pays
for one load, not two.
"""

from __future__ import annotations

import errno
import platform
from pathlib import Path

from verifier.capture.ebpf import loader
from verifier.capture.ebpf.build import OBJECT

PROGRAMS = ["vp_ingress", "vp_egress"]

_spare: dict[Path, loader.BpfObject] = {}  # available()'s loads, not yet taken


def take(obj: Path) -> loader.BpfObject:
    """A freshly loaded object (maps empty, nothing attached): available()'s, or a new one."""
    spare = _spare.pop(obj, None)
    return spare if spare is not None else loader.BpfObject(obj, PROGRAMS)


def _kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def available(obj: Path = OBJECT, keep: bool = False) -> str | None:
    """None when this engine can run here, else why not (then fall back to the ring engine).
    KEEP: a capture follows, so the loaded object is kept for take(); else it is closed at once
    (a kept one that nobody takes stays loaded, unattached, until the process ends)."""
    if _kernel_version() < (6, 6):
        return f"kernel {platform.release()} has no tcx hooks (needs 6.6)"
    if not obj.exists():
        return f"{obj} is missing (make install builds it: python -m verifier.capture.ebpf.build)"
    try:
        loaded = take(obj)  # the verifier's own answer, under its own rules
    except loader.BpfError as exc:
        if exc.errno == errno.EPERM:
            lockdown = Path("/sys/kernel/security/lockdown")
            mode = lockdown.read_text().strip() if lockdown.exists() else ""
            if "[confidentiality]" in mode or "[integrity]" in mode:
                return f"kernel lockdown forbids eBPF here ({mode})"
            return "loading eBPF needs CAP_BPF and CAP_NET_ADMIN (root)"
        return f"the eBPF counter does not load: {exc.strerror or exc}"
    except OSError as exc:  # libbpf.so.1 missing
        return f"libbpf is not usable: {exc}"
    if keep:
        _spare[obj] = loaded
    else:
        loaded.close()
    return None
