"""The offline-analysis case: `verify-path analyze` against `tshark -z conv,tcp` on one headers-only file.

Needs neither the lab nor root: a synthetic capture of one migration-like stream is written to
tmpfs and both tools read it. Run once per bench, not per run (it takes minutes at 1 GB).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from verifier.capture.frames import LINKTYPE_ETHERNET
from verifier.capture.pcap import PcapWriter

VENV_BIN = Path(sys.executable).parent


def synthetic_pcap(path: Path, megabytes: int) -> int:
    """A headers-only capture of one migration-like stream (3 data frames to 1 ACK), MEGABYTES big."""

    def frame(src: str, dst: str, sport: int, dport: int, flags: int, ip_len: int) -> bytes:
        eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst)
        )
        tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 65535, 0, 0)
        return eth + ip + tcp + b"QEVM" + b"\x00" * 70

    syn = frame("198.18.0.11", "198.18.0.12", 40000, 49152, 0x02, 40)[:54]
    data = frame("198.18.0.11", "198.18.0.12", 40000, 49152, 0x10, 65000)[:128]
    ack = frame("198.18.0.12", "198.18.0.11", 49152, 40000, 0x10, 40)[:54]
    writer = PcapWriter(path, LINKTYPE_ETHERNET, 128)
    ts = 1_700_000_000.0
    writer.write(ts, syn, 60)
    frames = 1
    target = megabytes * 1_000_000
    while writer.frames * 130 < target:
        for _ in range(3):
            ts += 0.00002
            writer.write(ts, data, 65014)
        writer.write(ts, ack, 60)
        frames += 4
    writer.close()
    return frames


def analyze_case(megabytes: int, tmp: Path) -> dict[str, Any]:
    """verify-path analyze vs tshark -z conv,tcp on the same headers-only file."""
    path = tmp / "synthetic.pcap"
    frames = synthetic_pcap(path, megabytes)
    started = time.monotonic()
    ours = subprocess.run(
        [
            str(VENV_BIN / "verify-path"),
            "analyze",
            str(path),
            "--iface-map",
            f"{path}=san0",
            "--json",
            "--captures-dir",
            str(tmp / "analyze"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ours_s = time.monotonic() - started
    started = time.monotonic()
    theirs = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"], capture_output=True, text=True, check=True
    )
    tshark_s = time.monotonic() - started
    counted = json.loads(ours.stdout)["interfaces"][0]["packets"]
    rows = [ln for ln in theirs.stdout.splitlines() if "<->" in ln]
    return {
        "file_mb": path.stat().st_size / 1e6,
        "frames": frames,
        "ours_frames": counted,
        "tshark_rows": len(rows),
        "ours_s": ours_s,
        "tshark_s": tshark_s,
        "time_ratio": ours_s / tshark_s,
    }
