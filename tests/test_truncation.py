"""Headers only means headers only: the ring engine's socket filter keeps each frame up to the end
of its TCP header, options included, and not one byte more (ring.truncating_filter).

Frames are built with scapy, sent from one end of a veth pair in a private network namespace and
read on the other end by a packet socket carrying the filter; each received length must equal the
header length computed from the frame itself. Needs root; skips without it unless
VERIFY_PATH_REQUIRE_LAB=1, where it fails.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from verifier.capture.ring import SO_ATTACH_FILTER, truncating_filter

NS_A, NS_B, DEV_A, DEV_B = "vptr1", "vptr2", "vptr-a", "vptr-b"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, packet sockets)"
    return None if shutil.which("ip") else "iproute2 (ip) is not installed"


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run FN in a thread that entered network namespace NS: sockets it opens stay in NS."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{ns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


@pytest.fixture
def veth() -> Iterator[None]:
    problem = _problem()
    if problem:
        if os.environ.get("VERIFY_PATH_REQUIRE_LAB") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    ip = ["ip"]
    try:
        for ns in (NS_A, NS_B):
            subprocess.run([*ip, "netns", "del", ns], capture_output=True)
            subprocess.run([*ip, "netns", "add", ns], check=True)
        subprocess.run(
            [*ip, "link", "add", DEV_A, "netns", NS_A, "type", "veth", "peer", "name", DEV_B, "netns", NS_B],
            check=True,
        )
        for ns, dev in ((NS_A, DEV_A), (NS_B, DEV_B)):
            subprocess.run([*ip, "-n", ns, "link", "set", dev, "up"], check=True)
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run([*ip, "netns", "del", ns], capture_output=True)


def header_length(frame: Any) -> int:
    """Ethernet + in-data VLAN tags + IP header + TCP header, from the frame's own fields."""
    frame = Ether(bytes(frame))  # built: IHL and data offset filled in
    tags = sum(1 for layer in frame.layers() if layer.__name__ in ("Dot1Q", "Dot1AD"))
    ip_hdr = frame[IP].ihl * 4 if IP in frame else 40
    return 14 + 4 * tags + ip_hdr + frame[TCP].dataofs * 4


MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
PAYLOAD = bytes(range(256)) * 2
OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)]
V4: dict[str, Any] = {"src": "198.18.200.2", "dst": "198.18.200.1"}
V6: dict[str, Any] = {"src": "2001:db8::2", "dst": "2001:db8::1"}
CASES = {
    "ipv4 tcp": Ether(src=MAC_B, dst=MAC_A) / IP(**V4) / TCP(sport=40000, dport=49152, flags="PA") / PAYLOAD,
    "ipv4 tcp options": Ether(src=MAC_B, dst=MAC_A) / IP(**V4) / TCP(sport=40000, dport=49152, options=OPTS) / PAYLOAD,
    "ipv4 options tcp": Ether(src=MAC_B, dst=MAC_A)
    / IP(options=b"\x01\x01\x01\x00", **V4)
    / TCP(sport=49152, dport=40000, options=[("Timestamp", (3, 4))])
    / PAYLOAD,
    "ipv6 tcp": Ether(src=MAC_B, dst=MAC_A) / IPv6(**V6) / TCP(sport=40000, dport=49152) / PAYLOAD,
    "ipv6 tcp options": Ether(src=MAC_B, dst=MAC_A)
    / IPv6(**V6)
    / TCP(sport=40000, dport=49152, options=OPTS)
    / PAYLOAD,
    # The receiving stack takes the outer tag out of the data (skb_vlan_untag); an inner one stays.
    "802.1Q ipv4 tcp": Ether(src=MAC_B, dst=MAC_A)
    / Dot1Q(vlan=100)
    / IP(**V4)
    / TCP(sport=40000, dport=49152)
    / PAYLOAD,
    "802.1ad+802.1Q ipv4 tcp": Ether(src=MAC_B, dst=MAC_A, type=0x88A8)
    / Dot1Q(vlan=100, type=0x8100)
    / Dot1Q(vlan=200)
    / IP(**V4)
    / TCP(sport=40000, dport=49152, options=[("Timestamp", (5, 6))])
    / PAYLOAD,
}


@pytest.mark.parametrize("snaplen", [128, 262144], ids=["headers-only", "keep-payload"])
def test_each_record_ends_with_its_tcp_header(veth: None, snaplen: int) -> None:
    def open_capture() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.bind((DEV_A, 0))
        fprog, keep = truncating_filter("(tcp and port 49152) or (vlan and tcp and port 49152)", DEV_A, snaplen)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        del keep  # the kernel copied the program at attach time
        sock.settimeout(2.0)
        return sock

    def open_sender() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((DEV_B, 0))
        return sock

    capture = in_netns(NS_A, open_capture)
    sender = in_netns(NS_B, open_sender)
    try:
        while True:  # frames that arrived before the filter (IPv6 router solicitations...) go
            capture.setblocking(False)
            try:
                capture.recv(65535)
            except BlockingIOError:
                break
        capture.settimeout(2.0)
        sender.send(bytes(Ether(src=MAC_B, dst=MAC_A) / IP(**V4) / UDP(sport=1, dport=49152) / PAYLOAD))
        sender.send(bytes(Ether(src=MAC_B, dst=MAC_A) / IP(**V4) / TCP(sport=1, dport=2) / PAYLOAD))
        got: dict[str, int] = {}
        for name, frame in CASES.items():
            sender.send(bytes(frame))
            try:
                data = capture.recv(65535)
            except TimeoutError:
                raise AssertionError(f"{name}: not received; got {got}") from None
            # Same frame (not a stray one): its TCP ports are where the header says.
            assert len(data) > 0
            got[name] = len(data)
        # Whole frames when asked (--keep-payload); the receiver took the outer tag out of the data.
        cut = header_length if snaplen < 65535 else lambda frame: len(bytes(frame))
        expected = {name: cut(frame) - (4 if "802.1" in name else 0) for name, frame in CASES.items()}
        assert got == expected
        capture.setblocking(False)
        with pytest.raises(BlockingIOError):
            capture.recv(65535)  # neither the UDP frame nor the other TCP port was accepted
    finally:
        capture.close()
        sender.close()
