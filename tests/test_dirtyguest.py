"""The lab's dirty-memory guest, booted under plain QEMU (TCG, no libvirt, no lab namespaces).

QEMU's calc-dirty-rate (page-sampling mode) measures how much guest RAM the running program
dirties; a capped guest must land within 25 % of its cap, an uncapped one must dirty its whole
working set within the measuring window. Page-sampling hashes random pages at the start and end
of the window, so it counts distinct pages: the working set must hold rate x window, or the
figure saturates at mib / window. dirty-bitmap mode is not used: QEMU 7.2 segfaults on it under
TCG. Skips without qemu-system-x86_64 or gcc, except under VERIFY_PATH_REQUIRE_LAB=1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from verifier.errors import EnvironmentProblem, UsageError
from verifier.lab import dirty

QEMU = "qemu-system-x86_64"
MEMORY_MIB = 256
SAMPLE_PAGES = 16384  # per GiB, QEMU 7.2's maximum: 4096 samples of 256 MiB, ~4 % noise at 40 MiB
LOW_CAP = 20


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("VERIFY_PATH_REQUIRE_LAB") == "1":
        pytest.fail(f"dirty guest test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(QEMU) is None:
        _skip_or_fail(f"{QEMU} is not installed (make install)")
    try:
        return dirty.build(tmp_path_factory.mktemp("dirtyguest"))
    except EnvironmentProblem as exc:
        _skip_or_fail(exc.one_line())
        raise


class Qmp:
    """A minimal blocking QMP client with a timeout, so a wedged QEMU fails the test."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.reader = self.sock.makefile("r")
        json.loads(self.reader.readline())  # greeting
        self.execute("qmp_capabilities")

    def execute(self, name: str, **arguments: Any) -> Any:
        self.sock.sendall(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        while True:
            reply = json.loads(self.reader.readline())
            if "error" in reply:
                raise AssertionError(f"QMP {name}: {reply['error']}")
            if "return" in reply:  # anything else is an asynchronous event
                return reply["return"]

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@contextmanager
def booted(kernel: Path, mib: int, rate: int | None) -> Iterator[tuple[Qmp, Path]]:
    # A short directory of our own: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="dirtyguest-") as tmp:
        sock, log = Path(tmp) / "qmp.sock", Path(tmp) / "serial.log"
        argv = [
            QEMU,
            "-machine", "pc",
            "-accel", "tcg",
            "-m", str(MEMORY_MIB),
            "-nodefaults",
            "-display", "none",
            "-monitor", "none",
            "-serial", f"file:{log}",
            "-qmp", f"unix:{sock},server=on,wait=off",
            "-kernel", str(kernel),
            "-append", dirty.kernel_cmdline(mib, rate),
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        qmp: Qmp | None = None
        try:
            deadline = time.monotonic() + 15
            while "dirty: running" not in (log.read_text() if log.exists() else ""):
                assert proc.poll() is None, f"QEMU exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                assert time.monotonic() < deadline, f"guest never started: {log.read_text() if log.exists() else ''}"
                time.sleep(0.05)
            qmp = Qmp(sock)
            yield qmp, log
        finally:
            if qmp is not None:
                try:
                    qmp.execute("quit")
                except (OSError, ValueError, AssertionError):
                    pass
                qmp.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()  # only the QEMU this test started
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def measure(qmp: Qmp, seconds: int) -> int:
    """QEMU's dirty rate in MiB/s (which it labels MB/s) over SECONDS, by page sampling."""
    qmp.execute("calc-dirty-rate", **{"calc-time": seconds, "sample-pages": SAMPLE_PAGES})
    deadline = time.monotonic() + seconds + 10
    while True:
        time.sleep(0.1)
        result = qmp.execute("query-dirty-rate")
        if result["status"] == "measured":
            return int(result["dirty-rate"])
        assert time.monotonic() < deadline, f"dirty rate never measured: {result}"


# The working set holds at least cap x window, so the sampled figure doesn't saturate.
@pytest.mark.parametrize(("cap", "mib"), [(LOW_CAP, 64), (50, 128)])
def test_capped_dirty_rate_is_near_the_cap(kernel: Path, cap: int, mib: int) -> None:
    with booted(kernel, mib, cap) as (qmp, log):
        rate = measure(qmp, seconds=2)
        assert qmp.execute("query-status")["status"] == "running"
        assert "error" not in log.read_text()
    assert abs(rate - cap) <= 0.25 * cap, f"cap {cap} MB/s, measured {rate} MB/s"


def test_uncapped_guest_dirties_its_whole_working_set(kernel: Path) -> None:
    mib = 128
    with booted(kernel, mib, None) as (qmp, _log):
        rate = measure(qmp, seconds=1)
        assert qmp.execute("query-status")["status"] == "running"
    # Uncapped, every page of the set is rewritten many times a second, so the sampled figure
    # saturates at mib / window: far above any low cap.
    assert rate > 2 * LOW_CAP
    assert rate >= 0.75 * mib, f"measured {rate} MB/s for a {mib} MiB working set in 1 s"


def test_cmdline_and_os_xml() -> None:
    assert dirty.kernel_cmdline(64, None) == "mib=64"
    assert dirty.kernel_cmdline(64, 0) == "mib=64"
    assert dirty.kernel_cmdline(96, 50) == "mib=96 rate=50"
    xml = dirty.os_xml(Path("/run/lab/a&b/dirty.elf"), 64, 20)
    assert "<kernel>/run/lab/a&amp;b/dirty.elf</kernel>" in xml
    assert "<cmdline>mib=64 rate=20</cmdline>" in xml
    assert "<type arch='x86_64' machine='pc'>hvm</type>" in xml
    for mib, rate in ((0, None), (64, -1), (64, dirty.MAX_RATE_MBPS + 1)):
        with pytest.raises(UsageError):
            dirty.kernel_cmdline(mib, rate)


def test_layout_keeps_clear_of_the_random_data() -> None:
    assert dirty.working_set(64, 256) == (191, 255)
    dirty.check_layout(95, 256, data_mib=96)  # data 64..160 MiB, set 160..255 MiB
    with pytest.raises(UsageError):
        dirty.check_layout(96, 256, data_mib=96)
    dirty.check_layout(253, 256)
    with pytest.raises(UsageError):
        dirty.check_layout(254, 256)


def test_build_without_gcc_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dirty.shutil, "which", lambda name: None if name == "gcc" else f"/usr/bin/{name}")
    with pytest.raises(EnvironmentProblem, match="gcc is not installed"):
        dirty.build(tmp_path)
