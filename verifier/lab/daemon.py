"""One libvirtd per lab node: its config files, its private mounts and hostname, start and stop.

Each daemon runs in its node's network namespace plus its own mount and UTS namespaces
(design.md section 5), so two daemons share the machine without sharing /etc/libvirt,
/run/libvirt or /var/lib/libvirt, and each reports its own hostname to migration peers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from verifier.errors import EnvironmentProblem
from verifier.lab import spec


def write_config(node: str, state_dir: Path, migration_host: str | None, members: tuple[str, ...] = spec.NODES) -> Path:
    """Create the node's private libvirt tree and return its libvirtd.conf path."""
    base = spec.node_dir(node, state_dir)
    for sub, _target in spec.LIBVIRT_PATHS:
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "etc" / "qemu").mkdir(exist_ok=True)
    conf = base / "etc" / "libvirtd.conf"
    conf.write_text(
        "listen_tls = 0\n"
        "listen_tcp = 1\n"
        'auth_tcp = "none"\n'
        'auth_unix_rw = "none"\n'
        f'host_uuid = "{spec.host_uuid(node)}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )
    qemu = [
        'security_driver = "none"',
        'user = "root"',
        'group = "root"',
        "cgroup_controllers = [ ]",
        "namespaces = [ ]",
        'stdio_handler = "file"',
        "remember_owner = 0",
    ]
    if migration_host:
        qemu.append(f'migration_host = "{migration_host}"')
    (base / "etc" / "qemu.conf").write_text("\n".join(qemu) + "\n")
    (base / "corosync.conf").write_text(spec.corosync_conf(members))
    return conf


def missing_mountpoints() -> list[Path]:
    return [Path(target) for _sub, target in spec.LIBVIRT_PATHS if not Path(target).exists()]


def start(node: str, state_dir: Path) -> int:
    """Launch libvirtd for NODE and return its PID (the exec chain keeps one PID)."""
    base = spec.node_dir(node, state_dir)
    log = (base / "daemon.log").open("ab")
    argv = [
        "ip",
        "netns",
        "exec",
        node,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        "verifier.lab.nodeinit",
        node,
        str(state_dir),
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc.pid


def wait_ready(node: str, state_dir: Path, pid: int, timeout: float = 60.0) -> None:
    from verifier.hypervisor import domains  # libvirt only through the hypervisor stage

    uri = spec.socket_uri(node, state_dir)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive(pid):
            tail = _log_tail(spec.node_dir(node, state_dir) / "daemon.log")
            raise EnvironmentProblem(f"libvirtd on {node} exited during start-up: {tail}")
        problem = domains.reachable(uri)
        if problem is None:
            return
        last = problem
        time.sleep(0.2)
    raise EnvironmentProblem(f"libvirtd on {node} did not answer within {timeout:.0f}s: {last}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes; reap it.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _state(pid) not in ("Z", "X", "")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def stop_pids(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM, wait, then SIGKILL; return the PIDs that still would not die."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _log_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
