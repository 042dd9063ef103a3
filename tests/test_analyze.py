"""analyze.count_files and interface_for: a scapy conversation written to files, counted, checked against tshark."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.packet import Raw

from verifier.analyze import count_files, interface_for
from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL
from verifier.capture.pcap import PcapWriter
from verifier.model import Bin, CaptureResult

T0 = 1_700_000_000.0
PORTS = ((49152, 49215),)
SNAPLEN = 128
CLIENT, SERVER = ("198.51.100.11", 40000), ("198.51.100.12", 49152)
LV_CLIENT, LV_SERVER = ("198.51.100.11", 41000), ("198.51.100.12", 16509)  # libvirtd: not a migration port
MACS = {"198.51.100.11": "02:00:00:00:00:11", "198.51.100.12": "02:00:00:00:00:12"}
DATA_FRAMES, DATA_SIZE, REPLY = 400, 8948, 64
EARLY = T0 - 2.5  # eth1 saw something (not TCP) before the stream started: t0 for every file

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@dataclass(frozen=True)
class Frame:
    ts: float
    data: bytes  # the whole frame; files keep SNAPLEN bytes of it
    way: str  # c2s | s2c: the migration connection; lv: the libvirtd connection on 16509


def tcp(src: tuple[str, int], dst: tuple[str, int], flags: str, payload: int = 0, seq: int = 0) -> bytes:
    pkt = (
        Ether(src=MACS[src[0]], dst=MACS[dst[0]])
        / IP(src=src[0], dst=dst[0])
        / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq)
    )
    return bytes(pkt / Raw(b"m" * payload) if payload else pkt)


def conversation() -> list[Frame]:
    """Handshake, 400 jumbo segments to the server with an ACK every 10, a short reply, FIN both ways;
    a libvirtd connection on 16509 interleaved. No timestamp falls near a whole second after EARLY."""
    out: list[Frame] = []
    t = T0 + 0.0001
    for src, dst, flags in ((CLIENT, SERVER, "S"), (SERVER, CLIENT, "SA"), (CLIENT, SERVER, "A")):
        out.append(Frame(t, tcp(src, dst, flags), "c2s" if src == CLIENT else "s2c"))
        t += 0.001
    data = tcp(CLIENT, SERVER, "A", DATA_SIZE)
    ack = tcp(SERVER, CLIENT, "A")
    for i in range(DATA_FRAMES):
        ts = T0 + 0.1001 + i * 0.008
        out.append(Frame(ts, data, "c2s"))
        if i % 10 == 9:
            out.append(Frame(ts + 0.0002, ack, "s2c"))
        if i % 100 == 50:
            out.append(Frame(ts + 0.0003, tcp(LV_CLIENT, LV_SERVER, "PA", 1000), "lv"))
            out.append(Frame(ts + 0.0004, tcp(LV_SERVER, LV_CLIENT, "PA", 500), "lv"))
    t = T0 + 3.5001
    for src, dst, flags, size in (
        (SERVER, CLIENT, "PA", REPLY),
        (CLIENT, SERVER, "FA", 0),
        (SERVER, CLIENT, "FA", 0),
        (CLIENT, SERVER, "A", 0),
    ):
        out.append(Frame(t, tcp(src, dst, flags, size), "c2s" if src == CLIENT else "s2c"))
        t += 0.001
    return out


def write_pcap(path: Path, frames: list[Frame], linktype: int = LINKTYPE_ETHERNET) -> Path:
    w = PcapWriter(path, linktype, SNAPLEN)
    for f in frames:
        w.write(f.ts, f.data, len(f.data))
    w.close()
    return path


def early_udp(path: Path) -> Path:
    frame = bytes(
        Ether(src=MACS[CLIENT[0]], dst="ff:ff:ff:ff:ff:ff")
        / IP(src="192.0.2.1", dst="192.0.2.2")
        / UDP(sport=5353, dport=5353)
        / Raw(b"u" * 30)
    )
    w = PcapWriter(path, LINKTYPE_ETHERNET, SNAPLEN)
    w.write(EARLY, frame, len(frame))
    w.close()
    return path


def total(frames: list[Frame], way: str) -> int:
    return sum(len(f.data) for f in frames if f.way == way)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return conversation()


@pytest.fixture
def files(tmp_path: Path, frames: list[Frame]) -> list[tuple[Path, str]]:
    return [
        (write_pcap(tmp_path / "br0.pcap", frames), "br0"),
        (write_pcap(tmp_path / "eth0.pcap", frames), "eth0"),
        (early_udp(tmp_path / "eth1.pcap"), "eth1"),
    ]


# Counting ----------------------------------------------------------------------------------------


def test_counts_match_what_was_generated(files: list[tuple[Path, str]], frames: list[Frame]) -> None:
    res = count_files(files, PORTS)
    c2s, s2c, lv = total(frames, "c2s"), total(frames, "s2c"), total(frames, "lv")
    for name in ("br0", "eth0"):
        i = res.get(name)
        assert i is not None
        # No direction in an Ethernet pcap: client -> server is outgoing (the source sends the stream).
        assert (i.bytes_tx, i.bytes_rx) == (c2s, s2c)
        assert (i.payload_tx, i.payload_rx) == (DATA_FRAMES * DATA_SIZE, REPLY)
        assert (i.packets_tx, i.packets_rx) == (
            sum(f.way == "c2s" for f in frames),
            sum(f.way == "s2c" for f in frames),
        )
        assert i.other_bytes == lv > 0  # the 16509 connection is seen but not counted
    eth1 = res.get("eth1")
    assert eth1 is not None and (eth1.bytes_tx, eth1.bytes_rx, eth1.packets, eth1.other_bytes) == (0, 0, 0, 0)
    shares = {i.name: i.payload / sum(j.payload for j in res.interfaces) for i in res.interfaces}
    assert shares == {"br0": 0.5, "eth0": 0.5, "eth1": 0.0}

    (conn,) = res.connections  # nothing for 16509
    assert (conn.client, conn.client_port, conn.server, conn.server_port) == (*CLIENT, *SERVER)
    assert (conn.payload_to_server, conn.payload_to_client) == (DATA_FRAMES * DATA_SIZE, REPLY)
    assert conn.packets == sum(f.way != "lv" for f in frames)  # a bridge and its port: counted once
    assert conn.interfaces == ("br0", "eth0")
    assert conn.first_payload == (b"m" * 16).hex()

    assert res.started_at == EARLY
    assert res.ended_at == pytest.approx(max(f.ts for f in frames), abs=1e-6)
    assert res.snaplen == SNAPLEN
    assert {i.name: i.pcap for i in res.interfaces} == {n: str(p) for p, n in files}


def test_bins_share_the_earliest_time_of_all_files(files: list[tuple[Path, str]], frames: list[Frame]) -> None:
    expected: dict[int, list[int]] = {}
    for f in frames:
        if f.way != "lv":
            b = expected.setdefault(int(f.ts - EARLY), [0, 0])
            b[0 if f.way == "c2s" else 1] += len(f.data)
    want = tuple(Bin(s, tx, rx) for s, (tx, rx) in sorted(expected.items()))
    assert [b.second for b in want] == [2, 3, 4, 5, 6]  # t0 came from eth1, 2.5 s before the stream
    for order in (files, files[::-1]):
        res = count_files(order, PORTS)
        br0, eth0 = res.get("br0"), res.get("eth0")
        assert br0 is not None and eth0 is not None
        assert br0.bins == eth0.bins == want
        assert res.started_at == EARLY


TSHARK_ROW = re.compile(
    r"^(?P<a>\S+):(?P<ap>\d+)\s+<->\s+(?P<b>\S+):(?P<bp>\d+)\s+"
    r"(?P<bf>\d+)\s+(?P<bb>[\d,.]+ \w+)\s+(?P<af>\d+)\s+(?P<ab>[\d,.]+ \w+)\s+(?P<tf>\d+)\s+(?P<tb>[\d,.]+ \w+)"
)
UNITS = {"bytes": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _bytes(text: str) -> tuple[float, int]:
    value, unit = text.split()
    return float(value.replace(",", "")), UNITS[unit]


def tshark_conversations(path: Path) -> dict[tuple[str, int, str, int], dict[str, int | tuple[float, int]]]:
    """`tshark -z conv,tcp`: per conversation A->B and B->A frames and bytes (bytes as (value, unit))."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    convs: dict[tuple[str, int, str, int], dict[str, int | tuple[float, int]]] = {}
    for line in out.splitlines():
        m = TSHARK_ROW.match(line)
        if m:
            convs[(m["a"], int(m["ap"]), m["b"], int(m["bp"]))] = {
                "a2b_frames": int(m["af"]),
                "a2b_bytes": _bytes(m["ab"]),
                "b2a_frames": int(m["bf"]),
                "b2a_bytes": _bytes(m["bb"]),
                "frames": int(m["tf"]),
                "bytes": _bytes(m["tb"]),
            }
    assert convs, out
    return convs


