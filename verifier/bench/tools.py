"""The processes a case runs side by side: tcpdump, our capture (sniff.py), iperf3 clients and servers.

Each is started inside a namespace with `ip netns exec`, which execs the program, so the pid
waited for is the program's own and its rusage is the program's CPU. Every process started here
is waited for or killed by its own pid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from verifier.bench.netns import inside

SNAP = "128"  # the engines' DEFAULT_SNAPLEN: tcpdump copies as many bytes per frame
FILTER = "tcp and portrange 49152-49215"  # the engines' filter for the default port range
# The ring engine's buffer per interface (live.DEFAULT_RCVBUF): tcpdump's default 2 MiB dropped
# ~10,000 frames in 10 s with offloads off, which made the reference, not the engine, the limit.
BUFFER_KIB = "32768"
_RECORD = struct.Struct("=IIII")  # pcap record header: ts_sec, ts_usec, incl_len, orig_len


def pcap_wire_bytes(path: Path) -> tuple[int, int]:
    """(frames, sum of original lengths) of a pcap, reading record headers only (files reach GBs)."""
    frames = total = 0
    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return 0, 0
        magic = head[:4]
        rec = _RECORD if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else struct.Struct(">IIII")
        while True:
            raw = f.read(16)
            if len(raw) < 16:
                break
            _s, _us, incl, orig = rec.unpack(raw)
            f.seek(incl, os.SEEK_CUR)
            frames += 1
            total += orig
    return frames, total


class Tcpdump:
    """tcpdump on one interface with the engines' filter and snap length, writing to tmpfs."""

    def __init__(self, ns: str, iface: str, out: Path) -> None:
        self.out = out
        argv = inside(ns, "tcpdump", "-i", iface, "-s", SNAP, "-B", BUFFER_KIB, "-w", str(out), "-n", FILTER)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on ...": armed
        if "listening" not in line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"tcpdump on {iface} did not start: {line}")

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        _pid, _status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0  # reaped above; keeps Popen from waiting again
        err = self.proc.stderr.read() if self.proc.stderr else ""
        dropped = re.search(r"(\d+) packets dropped by kernel", err)
        frames, total = pcap_wire_bytes(self.out)
        self.out.unlink(missing_ok=True)  # tmpfs: offloads-off files are hundreds of MB
        return {
            "bytes": total,
            "frames": frames,
            "drops": int(dropped.group(1)) if dropped else None,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


class _Armed:
    """A process of ours that prints "armed" on stderr once ready, then one JSON object on stdout
    when a line reaches its stdin."""

    def __init__(self, argv: list[str], what: str) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "armed" not in line:
            try:  # it is exiting: its traceback says why
                _out, err = self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _out, err = self.proc.communicate()
            raise RuntimeError(f"{what} failed to arm: {line}{err}")
        self.what = what

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate("stop\n", timeout=300)
        if self.proc.returncode:
            raise RuntimeError(f"{self.what} failed: {err[-2000:]}")
        data: dict[str, Any] = json.loads(out)
        return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Sniffer(_Armed):
    """Our capture in its own process (sniff.py): armed when constructed, counts until result()."""

    def __init__(
        self, ns: str, engine: str, ifaces: list[str], out: Path | None, owners: bool = False, bpf_stats: bool = True
    ) -> None:
        argv = [sys.executable, "-m", "verifier.bench.sniff", "--engine", engine, "--interfaces", ",".join(ifaces)]
        argv += ["--owners"] if owners else []
        argv += [] if bpf_stats else ["--no-bpf-stats"]
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            argv += ["--out", str(out)]
        super().__init__(inside(ns, *argv), f"sniffer ({engine})")


class Instrument(_Armed):
    """The empty program beside our capture (instrument.py): what the run-time statistics count of
    themselves per program run, on the same frames; result() gives run_time_ns and run_cnt."""

    def __init__(self, ns: str, ifaces: list[str]) -> None:
        argv = [sys.executable, "-m", "verifier.bench.instrument", "--interfaces", ",".join(ifaces)]
        super().__init__(inside(ns, *argv), "the empty eBPF program")


def iperf(client_ns: str, server_ns: str, streams: list[tuple[str, int]], seconds: float) -> list[dict[str, Any]]:
    """One iperf3 client per (server address, port), at full speed, all at the same time."""
    servers = [
        subprocess.Popen(
            inside(server_ns, "iperf3", "-s", "-1", "-p", str(port), "-B", addr),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for addr, port in streams
    ]
    clients: list[subprocess.Popen[str]] = []
    try:
        time.sleep(0.5)  # the servers listening
        for addr, port in streams:
            argv = inside(client_ns, "iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J")
            clients.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
        results = []
        for client in clients:
            out, _ = client.communicate(timeout=seconds + 60)
            end = json.loads(out)["end"]["sum_sent"]
            # Retransmitted segments: payload on the wire that the sent bytes do not count again.
            retransmits = int(end.get("retransmits", 0))
            results.append(
                {"bytes": int(end["bytes"]), "bps": float(end["bits_per_second"]), "retransmits": retransmits}
            )
        for server in servers:
            server.wait(timeout=30)
        return results
    finally:
        procs: list[subprocess.Popen[Any]] = [*clients, *servers]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
