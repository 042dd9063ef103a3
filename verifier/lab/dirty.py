"""The lab's dirty-memory guest program: build it, and describe how the domain boots it.

A diskless guest never writes to its RAM, so a migration converges in one pass and never has
to chase dirty pages. `dirtyguest/dirty.c` is a tiny 32-bit multiboot kernel that rewrites
every 4 KiB page of a working set of MIB MiB, as fast as the vCPU goes or capped at RATE MiB/s
(MiB, like QEMU's query-dirty-rate "MB/s"). It is compiled from source at lab-up time with
gcc -m32 -ffreestanding and ld (no OS image, no gcc-multilib: it needs no libgcc), booted by
QEMU's -kernel multiboot loader (libvirt: <os><kernel>), and reads MIB and RATE from its
command line, so one binary serves every setting.

Guest memory layout (physical): the kernel at 1 MiB (under 2 MiB with its stack); the lab's
random data from 64 MiB upwards (spec.GUEST_DATA_ADDR, guest.py); the working set at the top of
RAM, ending where the multiboot memory info says RAM ends, rounded down to 1 MiB: under QEMU
with SeaBIOS that is 1 MiB below the end of RAM (measured with 128, 256, 512, 1024 MiB).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

from verifier.errors import EnvironmentProblem, UsageError
from verifier.lab import spec

SOURCE_DIR = Path(__file__).resolve().parent / "dirtyguest"
SOURCES = ("dirty.c", "dirty.ld")
KERNEL_NAME = "dirty.elf"
DEFAULT_MIB = 64
MAX_RATE_MBPS = 65535  # the guest keeps its rate arithmetic in 32 bits
TOP_RESERVED_MIB = 1  # SeaBIOS keeps the last MiB out of the multiboot mem_upper figure
KERNEL_MIB = 2  # the kernel, its stack and the multiboot info stay below this
MULTIBOOT_MAGIC = (0x1BADB002).to_bytes(4, "little")

# Freestanding 32-bit code: no libc, no libgcc (absent without gcc-multilib), no SSE (the
# guest never enables it), no PIC (it runs at its link address with paging off).
CFLAGS = (
    "-m32",
    "-march=i686",
    "-mgeneral-regs-only",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-O2",
    "-Wall",
    "-Wextra",
)
# max-page-size keeps the multiboot header at file offset 4 KiB, inside the first 8 KiB where
# the loader looks; without a build-id note nothing can be placed ahead of it.
LDFLAGS = ("-m", "elf_i386", "-nostdlib", "-z", "max-page-size=0x1000", "-z", "noexecstack", "--build-id=none")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EnvironmentProblem(
            f"{name} is not installed; the lab builds its dirty-memory guest from source",
            hint=f"apt-get install {package} (or make install)",
        )
    return path


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = next((line for line in proc.stderr.splitlines() if line.strip()), f"exit {proc.returncode}")
        raise EnvironmentProblem(
            f"{what} failed building the dirty-memory guest: {detail}",
            hint="needs gcc with -m32 support and binutils (Debian: gcc, binutils)",
        )


def _check_kernel(path: Path) -> None:
    """A 32-bit ELF with the multiboot header in its first 8 KiB, or QEMU won't boot it."""
    head = path.read_bytes()[:8192]
    is_elf32 = head[:4] == b"\x7fELF" and head[4] == 1
    if not is_elf32 or MULTIBOOT_MAGIC not in head:
        raise EnvironmentProblem(f"{path} is not a 32-bit multiboot ELF; the toolchain misbuilt the dirty guest")


def build(out_dir: Path) -> Path:
    """Compile the guest program into OUT_DIR and return the kernel's path (rebuilt every call)."""
    gcc = _tool("gcc", "gcc")
    ld = _tool("ld", "binutils")
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = out_dir / KERNEL_NAME
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".dirty-build-") as tmp:
        obj = Path(tmp) / "dirty.o"
        staged = Path(tmp) / KERNEL_NAME
        _run([gcc, *CFLAGS, "-c", str(SOURCE_DIR / "dirty.c"), "-o", str(obj)], "gcc")
        _run([ld, *LDFLAGS, "-T", str(SOURCE_DIR / "dirty.ld"), "-o", str(staged), str(obj)], "ld")
        _check_kernel(staged)
        staged.chmod(0o644)
        # Atomic replace: a QEMU reading the previous kernel never sees a half-written file.
        staged.replace(kernel)
    return kernel


def _check_args(mib: int, rate_mbps: int | None) -> None:
    if isinstance(mib, bool) or not isinstance(mib, int) or mib < 1:
        raise UsageError(f"dirty guest working set must be at least 1 MiB, got {mib!r}")
    if rate_mbps is not None and (
        isinstance(rate_mbps, bool) or not isinstance(rate_mbps, int) or not 0 <= rate_mbps <= MAX_RATE_MBPS
    ):
        raise UsageError(f"dirty guest rate must be 0..{MAX_RATE_MBPS} MB/s (0 = no cap), got {rate_mbps!r}")


def kernel_cmdline(mib: int, rate_mbps: int | None) -> str:
    """The multiboot command line: `mib=N`, plus `rate=N` for a cap (None or 0 = uncapped)."""
    _check_args(mib, rate_mbps)
    if rate_mbps:
        return f"mib={mib} rate={rate_mbps}"
    return f"mib={mib}"


def os_xml(kernel: Path, mib: int, rate_mbps: int | None) -> str:
    """The domain's <os> element: boot KERNEL (QEMU -kernel, multiboot) with MIB and RATE."""
    cmdline = kernel_cmdline(mib, rate_mbps)
    return (
        "<os>\n"
        "    <type arch='x86_64' machine='pc'>hvm</type>\n"
        f"    <kernel>{escape(str(kernel))}</kernel>\n"
        f"    <cmdline>{escape(cmdline)}</cmdline>\n"
        "  </os>"
    )


def working_set(mib: int, memory_mib: int = spec.GUEST_MEMORY_MIB) -> tuple[int, int]:
    """Where the guest puts its working set: [start, end) in MiB of guest-physical memory."""
    end = memory_mib - TOP_RESERVED_MIB
    return end - mib, end


def check_layout(mib: int, memory_mib: int = spec.GUEST_MEMORY_MIB, data_mib: int = 0) -> None:
    """Refuse a working set that would overlap the kernel or the loader's random data.

    The guest itself halts (with a message on COM1) if the set doesn't fit above its kernel,
    but it can't know about the random data, which QEMU loads at spec.GUEST_DATA_ADDR.
    """
    _check_args(mib, None)
    start, _end = working_set(mib, memory_mib)
    floor = max(KERNEL_MIB, spec.GUEST_DATA_ADDR // (1 << 20) + data_mib) if data_mib else KERNEL_MIB
    if start < floor:
        raise UsageError(
            f"a {mib} MiB dirty working set doesn't fit in {memory_mib} MiB of guest RAM"
            + (f" above {data_mib} MiB of random data" if data_mib else ""),
            hint=f"use at most {max(0, working_set(0, memory_mib)[1] - floor)} MiB",
        )
