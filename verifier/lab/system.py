"""Run host commands for the lab as argument lists (never shell strings) and check prerequisites."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from verifier.errors import EnvironmentProblem

REQUIRED_TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "unshare": "util-linux",
    "mount": "mount",
    "libvirtd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "virsh": "libvirt-clients",
    "nsenter": "util-linux",
    "sshd": "openssh-server",  # one per node: qemu+ssh:// and Ansible reach the nodes by name
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one command; on failure raise with the command and its stderr on one line."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"{argv[0]} is not installed", hint="run `make install`") from exc
    if check and proc.returncode != 0:
        err = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise EnvironmentProblem(f"`{' '.join(argv)}` failed: {err}")
    return proc


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("the lab needs root", hint="run it with sudo or as root")


def require_tools() -> None:
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise EnvironmentProblem(f"missing packages: {', '.join(missing)}", hint="run `make install` (Debian/Ubuntu)")


def require_netns() -> None:
    if not Path("/proc/self/ns/net").exists():
        raise EnvironmentProblem("this kernel has no network namespaces", hint="the lab needs CONFIG_NET_NS")


def netns_list() -> list[str]:
    proc = run(["ip", "-o", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]
