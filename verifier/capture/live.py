"""Live capture: one AF_PACKET socket per interface, opened by scapy, read by one thread.

scapy opens the socket and compiles the BPF filter; what happens per frame is ours, because a
naive `AsyncSniffer(prn=..., store=False)` counted 8.6 % of a 10 Gbit/s veth stream and reported
no drop (design.md section 4). So: a TPACKET_V3 ring per socket (ring.py) that the kernel fills
with frames truncated to the snap length, walked block by block without a system call per frame;
no Packet objects; a fast counting path per known flow; one poll loop for all interfaces; and
PACKET_STATISTICS read for the whole run so that every drop is reported.

Measured (make bench, README): a recvfrom()-per-frame reader with a 64 MiB SO_RCVBUFFORCE buffer
kept up with one TSO stream (~18 Gbit/s, 60k frames/s) but dropped 3 % with two streams and 64 %
with offloads off (~350k frames/s).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from verifier.capture.counting import FIRST_PAYLOAD_BYTES, Counter, PortRanges
from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_RAW, header_length
from verifier.capture.pcap import DEFAULT_SNAPLEN, FULL_SNAPLEN, PcapWriter
from verifier.capture.ring import SO_ATTACH_FILTER, Ring, truncating_filter
from verifier.errors import EnvironmentProblem
from verifier.model import CaptureResult, Endpoints

SOL_PACKET = 263
PACKET_STATISTICS = 6
DEFAULT_RCVBUF = 32 << 20  # ring bytes per interface
ARPHRD_NONE = 65534  # tun-style devices: frames start at the IP header


def bpf_filter(ports: PortRanges) -> str:
    parts = [f"portrange {lo}-{hi}" if lo != hi else f"port {lo}" for lo, hi in ports]
    return f"tcp and ({' or '.join(parts)})"


def read_counters(name: str, root: Path = Path("/sys/class/net")) -> tuple[int, int] | None:
    """The interface's own (tx_bytes, rx_bytes), or None where sysfs does not show it."""
    try:
        stats = root / name / "statistics"
        return int((stats / "tx_bytes").read_text()), int((stats / "rx_bytes").read_text())
    except (OSError, ValueError):
        return None


