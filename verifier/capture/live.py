"""Live capture: one AF_PACKET socket per interface, opened by scapy, read by one thread.

scapy opens the socket and compiles the BPF filter; what happens per frame is ours, because a
naive `AsyncSniffer(prn=..., store=False)` counted 8.6 % of a 10 Gbit/s veth stream and reported
no drop (design.md section 4). So: a large receive buffer (SO_RCVBUFFORCE), truncated reads that
still return the original length (MSG_TRUNC), no Packet objects, non-blocking drains from a
single poll loop, and PACKET_STATISTICS read for the whole run so that every drop is reported.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verifier.capture.counting import Counter, PortRanges
from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_RAW
from verifier.capture.pcap import DEFAULT_SNAPLEN, PcapWriter
from verifier.errors import EnvironmentProblem
from verifier.model import CaptureResult

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
DEFAULT_RCVBUF = 64 << 20
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 65534
_BATCH = 512


def bpf_filter(ports: PortRanges) -> str:
    parts = [f"portrange {lo}-{hi}" if lo != hi else f"port {lo}" for lo, hi in ports]
    return f"tcp and ({' or '.join(parts)})"


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
    ) -> None:
        self.interfaces = interfaces
        self.ports = ports
        self.out_dir = out_dir
        self.snaplen = snaplen
        self.rcvbuf = rcvbuf
        self.bpf = bpf_filter(ports)
        self._factory = socket_factory
        self._socks: dict[int, tuple[str, socket.socket]] = {}
        self._holders: list[Any] = []
        self._writers: dict[str, PcapWriter] = {}
        self._drops: dict[str, int] = {}
        self._kpackets: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.counter = Counter(ports, time.time())

    def start(self) -> None:
        try:
            for name in self.interfaces:
                holder = self._factory(name, self.bpf)
                self._holders.append(holder)
                sock: socket.socket = holder.ins
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
                sock.setblocking(False)
                self._read_stats(name, sock)  # reset: count only from now on
                self._socks[sock.fileno()] = (name, sock)
                self._drops[name] = 0
                self._kpackets[name] = 0
                self.counter.ensure(name)
        except BaseException:
            self._close()
            raise
        self.counter.t0 = time.time()
        self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 0.3) -> CaptureResult:
        """Let the buffers drain, stop the reader, read the final drop counts, close the files."""
        time.sleep(drain_s)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        ended = time.time()
        self._close()
        if self._error:
            raise EnvironmentProblem(f"capture failed: {self._error}")
        return self.counter.result(
            drops=self._drops,
            kernel_packets=self._kpackets,
            pcaps={n: str(w.path) for n, w in self._writers.items()},
            snaplen=self.snaplen,
            bpf=self.bpf,
            ended_at=ended,
        )

    def _loop(self) -> None:
        poller = select.poll()
        for fd in self._socks:
            poller.register(fd, select.POLLIN)
        buf = bytearray(self.snaplen)
        view = memoryview(buf)
        next_stats = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                for fd, _ev in poller.poll(100):
                    self._drain(fd, buf, view, _BATCH)
                if time.monotonic() >= next_stats:
                    for name, sock in self._socks.values():
                        self._read_stats(name, sock)
                    next_stats = time.monotonic() + 1.0
            for fd in self._socks:  # final drain: everything the kernel still holds
                self._drain(fd, buf, view, None)
            for name, sock in self._socks.values():
                self._read_stats(name, sock)
        except BaseException as exc:  # surfaced by stop(); a dead reader must not look like silence
            self._error = exc

    def _drain(self, fd: int, buf: bytearray, view: memoryview, limit: int | None) -> None:
        name, sock = self._socks[fd]
        add = self.counter.add
        count = 0
        while limit is None or count < limit:
            try:
                orig_len, addr = sock.recvfrom_into(buf, self.snaplen, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            count += 1
            ts = time.time()
            cap = min(orig_len, self.snaplen)
            linktype = LINKTYPE_RAW if addr[3] == ARPHRD_NONE else LINKTYPE_ETHERNET
            frame = view[:cap]
            add(name, addr[2] == PACKET_OUTGOING, ts, frame, orig_len, linktype)
            if self.out_dir is not None:
                writer = self._writers.get(name)
                if writer is None:
                    writer = self._writers[name] = PcapWriter(self.out_dir / f"{name}.pcap", linktype, self.snaplen)
                writer.write(ts, frame, orig_len)

    def _read_stats(self, name: str, sock: socket.socket) -> None:
        # PACKET_STATISTICS resets on each read, so the run's totals are the sum of all reads.
        packets, drops = parse_packet_stats(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        if name in self._drops:
            self._drops[name] += drops
            self._kpackets[name] += packets

    def _close(self) -> None:
        for holder in self._holders:
            try:
                holder.close()
            except OSError:
                pass
        self._holders.clear()
        for writer in self._writers.values():
            writer.close()

    def __enter__(self) -> LiveCapture:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._stop.is_set():
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=30)
            self._close()
