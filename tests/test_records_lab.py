"""Records from real lab runs: compare two runs, and analyze a hand-made tcpdump capture of a real
migration against tshark's conversation statistics and against the live run's own counts."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, VP, guest_home, in_node, verify_path

pytestmark = pytest.mark.lab
CONV_ROW = re.compile(
    r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+[\d,.]+ \w+\s+(\d+)\s+[\d,.]+ \w+\s+(\d+)\s+"
    r"(?P<total>[\d,.]+) (?P<unit>\w+)"
)
UNITS = {"bytes": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}


def _host(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VP, *argv], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_compare_lan_run_with_san_run(lab: None, tmp_path: Path) -> None:
    code, lan, err = verify_path("node1", "vm01", "node2", "--expect", "san0", "--round-trip", tmp=tmp_path)
    assert code == 1, err
    code, san, err = verify_path(
        "node1", "vm01", "node2", "--expect", "san0", "--via", "san0", "--round-trip", tmp=tmp_path
    )
    assert code == 0, err
    worse = _host("compare", san["run_dir"], lan["run_dir"], "--chart", str(tmp_path / "cmp.png"))
    assert worse.returncode == 1, worse.stderr
    assert worse.stdout.startswith("path changed: san0 => br0 -> eth0")
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    better = _host("compare", lan["run_dir"], san["run_dir"])
    assert better.returncode == 0 and better.stdout.startswith("path changed")
    same = _host("compare", san["run_dir"], san["run_dir"], "--max-slowdown", "5")
    assert same.returncode == 0 and same.stdout.startswith("path unchanged")
    listed = _host("runs", "--captures-dir", str(tmp_path))
    rows = listed.stdout.splitlines()[1:]
    assert len(rows) == 2 and " fail " in rows[0] and " pass " in rows[1], listed.stdout
    html = _host("report", san["run_dir"], "--format", "html", "-o", str(tmp_path / "r.html"))
    assert html.returncode == 0 and "data:image/png;base64" in (tmp_path / "r.html").read_text()


def _tshark_conversations(pcap: Path, port: int) -> tuple[int, float, float]:
    """(frames, bytes as displayed, how much the display can hide) over tshark -z conv,tcp rows.

    tshark 4.0 shows sizes cut to whole units ("102 MB" for 102.9 MB): each row may hide up to one unit."""
    # Only the migration server's port: a libvirtd client whose ephemeral port fell in the range
    # would match the capture filter too, and is rightly not part of the stream.
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-q", "-z", f"conv,tcp,tcp.port=={port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    frames, shown, hidden = 0, 0.0, 0.0
    for line in out.splitlines():
        m = CONV_ROW.match(line)
        if m:
            frames += int(m.group(7))
            shown += float(m["total"].replace(",", "")) * UNITS[m["unit"]]
            hidden += UNITS[m["unit"]]
    return frames, shown, hidden


def _tshark_exact(pcap: Path, port: int) -> dict[str, int]:
    """Exact bytes per TCP conversation, from tshark's own dissection (what conv,tcp adds up)."""
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(pcap),
            "-Y",
            f"tcp.port=={port}",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "frame.len",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    per: dict[str, int] = defaultdict(int)
    for line in out.splitlines():
        stream, length = line.split("\t")
        per[stream] += int(length)
    return per


def test_analyze_a_tcpdump_capture_of_a_real_migration(lab: None, tmp_path: Path) -> None:
    pcap = tmp_path / "san0.pcap"
    dump = subprocess.Popen(
        [
            VP,
            "lab",
            "exec",
            "node1",
            "--",
            "tcpdump",
            "-i",
            "san0",
            "-s",
            "96",
            "-n",
            "-w",
            str(pcap),
            "tcp and portrange 49152-49215",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dump.stderr is not None and "listening" in dump.stderr.readline()
    code, live, err = verify_path("node1", "vm01", "node2", "--via", "san0", tmp=tmp_path / "live")
    dump.send_signal(signal.SIGINT)
    dump.communicate(timeout=30)
    guest_home()
    assert code == 0, err
    pcapng = tmp_path / "san0.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True)
    processed = str(live["migration"]["data_processed"])
    results: dict[str, dict[str, Any]] = {}
    for path in (pcap, pcapng):
        proc = _host(
            "analyze",
            str(path),
            "--iface-map",
            f"{path}=san0",
            "--data-processed",
            processed,
            "--expect",
            "san0",
            "--json",
            "--captures-dir",
            str(tmp_path / "offline"),
        )
        assert proc.returncode == 0, proc.stderr
        results[path.suffix] = json.loads(proc.stdout)
    offline = results[".pcap"]
    san0 = next(i for i in offline["interfaces"] if i["name"] == "san0")
    ours = san0["bytes_tx"] + san0["bytes_rx"]
    # The same numbers from the pcapng copy of the file.
    again = next(i for i in results[".pcapng"]["interfaces"] if i["name"] == "san0")
    assert (again["bytes_tx"] + again["bytes_rx"], again["packets"]) == (ours, san0["packets"])
    # tshark: conv,tcp frame totals exactly, its (rounded) byte display, and exact bytes per conversation.
    (port,) = offline["stream"]["server_ports"]
    frames, shown, hidden = _tshark_conversations(pcap, port)
    assert san0["packets"] == frames
    assert shown <= ours < shown + hidden, (shown, ours, hidden)
    exact = sum(_tshark_exact(pcap, port).values())
    assert abs(exact - ours) <= 0.001 * exact
    # ... and the live run's counts for the same link.
    live_san0 = next(i for i in live["interfaces"] if i["name"] == "san0")
    live_bytes = live_san0["bytes_tx"] + live_san0["bytes_rx"]
    assert abs(live_bytes - ours) <= 0.001 * live_bytes, (live_bytes, ours)
    assert offline["observed_interface"] == "san0" and offline["verdict"] == "pass"
    assert 0.9 <= offline["coverage"]["ratio"] <= 1.1
    assert in_node("node1", "true").returncode == 0