def assert_close(ours: int, shown: object) -> None:
    """tshark prints 4 significant digits at most and cuts the rest: agree within 0.1 %."""
    assert isinstance(shown, tuple)
    value, unit = shown
    assert unit == 1 or value >= 1000, f"{value} units of {unit}: too coarse to check within 0.1 %"
    assert abs(ours - value * unit) <= 0.001 * ours, (ours, value, unit)


@needs_tshark
def test_tshark_conversations_agree(files: list[tuple[Path, str]], frames: list[Frame]) -> None:
    res = count_files(files, PORTS)
    (conn,) = res.connections
    for path, name in files[:2]:
        iface = res.get(name)
        assert iface is not None
        convs = tshark_conversations(path)
        assert len(convs) == 2
        for (a, ap, b, bp), row in convs.items():
            if {ap, bp} == {LV_CLIENT[1], LV_SERVER[1]}:
                assert row["frames"] == sum(f.way == "lv" for f in frames)
                assert_close(iface.other_bytes, row["bytes"])
                continue
            assert {(a, ap), (b, bp)} == {CLIENT, SERVER}
            a_is_client = (a, ap) == CLIENT
            to_server = row["a2b_bytes"] if a_is_client else row["b2a_bytes"]
            to_client = row["b2a_bytes"] if a_is_client else row["a2b_bytes"]
            assert row["frames"] == conn.packets == iface.packets
            assert_close(iface.bytes_tx, to_server)
            assert_close(iface.bytes_rx, to_client)
            assert_close(iface.bytes_tx + iface.bytes_rx, row["bytes"])


