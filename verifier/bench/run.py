"""The capture benchmark, side by side in one run: ours vs tcpdump vs iperf3 vs libvirt, in the lab.

Every figure is a ratio against a reference measured at the same time on the same machine:
accuracy (bytes ours / tcpdump, payload ours / iperf3 sent), drops, CPU seconds per GB (ours /
tcpdump), throughput with our capture / without, migration duration watched / unwatched, and
time to verdict beyond the migration itself. Results: a table on stdout and
captures/bench/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from verifier.capture import readers
from verifier.lab import control, spec

VENV_BIN = Path(sys.executable).parent
SNAP = "128"
FILTER = "tcp and portrange 49152-49215"
ALL_IFACES = "br0,eth0,ring1,san0,san1"


def node(name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)


class Tcpdump:
    """tcpdump on one interface with the same filter and snap length, writing to tmpfs."""

    def __init__(self, iface: str, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            node("node1", "tcpdump", "-i", iface, "-s", SNAP, "-w", str(out), "-n", FILTER),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # "listening on ...": armed

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(self.proc.pid, 0)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        dropped = re.search(r"(\d+) packets dropped by kernel", err)
        _, frames = readers.read_pcap(self.out)
        total = sum(orig for _ts, _data, orig in frames)
        return {
            "bytes": total,
            "drops": int(dropped.group(1)) if dropped else None,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


class Ours:
    def __init__(self, ifaces: str, seconds: float, out: Path | None) -> None:
        argv = [
            str(VENV_BIN / "python"),
            "-m",
            "verifier.bench.sniff",
            "--interfaces",
            ifaces,
            "--seconds",
            str(seconds),
        ]
        if out is not None:
            argv += ["--out", str(out)]
        self.proc = subprocess.Popen(node("node1", *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "armed" not in line:
            raise RuntimeError(f"sniffer failed to arm: {line}{self.proc.stderr.read()}")

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=120)
        if self.proc.returncode:
            raise RuntimeError(f"sniffer failed: {err}")
        data: dict[str, Any] = json.loads(out)
        return data


def iperf(streams: list[tuple[str, int]], seconds: float) -> list[dict[str, Any]]:
    """One iperf3 client per (server address, port), at full speed, at the same time."""
    servers = [
        subprocess.Popen(
            node("node2", "iperf3", "-s", "-1", "-p", str(port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _addr, port in streams
    ]
    time.sleep(0.5)
    clients = [
        subprocess.Popen(
            node("node1", "iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J"),
            stdout=subprocess.PIPE,
            text=True,
        )
        for addr, port in streams
    ]
    results = []
    for client in clients:
        out, _ = client.communicate(timeout=seconds + 60)
        end = json.loads(out)["end"]["sum_sent"]
        results.append({"bytes": int(end["bytes"]), "bps": float(end["bits_per_second"])})
    for server in servers:
        server.wait(timeout=30)
    return results


def accuracy_case(
    name: str, streams: list[tuple[str, int]], ifaces: list[str], seconds: float, tmp: Path
) -> dict[str, Any]:
    ours = Ours(ALL_IFACES, seconds + 2.5, tmp / f"{name}-ours")
    (tmp / f"{name}-ours").mkdir(exist_ok=True)
    dumps = {i: Tcpdump(i, tmp / f"{name}-{i}.pcap") for i in ifaces}
    sent = iperf(streams, seconds)
    time.sleep(0.5)
    theirs = {i: d.stop() for i, d in dumps.items()}
    mine = ours.result()
    ours_bytes = sum(mine["interfaces"][i]["bytes"] for i in ifaces)
    ours_payload = sum(mine["interfaces"][i]["payload"] for i in ifaces)
    tcpdump_bytes = sum(t["bytes"] for t in theirs.values())
    tcpdump_cpu = sum(t["cpu_s"] for t in theirs.values())
    return {
        "case": name,
        "ours_bytes": ours_bytes,
        "tcpdump_bytes": tcpdump_bytes,
        "iperf_sent": sum(s["bytes"] for s in sent),
        "gbit_s": sum(s["bps"] for s in sent) / 1e9,
        "accuracy_vs_tcpdump": ours_bytes / tcpdump_bytes if tcpdump_bytes else None,
        "payload_vs_iperf": ours_payload / sum(s["bytes"] for s in sent),
        "ours_drops": sum(v["drops"] for v in mine["interfaces"].values()),
        "tcpdump_drops": sum(t["drops"] or 0 for t in theirs.values()),
        "ours_cpu_s_per_gb": mine["cpu_s"] / (ours_bytes / 1e9) if ours_bytes else None,
        "tcpdump_cpu_s_per_gb": tcpdump_cpu / (tcpdump_bytes / 1e9) if tcpdump_bytes else None,
        "counter_ok": all(
            v["bytes"] <= v["counter_bytes"] * 1.001 + 262144 for v in mine["interfaces"].values() if v["counter_bytes"]
        ),
    }


def set_offloads(state: str) -> None:
    for name in ("node1", "node2"):
        run(node(name, "ethtool", "-K", "san0", "tso", state, "gso", state, "gro", state))


def overhead_case(seconds: float, tmp: Path) -> dict[str, Any]:
    """iperf3 alone, with our capture (all interfaces armed), and with tcpdump on san0 for reference."""
    alone = iperf([("198.18.0.12", 49152)], seconds)[0]["bps"]
    (tmp / "overhead").mkdir(exist_ok=True)
    ours = Ours(ALL_IFACES, seconds + 2.5, tmp / "overhead")
    watched = iperf([("198.18.0.12", 49152)], seconds)[0]["bps"]
    ours.result()
    dump = Tcpdump("san0", tmp / "overhead-tcpdump.pcap")
    dumped = iperf([("198.18.0.12", 49152)], seconds)[0]["bps"]
    dump.stop()
    return {
        "iperf_alone_gbit_s": alone / 1e9,
        "iperf_captured_gbit_s": watched / 1e9,
        "iperf_tcpdump_gbit_s": dumped / 1e9,
        "throughput_ratio": watched / alone,
        "tcpdump_throughput_ratio": dumped / alone,
    }


def virsh_migrate(src: str, dst: str) -> float:
    started = time.monotonic()
    run(
        node(
            src,
            "virsh",
            "-c",
            spec.libvirt_uri(src),
            "migrate",
            "--live",
            "--p2p",
            spec.GUEST,
            spec.libvirt_uri(dst),
            "--migrateuri",
            f"tcp://{dst}-san",
        )
    )
    return time.monotonic() - started


def migration_case(tmp: Path) -> dict[str, Any]:
    plain = [virsh_migrate("node1", "node2"), virsh_migrate("node2", "node1")]
    watch = subprocess.Popen(
        node(
            "node1",
            str(VENV_BIN / "verify-path"),
            "watch",
            "--until-idle",
            "2",
            "--captures-dir",
            str(tmp / "watch"),
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stderr is not None
    watch.stderr.readline()
    watched = [virsh_migrate("node1", "node2")]
    watch.communicate(timeout=120)
    watched.append(virsh_migrate("node2", "node1"))
    started = time.monotonic()
    job = run(
        node(
            "node1",
            str(VENV_BIN / "verify-path"),
            "vm01",
            "node2",
            "--via",
            "san0",
            "--json",
            "--connect",
            spec.libvirt_uri("node1"),
            "--dest-uri",
            spec.libvirt_uri("node2"),
            "--captures-dir",
            str(tmp / "job"),
        )
    )
    total = time.monotonic() - started
    report = json.loads(job.stdout)
    virsh_migrate("node2", "node1")
    return {
        "migration_s": sum(plain) / len(plain),
        "migration_watched_s": sum(watched) / len(watched),
        "duration_ratio": (sum(watched) / len(watched)) / (sum(plain) / len(plain)),
        "time_to_verdict_beyond_migration_s": total - report["migration"]["duration_s"],
    }


def synthetic_pcap(path: Path, megabytes: int) -> int:
    """A headers-only capture of one migration-like stream (3 data frames to 1 ACK), MEGABYTES big."""
    from verifier.capture.frames import LINKTYPE_ETHERNET
    from verifier.capture.pcap import PcapWriter

    def frame(src: str, dst: str, sport: int, dport: int, flags: int, ip_len: int) -> bytes:
        import socket
        import struct

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


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'case':<22} {'Gbit/s':>7} {'ours/tcpdump':>13} {'payload/iperf':>14} {'drops ours':>11} "
        f"{'drops tcpdump':>14} {'CPU/GB ours/tcpdump':>20}"
    ]
    for c in results["accuracy"]:
        cpu = (
            c["ours_cpu_s_per_gb"] / c["tcpdump_cpu_s_per_gb"]
            if c["ours_cpu_s_per_gb"] and c["tcpdump_cpu_s_per_gb"]
            else float("nan")
        )
        lines.append(
            f"{c['case']:<22} {c['gbit_s']:>7.2f} {c['accuracy_vs_tcpdump']:>13.5f} "
            f"{c['payload_vs_iperf']:>14.5f} {c['ours_drops']:>11} {c['tcpdump_drops']:>14} {cpu:>20.2f}"
        )
    o, m = results["overhead"], results["migration"]
    lines += [
        f"iperf3 throughput with our capture / without: {o['throughput_ratio']:.3f} "
        f"({o['iperf_captured_gbit_s']:.2f} / {o['iperf_alone_gbit_s']:.2f} Gbit/s; "
        f"tcpdump alone for reference: {o['tcpdump_throughput_ratio']:.3f})",
        f"migration duration watched / unwatched: {m['duration_ratio']:.3f} "
        f"({m['migration_watched_s']:.2f} s / {m['migration_s']:.2f} s)",
        f"time to verdict beyond the migration: {m['time_to_verdict_beyond_migration_s']:.2f} s",
    ]
    a = results.get("analyze")
    if a:
        lines.append(
            f"analyze {a['file_mb']:.0f} MB headers-only pcap ({a['frames']} frames): "
            f"{a['ours_s']:.1f} s vs tshark -z conv,tcp {a['tshark_s']:.1f} s, ratio {a['time_ratio']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="iperf3 duration per case (default 10)")
    p.add_argument("--out", type=Path, default=Path("captures/bench/latest.json"))
    p.add_argument("--analyze-mb", type=int, default=1000, help="size of the offline-analysis capture (default 1000)")
    args = p.parse_args(argv)
    control.up(control.LabOptions(), progress=lambda m: print(f"lab: {m}", file=sys.stderr))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmpdir:
        tmp = Path(tmpdir)
        cases = [
            accuracy_case("one stream san0", [("198.18.0.12", 49152)], ["san0"], args.seconds, tmp),
            accuracy_case(
                "two streams san0+san1",
                [("198.18.0.12", 49152), ("198.18.1.12", 49153)],
                ["san0", "san1"],
                args.seconds,
                tmp,
            ),
        ]
        set_offloads("off")
        try:
            cases.append(accuracy_case("offloads off san0", [("198.18.0.12", 49152)], ["san0"], args.seconds, tmp))
        finally:
            set_offloads("on")
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}",
            "seconds": args.seconds,
            "accuracy": cases,
            "overhead": overhead_case(args.seconds, tmp),
            "migration": migration_case(tmp),
            "analyze": analyze_case(args.analyze_mb, tmp),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"written to {args.out}")
    return 0
