"""live.parse_packet_stats and live.bpf_filter, checked against the kernel and against tcpdump's compiler."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess

import pytest

from verifier.capture.live import PACKET_STATISTICS, SOL_PACKET, bpf_filter, parse_packet_stats

PORTS = ((49152, 49215), (8002, 8002))
ETH_P_ALL = 0x0003


def test_parse_packet_stats_native_u32s() -> None:
    assert parse_packet_stats(struct.pack("=II", 123_456, 789)) == (123_456, 789)
    assert parse_packet_stats(struct.pack("=II", 2**32 - 1, 0)) == (2**32 - 1, 0)
    # struct tpacket_stats_v3 has a third u32 (tp_freeze_q_cnt): only the first two are read.
    assert parse_packet_stats(struct.pack("=III", 10, 3, 99)) == (10, 3)


@pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs CAP_NET_RAW")
def test_parse_packet_stats_from_a_real_socket() -> None:
    sent = 5
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as cap:
        cap.bind(("lo", 0))
        parse_packet_stats(cap.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))  # reading resets the counters
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("127.0.0.1", 0))
            for _ in range(sent):
                tx.sendto(b"stats", rx.getsockname())
        packets, drops = parse_packet_stats(cap.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    assert packets >= sent
    assert 0 <= drops <= packets


def test_bpf_filter_string() -> None:
    assert bpf_filter(PORTS) == "tcp and (portrange 49152-49215 or port 8002)"
    assert bpf_filter(((16514, 16514),)) == "tcp and (port 16514)"


def tcpdump_compile(expr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tcpdump", "-d", expr], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_bpf_filter_compiles_with_tcpdump() -> None:
    result = tcpdump_compile(bpf_filter(PORTS))
    assert result.returncode == 0, result.stderr
    program = result.stdout
    assert f"#{hex(6)} " in program  # IP protocol TCP
    for port in (49152, 49215, 8002):
        assert f"#{hex(port)} " in program, port
    # The oracle can say no: a malformed range does not compile.
    assert tcpdump_compile("tcp and (portrange 49152-)").returncode != 0