def check_privilege() -> None:
    """Fail early, before anything is migrated, when packet sockets are not allowed (no CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        raise EnvironmentProblem(
            "capturing needs CAP_NET_RAW (root)", hint="run verify-path as root, with CAP_NET_RAW"
        ) from None


def parse_packet_stats(raw: bytes) -> tuple[int, int]:
    """struct tpacket_stats {u32 tp_packets; u32 tp_drops}; tp_packets already includes drops."""
    packets, drops = struct.unpack("=II", raw[:8])
    return packets, drops


def open_scapy_socket(iface: str, bpf: str) -> Any:
    """The default socket factory: scapy's listening socket (its `.ins` is the AF_PACKET socket).

    The scapy object is kept alive by the caller: its finaliser closes the descriptor.
    """
    import scapy.layers.l2  # noqa: F401  registers Ethernet, so scapy knows the link type
    from scapy.arch.linux import L2ListenSocket
    from scapy.error import Scapy_Exception

    try:
        return L2ListenSocket(iface=iface, filter=bpf, promisc=False)
    except (OSError, Scapy_Exception) as exc:
        raise EnvironmentProblem(
            f"cannot open a capture socket on {iface}: {exc}",
            hint="run as root (CAP_NET_RAW) and check the interface exists",
        ) from exc


class LiveCapture:
    """Arm sniffers on INTERFACES; `start` returns once all are armed; `stop` returns the counts."""

    def __init__(
        self,
        interfaces: list[str],
        ports: PortRanges,
        out_dir: Path | None,
        snaplen: int = DEFAULT_SNAPLEN,
        rcvbuf: int = DEFAULT_RCVBUF,
        socket_factory: Callable[[str, str], Any] = open_scapy_socket,
        sample: int = 0,
        note: str = "",
    ) -> None:
        self.interfaces = interfaces
        self.ports = ports
        self.out_dir = out_dir
        self.snaplen = snaplen
        self.keep_payload = snaplen >= FULL_SNAPLEN  # --keep-payload: whole frames, on purpose
        self.sample = sample  # > 0: evidence only, one TCP frame in SAMPLE (another engine counts)
        self.note = note  # why this engine counts, for the report
        self.ring_bytes = rcvbuf
        self.bpf = bpf_filter(ports)
        self._factory = socket_factory
        self._socks: dict[int, tuple[str, socket.socket, Ring, int]] = {}
        self._holders: list[Any] = []
        self._writers: dict[str, PcapWriter] = {}
        self._pcap_errors: dict[str, str] = {}
        self._drops: dict[str, int] = {}
        self._kpackets: dict[str, int] = {}
        self._counters0: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.counter = Counter(ports, time.time())

    def start(self) -> None:
        try:
            for name in self.interfaces:
                # The counters' baseline comes before this sniffer exists and their end value after
                # the last drain, so the interface's window always holds the sniffer's: on a busy
                # link, frames between arming and a later baseline would be captured, not counted.
                start = read_counters(name)
                if start is not None:
                    self._counters0[name] = start
                holder = self._factory(name, self.bpf)
                self._holders.append(holder)
                sock: socket.socket = holder.ins
                # scapy compiled and attached the filter; re-attach it truncating to the snap length.
                # Headers plus the stream's first bytes reach the counter; the pcap gets headers only.
                extra = 0 if self.keep_payload else FIRST_PAYLOAD_BYTES
                fprog, keep = truncating_filter(self.bpf, name, self.snaplen, extra, self.sample)
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
                del keep
                ring = Ring(sock, self.ring_bytes)
                _flush(sock)  # frames queued before the ring existed: not ours to count
                self._read_stats(name, sock)  # reset: count only from now on
                hatype = sock.getsockname()[3]
                linktype = LINKTYPE_RAW if hatype == ARPHRD_NONE else LINKTYPE_ETHERNET
                self._socks[sock.fileno()] = (name, sock, ring, linktype)
                self._drops[name] = 0
                self._kpackets[name] = 0
                self.counter.ensure(name)
        except BaseException:
            self._close()
            raise
        self.counter.t0 = time.time()
        self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)
        self._thread.start()

    def bytes_so_far(self) -> int:
        """Bytes counted on every interface so far (watch --until-idle polls this)."""
        return sum(s.bytes_tx + s.bytes_rx for s in self.counter.ifaces.values())

    def on_new_flow(self, callback: Callable[[Sequence[Endpoints]], None]) -> bool:
        """This engine does not announce new flows (the ownership sampler then keeps its own pace)."""
        return False

    def stop(self, drain_s: float = 0.3) -> CaptureResult:
        """Let the buffers drain, stop the reader, read the final drop counts, close the files."""
        time.sleep(drain_s)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        ended = time.time()
        deltas = {}
        for name, (tx0, rx0) in self._counters0.items():
            end = read_counters(name)
            if end is not None:
                deltas[name] = (end[0] - tx0, end[1] - rx0)
        self._close()
        if self._error:
            raise EnvironmentProblem(f"capture failed: {self._error}")
        result = self.counter.result(
            drops=self._drops,
            kernel_packets=self._kpackets,
            pcaps={n: str(w.path) for n, w in self._writers.items()},
            snaplen=self.snaplen,
            bpf=self.bpf,
            ended_at=ended,
            counters=deltas,
            problems=tuple(f"pcap incomplete: {err}" for err in self._pcap_errors.values()),
        )
        pcaps = "none" if self.out_dir is None else "sampled" if self.sample else "every frame"
        return replace(result, engine="ring", pcaps=pcaps, engine_note=self.note)

    def _loop(self) -> None:
        poller = select.poll()
        for fd in self._socks:
            poller.register(fd, select.POLLIN | select.POLLERR)
        next_stats = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                poller.poll(50)
                for fd in self._socks:
                    self._drain(fd, 64)
                if time.monotonic() >= next_stats:
                    for name, sock, _ring, _lt in self._socks.values():
                        self._read_stats(name, sock)
                    next_stats = time.monotonic() + 1.0
            # Final drain: the kernel retires part-filled blocks after its timeout.
            time.sleep(0.06)
            for fd in self._socks:
                self._drain(fd, None)
            for name, sock, _ring, _lt in self._socks.values():
                self._read_stats(name, sock)
        except BaseException as exc:  # surfaced by stop(); a dead reader must not look like silence
            self._error = exc

    def _drain(self, fd: int, limit: int | None) -> None:
        name, _sock, ring, linktype = self._socks[fd]
        add = self.counter.add
        writer = self._writers.get(name)
        out_dir = self.out_dir

        broken = name in self._pcap_errors

        def handle(ts: float, frame: memoryview, orig_len: int, outgoing: bool) -> None:
            nonlocal writer, broken
            add(name, outgoing, ts, frame, orig_len, linktype)
            if out_dir is None or broken:
                return
            try:
                if writer is None:
                    writer = self._writers[name] = PcapWriter(out_dir / f"{name}.pcap", linktype, self.snaplen)
                writer.write(ts, frame if self.keep_payload else frame[: header_length(frame, linktype)], orig_len)
            except OSError as exc:
                # A full or failing disk costs the pcap, never the counts: keep counting.
                broken = True
                self._pcap_errors[name] = f"{name}.pcap: {exc.strerror or exc}"
                if writer is not None:
                    writer.abandon()

        ring.drain(handle, limit)

    def _read_stats(self, name: str, sock: socket.socket) -> None:
        # PACKET_STATISTICS resets on each read, so the run's totals are the sum of all reads.
        packets, drops = parse_packet_stats(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        if name in self._drops:
            self._drops[name] += drops
            self._kpackets[name] += packets

    def _close(self) -> None:
        for _name, _sock, ring, _lt in self._socks.values():
            ring.close()
        for holder in self._holders:
            try:
                holder.close()
            except OSError:
                pass
        self._holders.clear()
        for name, writer in self._writers.items():
            try:
                writer.close()
            except OSError as exc:
                self._pcap_errors.setdefault(name, f"{name}.pcap: {exc.strerror or exc}")

    def __enter__(self) -> LiveCapture:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._stop.is_set():
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=30)
            self._close()


def _flush(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(1)
    except BlockingIOError:
        pass
