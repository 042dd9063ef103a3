"""Lab lifecycle: `up` (idempotent: no-op when healthy, else a clean rebuild), `down`, `status`.

All state lives in one directory (spec.STATE_DIR, /run/verify-path-lab by default). `down` works
from whatever is there, even after `up` was killed midway: it ends the processes that belong to
the lab (inside its namespaces, or naming its state directory), deletes the namespaces and hosts
files, removes mountpoints the lab created, then the state directory. Each step runs even if an
earlier one failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from verifier.errors import EnvironmentProblem, UsageError
from verifier.lab import daemon, dirty, guest, network, spec, sshd
from verifier.lab.system import netns_list, netns_pids, require_netns, require_root, require_tools
from verifier.runs import write_json

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabOptions:
    guest_data_mib: int = spec.DEFAULT_GUEST_DATA_MIB
    migration_hosts: tuple[tuple[str, str], ...] = ()  # (node, host)
    guests: int = 1  # vm01..vmNN, all started on node1
    dirty_mib: int = 0  # > 0: the guests boot a program that keeps rewriting this many MiB
    dirty_rate: int = 0  # MiB/s cap on that rewriting; 0: as fast as it can
    nodes: int = len(spec.NODES)  # node1..nodeN

    @property
    def guest_names(self) -> tuple[str, ...]:
        return spec.guest_names(self.guests)

    @property
    def members(self) -> tuple[str, ...]:
        return spec.nodes(self.nodes)

    def migration_host(self, node: str) -> str | None:
        return dict(self.migration_hosts).get(node)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One lab operation at a time: a second `up` or `down` waits instead of interleaving."""
    lock = state_dir.with_name(state_dir.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _state_file(state_dir: Path) -> Path:
    return state_dir / "lab.json"


def read_state(state_dir: Path = spec.STATE_DIR) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    write_json(_state_file(state_dir), state)  # atomic: a crash leaves the old state or the new


def validate(options: LabOptions) -> None:
    if not len(spec.NODES) <= options.nodes <= len(spec.ALL_NODES):
        raise UsageError(f"--nodes must be {len(spec.NODES)}..{len(spec.ALL_NODES)}, got {options.nodes}")
    if not 1 <= options.guests <= spec.GUESTS_MAX:
        raise UsageError(
            f"--guests must be 1..{spec.GUESTS_MAX}, got {options.guests}",
            hint="each guest is a 256 MiB TCG QEMU; a few are enough to make a host busy",
        )
    if options.dirty_mib:
        dirty.check_layout(options.dirty_mib, spec.GUEST_MEMORY_MIB, options.guest_data_mib)
        dirty.kernel_cmdline(options.dirty_mib, options.dirty_rate or None)  # a bad rate is a usage error now
    if not 0 <= options.guest_data_mib <= spec.GUEST_DATA_MAX_MIB:
        raise UsageError(
            f"--guest-data must be 0..{spec.GUEST_DATA_MAX_MIB} MiB, got {options.guest_data_mib}",
            hint="pick a size that fits the guest's RAM",
        )
    for node, host in options.migration_hosts:
        if node not in options.members:
            raise UsageError(
                f"--migration-host names unknown node {node!r}", hint=f"use one of {', '.join(options.members)}"
            )
        if not host or not all(c.isalnum() or c in "-._:" for c in host):
            raise UsageError(f"--migration-host value {host!r} is not a host name or address")


def up(options: LabOptions, state_dir: Path = spec.STATE_DIR, progress: Progress = print) -> str:
    """Bring the lab up; return "already up" or "built"."""
    validate(options)
    require_root()
    require_tools()
    require_netns()
    with _locked(state_dir):
        return _up(options, state_dir, progress)


def _up(options: LabOptions, state_dir: Path, progress: Progress) -> str:
    state = read_state(state_dir)
    if state and state.get("phase") == "up" and state.get("options") == _options_json(options) and healthy(state_dir):
        progress("lab already up with these options; nothing to do")
        return "already up"
    if state or state_dir.exists() or {*spec.ALL_NODES, spec.HUB} & set(netns_list()):
        progress("removing the previous lab first")
        _down(state_dir, progress=lambda _m: None)
    try:
        _build(options, state_dir, progress)
    except BaseException:
        progress("lab up failed; removing what was built")
        _down(state_dir, progress=lambda _m: None)
        raise
    return "built"


def _options_json(options: LabOptions) -> dict[str, Any]:
    # The layout version makes a lab built by older code count as different, so it is rebuilt.
    return json.loads(json.dumps(asdict(options) | {"layout": spec.LAYOUT_VERSION}))


def _build(options: LabOptions, state_dir: Path, progress: Progress) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    state: dict[str, Any] = {
        "phase": "building",
        "options": _options_json(options),
        "pids": {},
        "created_dirs": [],
        "started": time.time(),
    }
    # Record the mountpoints before creating them, so a crash right after still removes them.
    created = daemon.missing_mountpoints() + ([] if sshd.PRIVSEP_DIR.exists() else [sshd.PRIVSEP_DIR])
    state["created_dirs"] = [str(p) for p in created]
    _write_state(state_dir, state)
    for path in created:
        path.mkdir(parents=True, exist_ok=True)

    members = options.members
    progress(f"creating namespaces {', '.join(members)} and links br0/eth0, ring1, san0, san1 (bridged in {spec.HUB})")
    network.build(members)
    # Before the daemons start: `ip netns exec` binds /etc/netns/NODE/ssh over /etc/ssh only then.
    sshd.write_config(members, state_dir)
    data_files: dict[str, Path | None] = {name: None for name in options.guest_names}
    if options.guest_data_mib:
        progress(f"writing {options.guest_data_mib} MiB of random data per guest")
        for name in options.guest_names:
            # Its own file per guest: identical RAM would let nothing tell two streams apart by
            # content, and a shared file would tie one guest's data to another's lifetime.
            path = spec.guest_data_file(name, state_dir)
            guest.write_data_file(path, options.guest_data_mib)
            data_files[name] = path
    for node in members:
        daemon.write_config(node, state_dir, options.migration_host(node), members)
        pid = daemon.start(node, state_dir)
        state["pids"][node] = pid
        _write_state(state_dir, state)
    state["sshd"] = {}
    for node in members:
        progress(f"waiting for libvirtd on {node}, then starting its sshd")
        daemon.wait_ready(node, state_dir, state["pids"][node])
        state["sshd"][node] = sshd.start(node, state_dir, state["pids"][node])
        _write_state(state_dir, state)
    for node in members:
        sshd.wait_ready(node, state_dir, state["sshd"][node])
    progress(f"defining and starting {', '.join(options.guest_names)} on node1")
    os_xml = None
    if options.dirty_mib:
        # One kernel for every node: the destination QEMU restarts the guest with the same -kernel path.
        kernel = dirty.build(state_dir)
        os_xml = dirty.os_xml(kernel, options.dirty_mib, options.dirty_rate or None)
        progress(
            f"guests rewrite {options.dirty_mib} MiB"
            + (f" at {options.dirty_rate} MiB/s" if options.dirty_rate else "")
        )
    for name in options.guest_names:
        xml = guest.domain_xml(name, data_files[name], os_xml)
        guest.define_and_start(spec.socket_uri("node1", state_dir), xml)
    state["phase"] = "up"
    _write_state(state_dir, state)
    progress("lab is up: " + ", ".join(f"{n} {spec.libvirt_uri(n)}" for n in members))


def healthy(state_dir: Path = spec.STATE_DIR) -> bool:
    state = read_state(state_dir)
    if not state or state.get("phase") != "up":
        return False
    members = members_of(state)
    if not {*members, spec.HUB} <= set(netns_list()):
        return False
    pids = [state["pids"].get(n, 0) for n in members] + [state.get("sshd", {}).get(n, 0) for n in members]
    return all(daemon.alive(int(pid or 0)) for pid in pids)


def members_of(state: dict[str, Any] | None) -> tuple[str, ...]:
    """The nodes a lab state was built with (two when it does not say)."""
    count = ((state or {}).get("options") or {}).get("nodes", len(spec.NODES))
    try:
        return spec.nodes(count if isinstance(count, int) else len(spec.NODES))
    except ValueError:
        return spec.NODES


def nodes(state_dir: Path = spec.STATE_DIR) -> tuple[str, ...]:
    """The nodes of the current lab."""
    return members_of(read_state(state_dir))


def lab_pids(state_dir: Path) -> list[int]:
    """Processes that belong to the lab: inside its namespaces, or naming its state directory."""
    pids: set[int] = set()
    present = set(netns_list())
    for node in (*spec.ALL_NODES, spec.HUB):
        if node in present:
            pids.update(netns_pids(node))
    marker = str(state_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            pids.add(int(entry.name))
    pids.discard(os.getpid())
    return sorted(pids)


def down(state_dir: Path = spec.STATE_DIR, progress: Progress = print) -> list[str]:
    """Remove everything the lab made; return problems that remain (empty means clean)."""
    require_root()
    with _locked(state_dir):
        return _down(state_dir, progress)


def _down(state_dir: Path, progress: Progress) -> list[str]:
    problems: list[str] = []
    state = read_state(state_dir) or {}
    pids = lab_pids(state_dir)
    if pids:
        progress(f"stopping {len(pids)} lab process(es)")
        stuck = daemon.stop_pids(pids)
        problems += [f"process {p} would not exit" for p in stuck]
    progress("deleting namespaces and hosts files")
    problems += network.remove()
    for path in reversed(state.get("created_dirs", [])):
        try:
            Path(path).rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"could not remove {path}: {exc.strerror}")
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)
        if state_dir.exists():
            problems.append(f"could not remove {state_dir}")
    progress("lab is down" if not problems else "lab down left: " + "; ".join(problems))
    return problems


def guest_names(state_dir: Path = spec.STATE_DIR) -> tuple[str, ...]:
    """The guests the current lab was built with (vm01 alone when nothing says otherwise)."""
    options = (read_state(state_dir) or {}).get("options") or {}
    count = options.get("guests", 1)
    return spec.guest_names(count if isinstance(count, int) and 1 <= count <= spec.GUESTS_MAX else 1)


def require_up(state_dir: Path = spec.STATE_DIR) -> None:
    if not healthy(state_dir):
        raise EnvironmentProblem("the lab is not up", hint="run `verify-path lab up` first")
