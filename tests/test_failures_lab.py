"""Failure and bad input, provoked for real in the lab: exit codes, one-line errors, the guest's
whereabouts, and what is stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import VP, guest_home, in_node, lab_up, virsh

from verifier.capture import readers
from verifier.capture.frames import header_length
from verifier.lab import control, guest

pytestmark = pytest.mark.lab


def _vp(*argv: str, captures: Path) -> subprocess.CompletedProcess[str]:
    return in_node("node1", VP, *argv, "--captures-dir", str(captures))


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("verify-path: error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


def _guest_untouched(captures: Path) -> None:
    assert "running" in virsh("node1", "domstate", "vm01").stdout
    assert not captures.exists() or not any(captures.iterdir()), list(captures.iterdir())


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["nosuchvm", "node2"], 2, "no domain named 'nosuchvm'"),
        (["vm01; touch /tmp/verify-path-pwned $(id) ünïcode \"'", "node2"], 2, "no domain named"),
        (["vm01", "nosuchhost"], 2, "does not resolve"),
        (["vm01", "node1"], 2, "destination is the source host"),
        (["vm01", "node2", "--dest-uri", "qemu+tcp://node2:1/system"], 4, "cannot reach the destination libvirtd"),
        (["vm01", "node2", "--connect", "qemu+tcp://node1:1/system"], 4, "cannot reach the source libvirtd"),
        (["vm01", "node2", "--interfaces", "san0,nosuch0"], 2, "missing interface(s): nosuch0"),
        (["vm01", "node2", "--via", "eth0"], 2, "the interface has no address"),
        (["vm01", "node2", "--via", "lo"], 2, "no address of node2"),
        (["vm01", "node2", "--ports", "1-2-3"], 2, "--ports"),
        (["vm01", "node2", "--expect-net", "san0"], 2, "--expect-net"),
        (["vm01", "node2", "--migrate-uri", "tcp:"], 2, "names no host"),
        (["vm01", "node2", "--role", "nosuch0=x"], 2, "--role names missing interface"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    lab: None, tmp_path: Path, argv: list[str], code: int, needle: str
) -> None:
    captures = tmp_path / "captures"
    _one_line_error(_vp(*argv, captures=captures), code, needle)
    _guest_untouched(captures)
    assert not Path("/tmp/verify-path-pwned").exists()


def test_vm_not_running_and_vm_already_migrating(lab: None, tmp_path: Path) -> None:
    xml = tmp_path / "vm02.xml"
    xml.write_text(guest.domain_xml("vm02", None))
    virsh("node1", "define", str(xml))
    try:
        _one_line_error(_vp("vm02", "node2", captures=tmp_path / "c1"), 2, "is not running")
    finally:
        virsh("node1", "undefine", "vm02")
    slow = subprocess.Popen(
        [
            VP,
            "lab",
            "exec",
            "node1",
            "--",
            "virsh",
            "-c",
            "qemu+tcp://node1/system",
            "migrate",
            "--live",
            "--p2p",
            "--bandwidth",
            "5",
            "vm01",
            "qemu+tcp://node2/system",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while "Unbounded" not in virsh("node1", "domjobinfo", "vm01").stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        _one_line_error(_vp("vm01", "node2", captures=tmp_path / "c2"), 2, "already has a job in progress")
    finally:
        in_node("node1", "virsh", "-c", "qemu+tcp://node1/system", "domjobabort", "vm01")
        slow.wait(60)
    guest_home()


def test_without_cap_net_raw_nothing_is_migrated(lab: None, tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    proc = in_node(
        "node1",
        "capsh",
        "--drop=cap_net_raw",
        "--",
        "-c",
        'exec "$0" "$@"',
        VP,
        "vm01",
        "node2",
        "--captures-dir",
        str(captures),
    )
    _one_line_error(proc, 4, "CAP_NET_RAW")
    _guest_untouched(captures)


def _mount_tmpfs(path: Path, *options: str) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], check=True)


def test_read_only_captures_dir_refuses_before_migrating(lab: None, tmp_path: Path) -> None:
    captures = tmp_path / "ro"
    _mount_tmpfs(captures, "ro", "size=1m")
    try:
        _one_line_error(_vp("vm01", "node2", captures=captures), 4, "cannot create a run directory")
        assert "running" in virsh("node1", "domstate", "vm01").stdout
    finally:
        subprocess.run(["umount", str(captures)], check=True)


def test_full_captures_dir_costs_the_pcaps_not_the_verdict(lab: None, tmp_path: Path) -> None:
    captures = tmp_path / "full"
    _mount_tmpfs(captures, "size=96k")
    try:
        # Every frame's headers (--capture full): 96 KiB cannot hold them.
        proc = _vp(
            "vm01", "node2", "--via", "san0", "--expect", "san0", "--capture", "full", "--json", captures=captures
        )
        guest_home()
        assert "Traceback" not in proc.stderr
        report = json.loads(proc.stdout)
        assert report["verdict"] == "pass" and proc.returncode in (0, 4), proc.stderr
        problems = [f for f in report["findings"] if f["code"] == "capture-problem"]
        assert problems and "No space left" in problems[0]["message"]
        run = Path(report["run_dir"])
        if proc.returncode == 0:
            assert json.loads((run / "run.json").read_text())["verdict"] == "pass"
        for file in run.glob("*.pcap"):
            _linktype, frames = readers.read_pcap(file)
            sum(1 for _ in frames)  # still a valid capture file
    finally:
        subprocess.run(["umount", str(captures)], check=True)


def _start_slow(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            VP,
            "lab",
            "exec",
            "node1",
            "--",
            VP,
            "vm01",
            "node2",
            "--via",
            "san0",
            "--bandwidth",
            "5",
            "--json",
            "--captures-dir",
            str(tmp_path),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "migrating" in line and "%" in line:
            return proc
    raise AssertionError(f"the migration never started: {proc.communicate()}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_aborts_the_job_keeps_the_guest_and_stores_the_partial_run(
    lab: None, tmp_path: Path, sig: int
) -> None:
    proc = _start_slow(tmp_path)
    time.sleep(1)
    proc.send_signal(sig)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # a second press while cleaning up must not skip the cleanup
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["verdict"] == "interrupted"
    assert report["migration"]["status"] == "interrupted" and report["migration"]["guest_location"] == "source"
    assert json.loads((Path(report["run_dir"]) / "run.json").read_text())["verdict"] == "interrupted"
    assert "running" in virsh("node1", "domstate", "vm01").stdout
    assert "vm01" not in virsh("node2", "list").stdout


@pytest.mark.parametrize("how", ["destination libvirtd killed", "san0 cut"])
def test_a_migration_failing_midway_is_a_stored_failure(lab: None, tmp_path: Path, how: str) -> None:
    if how == "san0 cut":
        # A cut link leaves TCP retransmitting for tcp_retries2 (~15 min by default): shorten it in
        # node1's namespace so QEMU's socket fails within seconds, as a real cut eventually does.
        in_node("node1", "sysctl", "-qw", "net.ipv4.tcp_retries2=3", check=True)
    proc = _start_slow(tmp_path)
    time.sleep(1)
    if how == "san0 cut":
        in_node("node1", "ip", "link", "set", "san0", "down", check=True)
    else:
        os.kill(int(control.read_state()["pids"]["node2"]), signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    if how == "san0 cut":
        in_node("node1", "ip", "link", "set", "san0", "up", check=True)
        in_node("node1", "sysctl", "-qw", "net.ipv4.tcp_retries2=15", check=True)
    try:
        assert proc.returncode == 5, err
        report: dict[str, Any] = json.loads(out)
        assert report["migration"]["status"] == "failed" and report["migration"]["error"]
        assert report["migration"]["guest_location"] == "source"
        assert any(f["code"] == "migration-failed" and "source" in f["fix"] for f in report["findings"])
        assert report["migration"]["data_processed"], "what QEMU had sent before the failure"
        san0 = next(i for i in report["interfaces"] if i["name"] == "san0")
        assert san0["bytes_tx"] > 0  # the counts up to the failure
        stored = json.loads((Path(report["run_dir"]) / "run.json").read_text())
        assert stored["migration"]["status"] == "failed"
        assert "running" in virsh("node1", "domstate", "vm01").stdout
    finally:
        lab_up()  # node2's libvirtd may be gone: rebuild if so (a no-op otherwise)
        guest_home()


def test_a_second_run_on_the_same_host_refuses_with_a_clear_message(lab: None, tmp_path: Path) -> None:
    first = _start_slow(tmp_path / "first")
    try:
        second = _vp("vm01", "node2", "--via", "san0", captures=tmp_path / "second")
        _one_line_error(second, 4, f"another verify-path run (pid {first.pid}) is migrating")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    guest_home()


def test_captures_are_headers_only_private_and_the_lan_stream_is_flagged(lab: None, tmp_path: Path) -> None:
    proc = _vp("vm01", "node2", "--capture", "full", "--json", captures=tmp_path)
    guest_home()
    report = json.loads(proc.stdout)
    run = Path(report["run_dir"])
    assert oct(run.stat().st_mode & 0o777) == "0o700"
    for file in run.rglob("*"):
        assert oct(file.stat().st_mode & 0o777) == ("0o700" if file.is_dir() else "0o600"), file
    records = 0
    for file in run.rglob("*.pcap"):
        linktype, frames = readers.read_pcap(file)
        for _ts, data, _orig in frames:
            # Headers only: no record holds a byte past its TCP header (guest memory).
            assert len(data) == header_length(data, linktype), (file, len(data))
            records += 1
    assert records > 1000
    assert any(f["code"] == "cleartext-on-shared-link" for f in report["findings"])
    # The stream's kind still comes from its first bytes, kept in memory only.
    assert report["stream"]["kinds"]["qemu-main"]["connections"] == 1


def test_keep_payload_warns_and_keeps_whole_frames(lab: None, tmp_path: Path) -> None:
    proc = _vp("vm01", "node2", "--via", "san0", "--keep-payload", "--json", captures=tmp_path)
    guest_home()
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stderr and "guest's memory" in proc.stderr
    report = json.loads(proc.stdout)
    _linktype, frames = readers.read_pcap(Path(report["run_dir"]) / "san0.pcap")
    assert max(len(data) for _ts, data, _orig in frames) > 1500


def test_lab_down_after_up_was_killed_midway(lab: None) -> None:
    control.down(progress=lambda _m: None)
    up = subprocess.Popen([VP, "lab", "up"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert up.stderr is not None
    for line in up.stderr:
        if "waiting for libvirtd" in line:  # namespaces, links and daemons exist by now
            break
    up.kill()
    up.wait()
    assert control.down(progress=lambda _m: None) == []
    from test_lab import _lab_leftovers

    assert _lab_leftovers() == []
    lab_up()
