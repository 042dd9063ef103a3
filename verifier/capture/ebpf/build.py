"""Compile count.bpf.c into build/count.bpf.o at install time: `python -m verifier.capture.ebpf.build`.

vmlinux.h is generated from the running kernel's BTF (/sys/kernel/btf/vmlinux) because the
Debian headers for this kernel do not exist (design.md section 6); only the types of the UAPI
and of the packet headers are used from it. Needs the Debian packages clang, libbpf-dev and bpftool.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "count.bpf.c"
BUILD = HERE / "build"  # ignored by .gitignore's build/
OBJECT = BUILD / "count.bpf.o"
BTF = Path("/sys/kernel/btf/vmlinux")
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390"}


def build(out: Path = OBJECT) -> Path:
    """Generate vmlinux.h and compile; raises CalledProcessError with clang's message on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    header = out.parent / "vmlinux.h"
    with header.open("wb") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", str(BTF), "format", "c"], stdout=f, check=True)
    arch = _ARCH.get(platform.machine(), platform.machine())
    tmp = out.with_suffix(".tmp")
    subprocess.run(
        ["clang", "-O2", "-g", "-Wall", "-target", "bpf", f"-D__TARGET_ARCH_{arch}", f"-I{out.parent}"]
        # No CO-RE: the program reads only the UAPI __sk_buff and packet data, never a kernel
        # struct, so no relocation is needed and libbpf loads without the kernel's BTF (whose
        # parse cost 0.01 s of CPU at every start).
        + ["-DBPF_NO_PRESERVE_ACCESS_INDEX"]
        + ["-c", str(SOURCE), "-o", str(tmp)],
        check=True,
    )
    tmp.replace(out)  # never leave a half-written object where the engine looks
    return out


if __name__ == "__main__":
    try:
        print(build())
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"building the eBPF counter failed: {exc}")