@needs_tshark
def test_pcapng_counts_like_the_classic_file(files: list[tuple[Path, str]], tmp_path: Path) -> None:
    ng = tmp_path / "br0.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(files[0][0]), str(ng)], capture_output=True, timeout=60, check=True)
    a = count_files([files[0]], PORTS).get("br0")
    b = count_files([(ng, "br0")], PORTS).get("br0")
    assert a is not None and b is not None
    assert (a.bytes_tx, a.bytes_rx, a.payload_tx, a.payload_rx, a.other_bytes, a.bins) == (
        b.bytes_tx,
        b.bytes_rx,
        b.payload_tx,
        b.payload_rx,
        b.other_bytes,
        b.bins,
    )
    assert b.pcap == str(ng)


def test_a_file_cut_short_counts_its_complete_records_and_says_where(
    files: list[tuple[Path, str]], tmp_path: Path
) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(files[0][0].read_bytes()[:1000])
    res = count_files([files[1], (cut, "br0")], PORTS)
    (problem,) = res.problems
    assert str(cut) in problem and "offset" in problem
    whole = count_files([files[1], (files[0][0], "br0")], PORTS)
    assert 0 < res.get("br0").packets < whole.get("br0").packets  # complete records only, not none


# Direction ---------------------------------------------------------------------------------------


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_pcapng(path: Path, frames: list[Frame], flags: dict[str, int]) -> Path:
    """Ethernet pcapng (microseconds) with epb_flags per frame from FLAGS[way] (absent: no option)."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), _block(1, struct.pack("<HHI", 1, 0, 0))]
    for f in frames:
        units = round(f.ts * 1_000_000)
        data = f.data[:SNAPLEN]
        body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(data), len(f.data))
        body += data + b"\0" * (-len(data) % 4)
        if f.way in flags:
            body += struct.pack("<HHI", 2, 4, flags[f.way]) + struct.pack("<HH", 0, 0)
        out.append(_block(6, body))
    path.write_bytes(b"".join(out))
    return path


def _txrx(res: CaptureResult, name: str) -> tuple[int, int]:
    i = res.get(name)
    assert i is not None
    return i.bytes_tx, i.bytes_rx


def test_epb_flags_win_over_local_addresses_and_the_fallback(tmp_path: Path, frames: list[Frame]) -> None:
    c2s, s2c = total(frames, "c2s"), total(frames, "s2c")
    # The destination's view: what the client sent came in (1), what the server sent went out (2).
    path = write_pcapng(tmp_path / "dst.pcapng", frames, {"c2s": 1, "s2c": 2, "lv": 1})
    assert _txrx(count_files([(path, "san0")], PORTS), "san0") == (s2c, c2s)
    assert _txrx(count_files([(path, "san0")], PORTS, local={CLIENT[0]}), "san0") == (s2c, c2s)
    # Flags without a direction (0) leave it to the next rule.
    path = write_pcapng(tmp_path / "none.pcapng", frames, {"c2s": 0, "s2c": 0})
    assert _txrx(count_files([(path, "san0")], PORTS), "san0") == (c2s, s2c)
    assert _txrx(count_files([(path, "san0")], PORTS, local={SERVER[0]}), "san0") == (s2c, c2s)


def test_linux_cooked_packet_type_wins_over_local_addresses(tmp_path: Path, frames: list[Frame]) -> None:
    # A `tcpdump -i any` capture on the destination: the server's frames are outgoing (4), the rest host (0).
    cooked = [
        Frame(f.ts, bytes(CookedLinux(pkttype=4 if f.way == "s2c" else 0, proto=0x0800) / Ether(f.data).payload), f.way)
        for f in frames
    ]
    path = write_pcap(tmp_path / "any.pcap", cooked, LINKTYPE_LINUX_SLL)
    s2c = total(cooked, "s2c")
    for local in (None, {CLIENT[0]}, set()):
        res = count_files([(path, "any")], PORTS, local=local)
        tx, rx = _txrx(res, "any")
        assert tx == s2c and rx == total(cooked, "c2s"), local
    (conn,) = res.connections
    assert (conn.payload_to_server, conn.payload_to_client) == (DATA_FRAMES * DATA_SIZE, REPLY)


def test_local_addresses_decide_when_the_file_does_not(files: list[tuple[Path, str]], frames: list[Frame]) -> None:
    c2s, s2c = total(frames, "c2s"), total(frames, "s2c")
    one = files[:1]
    assert _txrx(count_files(one, PORTS, local={"198.51.100.12/24"}), "br0") == (s2c, c2s)  # addr/prefix form
    assert _txrx(count_files(one, PORTS, local={"198.51.100.11", "fe80::1"}), "br0") == (c2s, s2c)
    assert _txrx(count_files(one, PORTS, local=set()), "br0") == (0, c2s + s2c)  # given, none matches: no fallback
    assert _txrx(count_files(one, PORTS), "br0") == (c2s, s2c)


def test_local_ipv6_addresses_are_compared_canonically(tmp_path: Path) -> None:
    a, b = "2001:db8::1", "2001:db8::2"
    frames = [
        Frame(
            T0 + i * 0.1,
            bytes(
                Ether(src=MACS[CLIENT[0]], dst=MACS[SERVER[0]])
                / IPv6(src=s, dst=d)
                / TCP(sport=sp, dport=dp)
                / Raw(b"v" * n)
            ),
            way,
        )
        for i, (s, d, sp, dp, n, way) in enumerate(
            [(a, b, 40000, 49152, 900, "c2s"), (b, a, 49152, 40000, 0, "s2c"), (a, b, 40000, 49152, 300, "c2s")]
        )
    ]
    path = write_pcap(tmp_path / "v6.pcap", frames)
    res = count_files([(path, "v6")], PORTS, local={"2001:DB8:0:0::0002/64"})
    assert _txrx(res, "v6") == (total(frames, "s2c"), total(frames, "c2s"))
    (conn,) = res.connections
    assert (conn.client, conn.server, conn.payload_to_server) == (a, b, 1200)


def test_fallback_follows_the_connection_orientation(tmp_path: Path) -> None:
    # Captured mid-stream (no SYN), the server's frame first: the migration port still marks the server.
    late = [
        Frame(T0 + 0.1, tcp(SERVER, CLIENT, "A"), "s2c"),
        Frame(T0 + 0.2, tcp(CLIENT, SERVER, "A", 700), "c2s"),
        Frame(T0 + 0.3, tcp(SERVER, CLIENT, "A"), "s2c"),
    ]
    # Both ports in the range and the lower one is the client: only the SYN tells, seen after a stray ACK.
    client, server = ("198.51.100.11", 49152), ("198.51.100.12", 49200)
    syn = [
        Frame(T0 + 0.4, tcp(client, server, "S"), "c2s"),
        Frame(T0 + 0.5, tcp(server, client, "SA"), "s2c"),
        Frame(T0 + 0.6, tcp(client, server, "A", 1300), "c2s"),
        Frame(T0 + 0.7, tcp(server, client, "A", 200), "s2c"),
    ]
    path = write_pcap(tmp_path / "mid.pcap", late + syn)
    res = count_files([(path, "eth0")], PORTS)
    assert _txrx(res, "eth0") == (total(late + syn, "c2s"), total(late + syn, "s2c"))
    conns = {(c.client, c.client_port, c.server, c.server_port): c for c in res.connections}
    assert set(conns) == {(*CLIENT, *SERVER), (*client, *server)}
    assert conns[(*client, *server)].payload_to_server == 1300


def test_each_file_uses_its_own_rule(tmp_path: Path, frames: list[Frame]) -> None:
    flagged = write_pcapng(tmp_path / "dst.pcapng", frames, {"c2s": 1, "s2c": 2})
    plain = write_pcap(tmp_path / "src.pcap", frames)
    res = count_files([(flagged, "dst0"), (plain, "src0")], PORTS)
    c2s, s2c = total(frames, "c2s"), total(frames, "s2c")
    assert _txrx(res, "dst0") == (s2c, c2s)
    assert _txrx(res, "src0") == (c2s, s2c)
    (conn,) = res.connections
    assert conn.interfaces == ("dst0", "src0")


# interface_for -----------------------------------------------------------------------------------


def test_interface_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert interface_for(Path("/x/y/san0.pcap"), {}) == "san0"
    assert interface_for(Path("eth1.pcapng"), {}) == "eth1"
    assert interface_for(Path("captures/br0"), {}) == "br0"
    assert interface_for(Path("captures/run1/san0.pcap"), {"captures/run1/san0.pcap": "bond0"}) == "bond0"
    assert interface_for(Path("captures/run1/san0.pcap"), {"./captures/run1/san0.pcap": "bond0"}) == "bond0"
    assert interface_for(Path("/x/y/san0.pcap"), {"san0.pcap": "eth2"}) == "eth2"  # by file name
    # The full path wins over a file-name entry, whatever the order of the map.
    assert interface_for(Path("/x/san0.pcap"), {"san0.pcap": "a", "/x/san0.pcap": "b"}) == "b"
    # An entry for another file of the same name does not match: the stem does.
    assert interface_for(Path("/x/san0.pcap"), {"/other/san0.pcap": "z"}) == "san0"
    # A relative path and an absolute entry for the same file.
    monkeypatch.chdir(tmp_path)
    assert interface_for(Path("cap.pcap"), {str(tmp_path / "cap.pcap"): "eno1"}) == "eno1"
