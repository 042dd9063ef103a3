"""streams.classify, directly and through counting.Counter on scapy-built conversations in a pcap.

Each conversation is a full TCP exchange (handshake, payload both ways, FIN) written with PcapWriter
at snaplen 128 and read back with readers.read_pcap, so the first bytes the classifier sees are the ones a
real headers-only capture keeps. Expected kinds and byte totals come from what was generated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from verifier.capture import pcap, readers
from verifier.capture.counting import Counter
from verifier.capture.frames import LINKTYPE_ETHERNET
from verifier.capture.streams import classify
from verifier.model import CaptureResult

T0 = 1_700_000_000.0
PORTS = ((49152, 49215), (16509, 16509), (22, 22))
LOCAL, PEER = "198.18.0.11", "198.18.0.12"
MSS = 1448

QEVM = b"QEVM\x00\x00\x00\x03"
MULTIFD = b"\x11\x22\x33\x44" + (1).to_bytes(4, "big") + bytes(range(16)) + b"\x00"  # magic, version, uuid, id
NBD_GREETING = b"NBDMAGIC" + b"IHAVEOPT" + b"\x00\x03"
CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
SERVER_HELLO = b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03" + bytes(32)
SSH_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"
VIR_CALL = b"\x00\x00\x00\x1c\x20\x00\x80\x86\x00\x00\x00\x01\x00\x00\x00\x42" + bytes(12)

# (kind, client port, server port, [(from client?, payload), ...])
CONVERSATIONS = [
    ("qemu-main", 40000, 49152, [(True, QEVM + b"\x01" * 5000), (False, b"\x00" * 8)]),
    ("multifd", 40001, 49152, [(True, MULTIFD), (True, b"\x02" * 3000)]),
    ("nbd", 40002, 49153, [(False, NBD_GREETING), (True, b"\x00\x00\x00\x03"), (True, b"\x03" * 4000)]),
    ("tls", 40003, 49154, [(True, CLIENT_HELLO), (False, SERVER_HELLO), (True, b"\x17\x03\x03" + b"\x04" * 2000)]),
    (
        "libvirtd-tunnel",
        40004,
        16509,
        [(True, VIR_CALL), (False, b"\x00\x00\x00\x18" + bytes(20)), (True, b"\x05" * 6000)],
    ),
    ("ssh-tunnel", 40005, 22, [(False, SSH_BANNER), (True, SSH_BANNER), (True, b"\x06" * 2500)]),
]


def _frame(src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
    pkt = Ether(src="52:54:00:5a:00:01", dst="52:54:00:5a:00:02") / IP(src=src, dst=dst)
    pkt = pkt / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    data = bytes(pkt / Raw(payload) if payload else pkt)
    return data + b"\x00" * (60 - len(data))  # Ethernet minimum: padding must never count as payload


def conversation(cport: int, sport: int, exchanges: list[tuple[bool, bytes]]) -> list[tuple[bytes, bool]]:
    """(frame, sent by the client) for a whole connection LOCAL:cport -> PEER:sport."""
    seq = {True: 1000, False: 5000}
    out = []

    def send(from_client: bool, flags: str, payload: bytes = b"") -> None:
        a, b = ((LOCAL, cport), (PEER, sport)) if from_client else ((PEER, sport), (LOCAL, cport))
        out.append((_frame(*a, *b, flags, seq[from_client], seq[not from_client], payload), from_client))
        seq[from_client] += len(payload) + (1 if "S" in flags or "F" in flags else 0)

    send(True, "S")
    send(False, "SA")
    send(True, "A")
    for from_client, payload in exchanges:
        for i in range(0, len(payload), MSS):
            send(from_client, "PA", payload[i : i + MSS])
            send(not from_client, "A")
    send(True, "FA")
    send(False, "FA")
    send(True, "A")
    return out


@pytest.fixture(scope="module")
def frames() -> list[tuple[bytes, bool]]:
    return [f for _kind, cport, sport, ex in CONVERSATIONS for f in conversation(cport, sport, ex)]


@pytest.fixture(scope="module")
def counted(frames: list[tuple[bytes, bool]], tmp_path_factory: pytest.TempPathFactory) -> CaptureResult:
    path = tmp_path_factory.mktemp("streams") / "san0.pcap"
    writer = pcap.PcapWriter(path, LINKTYPE_ETHERNET, snaplen=128)
    for i, (data, _out) in enumerate(frames):
        writer.write(T0 + i / 1000, data, len(data))
    writer.close()
    linktype, records = readers.read_pcap(Path(path))
    assert linktype == LINKTYPE_ETHERNET
    counter = Counter(PORTS, T0)
    for (ts, data, orig), (sent, from_client) in zip(records, frames, strict=True):
        assert orig == len(sent) and data == sent[:128]  # headers-only, original length kept
        counter.add("san0", from_client, ts, data, orig)
    return counter.result(snaplen=128)


def test_every_conversation_is_recognised(counted: CaptureResult) -> None:
    by_port = {c.client_port: c for c in counted.connections}
    assert len(counted.connections) == len(CONVERSATIONS)
    for kind, cport, sport, exchanges in CONVERSATIONS:
        conn = by_port[cport]
        assert (conn.client, conn.server, conn.server_port) == (LOCAL, PEER, sport), kind
        assert conn.kind == kind, f"{kind}: first bytes {conn.first_payload} / {conn.first_payload_server}"
        assert conn.payload_to_server == sum(len(p) for c, p in exchanges if c), kind
        assert conn.payload_to_client == sum(len(p) for c, p in exchanges if not c), kind
        assert conn.interfaces == ("san0",)


def test_first_bytes_are_the_first_sixteen_of_each_direction(counted: CaptureResult) -> None:
    by_port = {c.client_port: c for c in counted.connections}
    for kind, cport, _sport, exchanges in CONVERSATIONS:
        to_server = b"".join(p for c, p in exchanges if c)[:16]
        to_client = b"".join(p for c, p in exchanges if not c)[:16]
        assert by_port[cport].first_payload == to_server.hex(), kind
        assert by_port[cport].first_payload_server == to_client.hex(), kind


def test_packet_counts_and_interface_totals(counted: CaptureResult, frames: list[tuple[bytes, bool]]) -> None:
    by_port = {c.client_port: c for c in counted.connections}
    for kind, cport, _sport, exchanges in CONVERSATIONS:
        segments = sum(-(-len(p) // MSS) for _c, p in exchanges)
        assert by_port[cport].packets == 3 + 2 * segments + 3, kind  # handshake, data + ack, FIN exchange
    san0 = counted.get("san0")
    assert san0.bytes_tx == sum(len(d) for d, out in frames if out)
    assert san0.bytes_rx == sum(len(d) for d, out in frames if not out)
    assert san0.payload_tx == sum(len(p) for *_x, ex in CONVERSATIONS for c, p in ex if c)
    assert san0.payload_rx == sum(len(p) for *_x, ex in CONVERSATIONS for c, p in ex if not c)
    assert san0.other_bytes == 0


@pytest.mark.parametrize(
    ("port", "to_server", "to_client", "kind"),
    [
        (49152, QEVM, b"", "qemu-main"),
        (49152, MULTIFD, b"", "multifd"),
        (49153, b"", NBD_GREETING, "nbd"),
        (49153, b"\x00\x00\x00\x03", NBD_GREETING, "nbd"),
        (49154, CLIENT_HELLO, b"", "tls"),
        (49154, b"", SERVER_HELLO, "tls"),
        (16509, VIR_CALL, b"", "libvirtd-tunnel"),
        (16514, CLIENT_HELLO, b"", "libvirtd-tunnel"),  # libvirtd's TLS port: a tunnel, whatever the bytes
        (22, b"", SSH_BANNER, "ssh-tunnel"),
        (22, b"", b"", "ssh-tunnel"),  # the port alone, before any banner was captured
        (2222, SSH_BANNER, b"", "ssh-tunnel"),  # sshd on another port still greets with SSH-
        (49152, b"\x00" * 8, b"", "unknown"),
        (49152, b"", b"", "unknown"),
    ],
)
def test_classify(port: int, to_server: bytes, to_client: bytes, kind: str) -> None:
    assert classify(port, to_server, to_client) == kind
