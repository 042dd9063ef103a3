"""Shared fixtures: the real two-node lab, and helpers that run verify-path inside a node.

Lab tests are marked `lab`. Without root or the lab's packages they skip, except under
VERIFY_PATH_REQUIRE_LAB=1 (set by .ci/run), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
VP = str(Path(sys.executable).parent / "verify-path")


def _lab_problem() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    for tool in ("libvirtd", "qemu-system-x86_64", "ip", "virsh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make install)"
    if not Path(VP).exists():
        return "verify-path is not installed in the venv (make install)"
    return None


def require_lab() -> None:
    problem = _lab_problem()
    if problem:
        if os.environ.get("VERIFY_PATH_REQUIRE_LAB") == "1":
            pytest.fail(f"lab test cannot run: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def lab_session() -> Iterator[None]:
    """Tears the lab down once the session ends (unless VERIFY_PATH_KEEP_LAB=1)."""
    yield
    if _lab_problem() is None and os.environ.get("VERIFY_PATH_KEEP_LAB") != "1":
        from verifier.lab import control

        control.down(progress=lambda _m: None)


def lab_up(**options: Any) -> None:
    from verifier.lab import control

    control.up(control.LabOptions(**options), progress=lambda _m: None)


def guest_places() -> dict[str, dict[str, str]]:
    """guest -> {node -> state} for every guest the current lab was built with."""
    from verifier.lab import control, guest, spec

    return guest.locate_all({n: spec.socket_uri(n) for n in spec.NODES}, control.guest_names(), others=False)


def running_on() -> dict[str, list[str]]:
    """guest -> the nodes where it runs (a migrated guest stays defined, shut off, on its source)."""
    return {
        name: sorted(n for n, state in where.items() if state == "running") for name, where in guest_places().items()
    }


def guest_home() -> None:
    """Put every lab guest (vm01, and vm02.. with --guests) back on node1, running, if a test
    left it on node2."""
    from verifier.lab import spec

    # Home over san0: a guest that dirties memory faster than the LAN carries would never
    # converge on the way back over the default path.
    home = f"tcp://{spec.link('san0').address('node1')}"
    for name, where in guest_places().items():
        if where.get("node2") == "running" and where.get("node1") != "running":
            virsh("node2", "migrate", "--live", "--p2p", "--migrateuri", home, name, "qemu+tcp://node1/system")
    places = guest_places()
    away = {name: where for name, where in places.items() if where.get("node1") != "running"}
    assert not away, f"guests not running on node1: {away}"


@pytest.fixture
def lab(lab_session: None) -> Iterator[None]:
    """The default lab, up and with vm01 running on node1."""
    require_lab()
    lab_up()
    guest_home()
    yield


@pytest.fixture
def lab_two_guests(lab_session: None) -> Iterator[None]:
    """A lab built with --guests 2: vm01 and vm02 running on node1. Changing the guest count is a
    rebuild, so tests that use this are best kept next to each other."""
    require_lab()
    lab_up(guests=2)
    guest_home()
    yield


def in_node(node: str, *argv: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [VP, "lab", "exec", node, "--", *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check:
        assert proc.returncode == 0, f"{argv} failed ({proc.returncode}): {proc.stderr}"
    return proc


def virsh(node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return in_node(node, "virsh", "-c", f"qemu+tcp://{node}/system", *argv, check=True)


def verify_path(node: str, *argv: str, tmp: Path) -> tuple[int, dict[str, Any], str]:
    """Run the main job inside NODE with --json; return (exit code, report, stderr)."""
    proc = in_node(node, VP, *argv, "--json", "--captures-dir", str(tmp))
    try:
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        pytest.fail(f"not JSON on stdout: {proc.stdout[:500]!r}; stderr: {proc.stderr[-500:]}")
    return proc.returncode, report, proc.stderr


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
