"""readers.read_any: classic pcap and pcapng from real tools (editcap, tshark, mergecap, tcpdump), by hand, broken.

tshark is the independent reader: for every file, the frames it reads (count and sum of frame.len)
must be the records read_any yields; for a broken file, the records before the PcapError must be
the frames tshark printed before giving up. A file cut short raises CutShort, or, read with a
FileInfo, just ends there (FileInfo.cut_short), which is how count_files counts it and warns.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import CookedLinux, Ether
from scapy.packet import Raw

from verifier.analyze import count_files, interface_for, validate_options
from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, decode
from verifier.capture.pcap import PcapWriter
from verifier.capture.readers import MAX_RECORD, CutShort, FileInfo, Record, read_any
from verifier.capture.records import PcapError
from verifier.errors import UsageError

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("tshark", "editcap", "mergecap")), reason="wireshark tools not installed"
)

T0 = 1_700_000_000.0
SNAPLEN = 128
CLIENT, SERVER = ("198.51.100.11", 40000), ("198.51.100.12", 49152)
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


# Files and oracles -------------------------------------------------------------------------------


def eth_frames() -> list[tuple[float, bytes]]:
    """(timestamp, whole frame): payloads both ways, some longer than the snap length, microsecond times."""
    out = []
    for i, size in enumerate((0, 10, 1448, 74, 8948, 0, 300)):
        src, dst = (CLIENT, SERVER) if i % 3 else (SERVER, CLIENT)
        pkt = Ether(src=MAC_A, dst=MAC_B) / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=i)
        out.append((T0 + i * 0.25 + i * 7e-6, bytes(pkt / Raw(b"\x5a" * size) if size else pkt)))
    return out


def write_classic(path: Path, frames: list[tuple[float, bytes]], linktype: int = LINKTYPE_ETHERNET) -> None:
    w = PcapWriter(path, linktype, SNAPLEN)
    for ts, data in frames:
        w.write(ts, data, len(data))
    w.close()


def tshark(path: Path, *fields: str) -> tuple[list[list[str]], int]:
    """Rows of FIELDS for every frame tshark reads from PATH (also those before an error), and its exit code."""
    args = [a for f in fields for a in ("-e", f)]
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", *args], capture_output=True, text=True, timeout=60
    )
    return [line.split("\t") for line in proc.stdout.splitlines()], proc.returncode


def assert_tshark_agrees(path: Path, records: list[Record]) -> list[list[str]]:
    rows, rc = tshark(path, "frame.len", "frame.time_epoch", "frame.packet_flags_direction", "sll.pkttype")
    assert rc == 0
    assert len(rows) == len(records)
    assert sum(int(r[0]) for r in rows) == sum(r.orig_len for r in records)
    assert [int(r[0]) for r in rows] == [r.orig_len for r in records]
    return rows


def read_until_error(path: Path) -> tuple[list[Record], PcapError]:
    got: list[Record] = []
    with pytest.raises(PcapError) as err:
        for rec in read_any(path):
            got.append(rec)
    return got, err.value


def assert_error(err: PcapError, path: Path, offset: int, *words: str) -> None:
    assert str(path) in err.message
    assert f"offset {offset}" in err.message, err.message
    for word in words:
        assert word in err.message, err.message
    assert err.hint
    assert "\n" not in err.one_line()


def convert(tool: str, src: Path, dst: Path) -> Path:
    if tool == "editcap":
        cmd = ["editcap", "-F", "pcapng", str(src), str(dst)]
    else:
        cmd = ["tshark", "-r", str(src), "-w", str(dst), "-F", "pcapng"]
    subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    assert dst.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # really pcapng now
    return dst


# pcapng written by hand --------------------------------------------------------------------------


def block(btype: int, body: bytes, e: str = "<", length: int | None = None, trailer: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n if length is None else length) + body + struct.pack(e + "I", trailer or n)


def opt(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(e: str = "<", major: int = 1) -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, 0, -1) + opt(4, b"pytest", e), e)


def idb(
    linktype: int, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None, e: str = "<"
) -> bytes:
    opts = opt(2, b"if-name", e)
    if tsresol is not None:
        opts += opt(9, bytes([tsresol]), e)
    if tsoffset is not None:
        opts += opt(14, struct.pack(e + "q", tsoffset), e)
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts + opt(0, b"", e), e)


def epb(ifid: int, units: int, data: bytes, orig: int | None = None, flags: int | None = None, e: str = "<") -> bytes:
    body = struct.pack(e + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(data), orig or len(data))
    body += data + b"\0" * (-len(data) % 4)
    if flags is not None:
        body += opt(2, struct.pack(e + "I", flags), e) + opt(0, b"", e)
    return block(6, body, e)


def spb(data: bytes, orig: int, e: str = "<") -> bytes:
    return block(3, struct.pack(e + "I", orig) + data, e)


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], size: int = 0) -> bytes:
    pkt = IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1])
    return bytes(pkt / Raw(b"q" * size) if size else pkt)


def sll2(payload: bytes, pkttype: int, ifindex: int = 7) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6, b"\x02" * 6) + payload


def kitchen_sink() -> tuple[bytes, list[tuple[float, int, int, bool | None]], list[int]]:
    """Two sections (little- then big-endian), four interfaces, four resolutions, SPB, skipped blocks.

    Returns (file bytes, expected (ts, orig_len, linktype, outgoing) per record, block offsets).
    """
    eth = bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src=CLIENT[0], dst=SERVER[0])
        / TCP(sport=CLIENT[1], dport=SERVER[1])
        / Raw(b"e" * 200)
    )
    raw = tcp_frame(SERVER, CLIENT, 40)
    blocks = [
        shb("<"),
        idb(LINKTYPE_ETHERNET, 65535),  # default resolution: microseconds
        idb(LINKTYPE_RAW, 0, tsresol=9),  # nanoseconds
        block(4, struct.pack("<HH4sHH", 1, 4, bytes([10, 0, 0, 1]), 0, 0)),  # name resolution: skipped
        epb(0, 1_700_000_000_250_000, eth[:SNAPLEN], len(eth), flags=1),  # inbound
        epb(1, 1_700_000_001_123_456_789, raw, flags=2),  # outbound
        block(0x80000001, b"local-use block, skipped"),
        block(5, struct.pack("<III", 0, 0, 0)),  # interface statistics: skipped
        epb(0, 1_700_000_002_000_001, eth, flags=0),  # flags without a direction: unknown
        shb(">"),
        idb(LINKTYPE_LINUX_SLL2, 64, tsresol=0x94, tsoffset=1_000_000, e=">"),  # 2^-20 s, +1e6 s
        epb(0, 5 * 2**20 + 2**19, sll2(raw, 4), e=">"),  # outgoing from SLL2, no flags
        epb(0, 6 * 2**20, sll2(raw, 0), flags=2, e=">"),  # flags win over SLL2's "host"
        spb(sll2(raw, 4)[:64], len(sll2(raw, 4)), e=">"),  # no time: the previous packet's
        idb(LINKTYPE_ETHERNET, 0, tsresol=3, e=">"),  # milliseconds
        epb(1, 1_700_000_003_500, eth, e=">"),
    ]
    offsets, pos = [], 0
    for b in blocks:
        offsets.append(pos)
        pos += len(b)
    offsets.append(pos)
    n2 = len(sll2(raw, 4))
    expected = [
        (1_700_000_000.25, len(eth), LINKTYPE_ETHERNET, False),
        (1_700_000_001.123456789, len(raw), LINKTYPE_RAW, True),
        (1_700_000_002.000001, len(eth), LINKTYPE_ETHERNET, None),
        (1_000_005.5, n2, LINKTYPE_LINUX_SLL2, True),
        (1_000_006.0, n2, LINKTYPE_LINUX_SLL2, True),
        (1_000_006.0, n2, LINKTYPE_LINUX_SLL2, True),
        (1_700_000_003.5, len(eth), LINKTYPE_ETHERNET, None),
    ]
    return b"".join(blocks), expected, offsets


# Classic pcap ------------------------------------------------------------------------------------


def test_classic_pcap_little_endian_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "eth0.pcap"
    written = eth_frames()
    write_classic(path, written)
    records = list(read_any(path))
    assert [(r.data, r.orig_len, r.linktype, r.outgoing) for r in records] == [
        (d[:SNAPLEN], len(d), LINKTYPE_ETHERNET, None) for _, d in written
    ]
    assert [r.ts for r in records] == pytest.approx([ts for ts, _ in written], abs=5e-7)
    rows = assert_tshark_agrees(path, records)
    assert [Decimal(r[1]) for r in rows] == [Decimal(round(ts * 1e6)) / 10**6 for ts, _ in written]


def test_classic_pcap_big_endian_nanoseconds(tmp_path: Path) -> None:
    frames = [bytes(Ether(src=MAC_A, dst=MAC_B) / tcp_frame(CLIENT, SERVER, n)) for n in (0, 500, 3000)]
    path = tmp_path / "be.pcap"
    path.write_bytes(
        struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
        + b"".join(struct.pack(">IIII", 1_000 + i, 123_456_789 + i, len(f), len(f)) + f for i, f in enumerate(frames))
    )
    records = list(read_any(path))
    assert [r.data for r in records] == frames
    assert [r.ts for r in records] == pytest.approx([1_000 + i + (123_456_789 + i) / 1e9 for i in range(3)], abs=1e-12)
    rows = assert_tshark_agrees(path, records)
    assert [Decimal(r[1]) for r in rows] == [Decimal(1_000 + i) + Decimal(123_456_789 + i) / 10**9 for i in range(3)]


# pcapng from real tools --------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["editcap", "tshark"])
def test_pcapng_converted_by_tools_reads_like_the_classic_file(tmp_path: Path, tool: str) -> None:
    classic = tmp_path / "san0.pcap"
    write_classic(classic, eth_frames())
    ng = convert(tool, classic, tmp_path / "san0.pcapng")
    want, got = list(read_any(classic)), list(read_any(ng))
    assert [(r.data, r.orig_len, r.linktype, r.outgoing) for r in got] == [
        (r.data, r.orig_len, r.linktype, r.outgoing) for r in want
    ]
    assert [r.ts for r in got] == pytest.approx([r.ts for r in want], abs=1e-9)
    assert_tshark_agrees(ng, got)


@pytest.mark.parametrize("tool", ["editcap", "tshark"])
def test_nanosecond_pcapng(tmp_path: Path, tool: str) -> None:
    # Small epoch seconds so a float holds every nanosecond; a microsecond file could not give these times.
    frames = [bytes(Ether(src=MAC_A, dst=MAC_B) / tcp_frame(CLIENT, SERVER, n)) for n in (0, 1, 2, 1448)]
    stamps = [(1_000 + i, 123_456_789 + 111 * i) for i in range(len(frames))]
    classic = tmp_path / "ns.pcap"
    classic.write_bytes(
        struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
        + b"".join(struct.pack("<IIII", s, ns, len(f), len(f)) + f for (s, ns), f in zip(stamps, frames, strict=True))
    )
    ng = convert(tool, classic, tmp_path / "ns.pcapng")
    records = list(read_any(ng))
    assert [r.data for r in records] == frames
    assert [r.ts for r in records] == pytest.approx([s + ns / 1e9 for s, ns in stamps], abs=1e-12)
    rows = assert_tshark_agrees(ng, records)
    for r, row in zip(records, rows, strict=True):
        assert abs(Decimal(r.ts) - Decimal(row[1])) < Decimal("1e-12")


def test_two_interfaces_merged_by_mergecap(tmp_path: Path) -> None:
    eth = tmp_path / "eth.pcap"
    write_classic(eth, eth_frames())
    raw = tmp_path / "raw.pcap"
    raw_frames = [(T0 + 0.1 + i, tcp_frame(SERVER, CLIENT, 100 * i)) for i in range(4)]
    write_classic(raw, raw_frames, LINKTYPE_RAW)
    merged = tmp_path / "both.pcapng"
    subprocess.run(
        ["mergecap", "-F", "pcapng", "-w", str(merged), str(eth), str(raw)], capture_output=True, timeout=60, check=True
    )
    records = list(read_any(merged))
    assert sum(r.linktype == LINKTYPE_ETHERNET for r in records) == len(eth_frames())
    assert sum(r.linktype == LINKTYPE_RAW for r in records) == len(raw_frames)
    assert [r.ts for r in records] == sorted(r.ts for r in records)  # mergecap interleaved them by time
    rows, rc = tshark(merged, "frame.len", "frame.interface_id")
    assert rc == 0
    assert {row[1] for row in rows} == {"0", "1"}
    assert [int(row[0]) for row in rows] == [r.orig_len for r in records]
    for r in records:
        seg = decode(r.data, r.orig_len, r.linktype)
        assert seg is not None and seg.dport in (CLIENT[1], SERVER[1])


# pcapng written by hand --------------------------------------------------------------------------


def test_sections_interfaces_resolutions_flags_and_skipped_blocks(tmp_path: Path) -> None:
    content, expected, _ = kitchen_sink()
    path = tmp_path / "sink.pcapng"
    path.write_bytes(content)
    records = list(read_any(path))
    assert [(r.orig_len, r.linktype, r.outgoing) for r in records] == [e[1:] for e in expected]
    assert [r.ts for r in records] == pytest.approx([e[0] for e in expected], abs=1e-6)
    assert len(records[0].data) == SNAPLEN < records[0].orig_len
    assert len(records[5].data) == 64  # SPB: captured length is the interface's snap length
    rows = assert_tshark_agrees(path, records)
    # tshark's reading of the epb_flags direction agrees wherever the file records one.
    assert [int(row[2], 16) if row[2] else None for row in rows] == [1, 2, 0, None, 2, None, None]
    # and of the times (tshark gives a Simple Packet Block no time at all, so skip it).
    for i, (r, row) in enumerate(zip(records, rows, strict=True)):
        if i != 5:
            assert abs(Decimal(r.ts) - Decimal(row[1])) < Decimal("1e-6"), i


def test_direction_from_linux_cooked_headers(tmp_path: Path) -> None:
    ip = tcp_frame(CLIENT, SERVER, 10)
    sll = [bytes(CookedLinux(pkttype=t, proto=0x0800) / IP(ip)) for t in (0, 4, 1, 4, 3)]
    path = tmp_path / "any.pcap"
    write_classic(path, [(T0 + i, f) for i, f in enumerate(sll)], LINKTYPE_LINUX_SLL)
    records = list(read_any(path))
    assert [r.outgoing for r in records] == [False, True, False, True, False]
    rows = assert_tshark_agrees(path, records)
    assert [row[3] for row in rows] == ["0", "4", "1", "4", "3"]
    path2 = tmp_path / "any2.pcap"
    write_classic(path2, [(T0 + i, sll2(ip, t)) for i, t in enumerate((4, 0, 4))], LINKTYPE_LINUX_SLL2)
    records = list(read_any(path2))
    assert [r.outgoing for r in records] == [True, False, True]
    rows = assert_tshark_agrees(path2, records)
    assert [row[3] for row in rows] == ["4", "0", "4"]
    assert all(decode(r.data, r.orig_len, r.linktype) is not None for r in records)


# Real Linux cooked captures on lo ----------------------------------------------------------------


def _listening_socket() -> socket.socket:
    for port in range(49152, 49216):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen(1)
        return s
    pytest.skip("no free port in 49152-49215 on 127.0.0.1")


def _start_tcpdump(linktype: str, path: Path, port: int) -> subprocess.Popen[bytes]:
    # `-i any` is the only way to get cooked headers; the filter keeps only our 127.0.0.1 traffic (lo).
    cmd = ["tcpdump", "-i", "any", "-y", linktype, "-p", "-n", "--immediate-mode", "-U", "-s", str(SNAPLEN)]
    cmd += ["-c", "500", "-w", str(path), f"host 127.0.0.1 and tcp port {port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + 10
    seen = b""
    while b"listening on" not in seen:
        left = deadline - time.monotonic()
        chunk = os.read(fd, 4096) if left > 0 and sel.select(left) else b""
        if not chunk:
            proc.kill()
            proc.wait(5)
            sel.close()
            pytest.fail(f"tcpdump did not start: {seen.decode(errors='replace')}")
        seen += chunk
    sel.close()
    return proc


def _stop_tcpdump(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("tcpdump did not stop")
    captured = [line for line in err.decode(errors="replace").splitlines() if "packets captured" in line]
    return int(captured[0].split()[0])


def _conversation(srv: socket.socket, chunks: tuple[int, ...], reply: int) -> None:
    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            got = 0
            while got < sum(chunks):
                b = conn.recv(1 << 16)
                if not b:
                    break
                got += len(b)
            conn.sendall(b"r" * reply)
            conn.recv(1)  # wait for the client's FIN

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(srv.getsockname(), timeout=5) as cl:
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for n in chunks:
            cl.sendall(b"c" * n)
            time.sleep(0.01)
        got = 0
        while got < reply:
            b = cl.recv(1 << 16)
            if not b:
                break
            got += len(b)
    t.join(5)
    assert not t.is_alive()


LO_CHUNKS, LO_REPLY = (1000, 30000, 5), 777


@pytest.fixture(scope="module")
def lo_captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """One small TCP conversation on 127.0.0.1, captured at once as LINUX_SLL and as LINUX_SLL2."""
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        pytest.skip("needs root and tcpdump")
    tmp = tmp_path_factory.mktemp("lo")
    srv = _listening_socket()
    port = srv.getsockname()[1]
    paths = {lt: tmp / f"{lt}.pcap" for lt in ("LINUX_SLL", "LINUX_SLL2")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for lt, path in paths.items():
            procs[lt] = _start_tcpdump(lt, path, port)
        _conversation(srv, LO_CHUNKS, LO_REPLY)
        time.sleep(0.2)  # let the last frames reach the files
        counts = {lt: _stop_tcpdump(proc) for lt, proc in procs.items()}
    finally:
        srv.close()
        for proc in procs.values():  # only after a failure: stop whatever still runs
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    yield {"paths": paths, "counts": counts, "port": port}


def _patch_direction(src: Path, dst: Path, linktype: int, port: int) -> int:
    """Copy a classic pcap, marking the client's frames (to PORT) as outgoing; return how many."""
    b = bytearray(src.read_bytes())
    pos, marked = 24, 0
    while pos < len(b):
        caplen = struct.unpack_from("<I", b, pos + 8)[0]
        frame = pos + 16
        seg = decode(bytes(b[frame : frame + caplen]), caplen, linktype)
        if seg is not None and seg.dport == port:
            if linktype == LINKTYPE_LINUX_SLL:
                b[frame : frame + 2] = b"\x00\x04"
            else:
                b[frame + 10] = 4
            marked += 1
        pos = frame + caplen
    dst.write_bytes(bytes(b))
    return marked


@pytest.mark.parametrize(("name", "linktype"), [("LINUX_SLL", LINKTYPE_LINUX_SLL), ("LINUX_SLL2", LINKTYPE_LINUX_SLL2)])
def test_real_cooked_capture_on_lo(lo_captures: dict[str, object], tmp_path: Path, name: str, linktype: int) -> None:
    paths, counts, port = lo_captures["paths"], lo_captures["counts"], lo_captures["port"]
    assert isinstance(paths, dict) and isinstance(counts, dict) and isinstance(port, int)
    path = paths[name]
    records = list(read_any(path))
    assert len(records) == counts[name] > 0  # what tcpdump said it wrote
    assert {r.linktype for r in records} == {linktype}
    rows = assert_tshark_agrees(path, records)
    # Direction is known for every frame, and is what tshark reads in the packet type. libpcap drops
    # the outgoing copy of each frame on lo (it would see every frame twice), so all are "host" here.
    assert [r.outgoing for r in records] == [row[3] == "4" for row in rows]
    assert all(r.outgoing is False for r in records)
    if linktype == LINKTYPE_LINUX_SLL2:
        assert {struct.unpack_from("!I", r.data, 4)[0] for r in records} == {socket.if_nametoindex("lo")}
    # Counted end to end: the payload both ways is exactly what the conversation sent.
    res = count_files([(path, "lo")], ((port, port),))
    (conn,) = res.connections
    assert (conn.server_port, conn.payload_to_server, conn.payload_to_client) == (port, sum(LO_CHUNKS), LO_REPLY)
    lo = res.get("lo")
    assert lo is not None and lo.bytes_rx == sum(r.orig_len for r in records) and lo.bytes_tx == 0

    # The same capture with the client's frames marked outgoing, as on a host that sent them.
    marked_path = tmp_path / f"{name}-out.pcap"
    marked = _patch_direction(path, marked_path, linktype, port)
    records = list(read_any(marked_path))
    rows = assert_tshark_agrees(marked_path, records)
    assert 0 < sum(r.outgoing is True for r in records) == marked < len(records)
    assert [r.outgoing for r in records] == [row[3] == "4" for row in rows]
    res = count_files([(marked_path, "lo")], ((port, port),))
    lo = res.get("lo")
    assert lo is not None
    assert lo.bytes_tx == sum(r.orig_len for r in records if r.outgoing)
    assert lo.payload_tx == sum(LO_CHUNKS) and lo.payload_rx == LO_REPLY

    # And once more as pcapng (editcap): no epb_flags there, the cooked header still gives direction.
    ng = convert("editcap", marked_path, tmp_path / f"{name}-out.pcapng")
    assert [r.outgoing for r in read_any(ng)] == [r.outgoing for r in records]
    assert_tshark_agrees(ng, list(read_any(ng)))


# Broken files ------------------------------------------------------------------------------------


def _classic_bytes() -> tuple[bytes, list[int]]:
    frames = eth_frames()
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
    starts = []
    for ts, data in frames:
        starts.append(len(out))
        cap = data[:SNAPLEN]
        out += struct.pack("<IIII", int(ts), 0, len(cap), len(data)) + cap
    starts.append(len(out))
    return bytes(out), starts


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("file header", ("truncated pcap file header",)),
        ("record header", ("truncated record header",)),
        ("mid-record", ("truncated record",)),
    ],
)
def test_truncated_classic_pcap(tmp_path: Path, where: str, words: tuple[str, ...]) -> None:
    content, starts = _classic_bytes()
    rec = starts[4]
    cut, offset = {"file header": (13, 0), "record header": (rec + 7, rec), "mid-record": (rec + 40, rec)}[where]
    path = tmp_path / "cut.pcap"
    path.write_bytes(content[:cut])
    got, err = read_until_error(path)
    assert_error(err, path, offset, *words)
    rows, rc = tshark(path, "frame.len")
    assert rc != 0
    assert [int(r[0]) for r in rows] == [r.orig_len for r in got]
    assert len(got) == (4 if offset else 0)
    assert_tolerated(path, got, err)


@pytest.mark.parametrize(
    ("where", "block_index", "extra", "words"),
    [
        ("section header", 0, 10, ("truncated",)),
        ("block header", 4, 5, ("truncated block header",)),
        ("mid-block", 4, 30, ("truncated block of type 0x6",)),
        ("trailer", 8, -2, ("truncated block of type 0x6",)),
        ("skipped block", 6, 9, ("truncated block of type 0x80000001",)),
    ],
)
def test_truncated_pcapng(tmp_path: Path, where: str, block_index: int, extra: int, words: tuple[str, ...]) -> None:
    content, expected, offsets = kitchen_sink()
    start = offsets[block_index]
    cut = start + extra if extra > 0 else offsets[block_index + 1] + extra
    path = tmp_path / "cut.pcapng"
    path.write_bytes(content[:cut])
    got, err = read_until_error(path)
    assert_error(err, path, start, *words)
    assert [r.orig_len for r in got] == [e[1] for e in expected[: len(got)]]
    rows, rc = tshark(path, "frame.len")
    assert rc != 0
    assert [int(r[0]) for r in rows] == [r.orig_len for r in got]
    assert_tolerated(path, got, err)


def assert_tolerated(path: Path, got: list[Record], err: PcapError) -> None:
    """A cut after the file header: the complete records, then the end, with FileInfo saying where."""
    if not isinstance(err, CutShort):
        assert "offset 0" in err.message  # only a cut in the file header refuses the file
        with pytest.raises(PcapError):
            list(read_any(path, FileInfo()))
        return
    info = FileInfo()
    assert list(read_any(path, info)) == got
    assert info.cut_short is not None and info.cut_short.message == err.message and info.records == len(got)


def test_every_truncation_fails_unless_on_a_block_boundary(tmp_path: Path) -> None:
    for name, (content, boundaries) in {
        "every.pcapng": (kitchen_sink()[0], kitchen_sink()[2][1:]),
        "every.pcap": _classic_bytes(),
    }.items():
        path = tmp_path / name
        for cut in range(len(content) + 1):
            path.write_bytes(content[:cut])
            try:
                n = sum(1 for _ in read_any(path))
            except PcapError as err:
                assert cut not in boundaries, (name, cut, err.message)
                assert str(path) in err.message and "offset" in err.message
            else:
                assert cut in boundaries, (name, cut)
                assert n <= 7


def _malformed(case: str) -> tuple[bytes, int, str]:
    """(file content, offset the error must name, a word of the message)."""
    content, _, offsets = kitchen_sink()
    e4 = offsets[4]  # the first enhanced packet block
    head = content[:e4]
    eth = bytes(Ether(src=MAC_A, dst=MAC_B) / tcp_frame(CLIENT, SERVER))
    if case == "random bytes":
        return random.Random(7).randbytes(4096), 0, "not a pcap or pcapng file"
    if case == "empty":
        return b"", 0, "empty file"
    if case == "length not a multiple of 4":
        return head + block(6, b"\0" * 40, length=51), e4, "bad block length 51"
    if case == "length below 12":
        return head + struct.pack("<II", 6, 8) + b"\0" * 64, e4, "bad block length 8"
    if case == "trailer disagrees":
        return head + block(6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd", trailer=999), e4, "inconsistent"
    if case == "huge skipped block":
        return head + struct.pack("<II", 0x80000001, 0xFFFFFFF0) + b"\0" * 64, e4, "truncated block of type 0x80000001"
    if case == "huge packet block":
        return head + struct.pack("<II", 6, 0x7FFFFFF0) + b"\0" * 64, e4, "implausible block length"
    if case == "record over 262144 (pcapng)":
        body = struct.pack("<IIIII", 0, 0, 0, MAX_RECORD + 4, MAX_RECORD + 4) + b"\0" * (MAX_RECORD + 4)
        return head + block(6, body), e4, f"implausible record length {MAX_RECORD + 4}"
    if case == "record over 262144 (pcap)":
        hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
        # Three good records first: with fewer, wiretap guesses another pcap variant and reads garbage.
        recs = struct.pack("<IIII", 0, 0, len(eth), len(eth)) + eth
        big = struct.pack("<IIII", 0, 0, MAX_RECORD + 1, MAX_RECORD + 1) + b"\0" * (MAX_RECORD + 1)
        return hdr + 3 * recs + big, 24 + 3 * len(recs), "implausible record length"
    if case == "captured length overruns block":
        return head + block(6, struct.pack("<IIIII", 0, 0, 0, 100, 100) + b"x" * 8), e4, "overruns its block"
    if case == "undeclared interface":
        return head + epb(5, 0, eth), e4, "undeclared interface 5"
    if case == "bad byte-order magic":
        bad = bytearray(content)
        bad[8:12] = b"\x01\x02\x03\x04"
        return bytes(bad), 0, "byte-order magic"
    if case == "pcapng version 2":
        return shb("<", major=2) + content[offsets[1] :], 0, "unsupported pcapng version 2"
    if case == "option overruns block":
        return head + block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200)), e4, "overruns"
    raise AssertionError(case)


MALFORMED = [
    "random bytes",
    "empty",
    "length not a multiple of 4",
    "length below 12",
    "trailer disagrees",
    "huge skipped block",
    "huge packet block",
    "record over 262144 (pcapng)",
    "record over 262144 (pcap)",
    "captured length overruns block",
    "undeclared interface",
    "bad byte-order magic",
    "pcapng version 2",
    "option overruns block",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_files(tmp_path: Path, case: str) -> None:
    content, offset, word = _malformed(case)
    path = tmp_path / "bad.cap"
    path.write_bytes(content)
    got, err = read_until_error(path)
    assert_error(err, path, offset, word)
    rows, rc = tshark(path, "frame.len")
    if case == "length not a multiple of 4":
        # The format requires a multiple of 4; wiretap 4.0 tolerates it and reads a 0-byte frame.
        assert [int(r[0]) for r in rows] == [r.orig_len for r in got] + [0]
        return
    # tshark reads the same frames before the problem; it takes an empty file as an empty capture.
    assert [int(r[0]) for r in rows] == [r.orig_len for r in got]
    assert rc != 0 or case == "empty"


def test_unreadable_paths_raise_pcap_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.pcap", tmp_path):
        with pytest.raises(PcapError) as err:
            read_any(path)
        assert_error(err.value, path, 0, "cannot read")


def test_random_corruption_raises_only_pcap_error(tmp_path: Path) -> None:
    rng = random.Random(2024)
    sources = {"fuzz.pcapng": kitchen_sink()[0], "fuzz.pcap": _classic_bytes()[0]}
    outcomes = {"ok": 0, "error": 0}
    for name, content in sources.items():
        path = tmp_path / name
        for _ in range(300):
            b = bytearray(content)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            path.write_bytes(bytes(b))
            try:
                n = sum(1 for _ in read_any(path))
            except PcapError as err:
                assert str(path) in err.message and "offset" in err.message
                outcomes["error"] += 1
            else:
                assert n <= len(b) // 16  # a record takes at least 16 bytes, whatever the corruption
                outcomes["ok"] += 1
    assert outcomes["ok"] and outcomes["error"]  # both kinds of corruption were exercised


# Versions, compression, interface names ----------------------------------------------------------


@pytest.mark.parametrize(("major", "minor"), [(1, 4), (3, 0), (0, 0)])
def test_unsupported_pcap_version_is_refused_at_once(tmp_path: Path, major: int, minor: int) -> None:
    content = bytearray(_classic_bytes()[0])
    struct.pack_into("<HH", content, 4, major, minor)
    path = tmp_path / "v.pcap"
    path.write_bytes(bytes(content))
    with pytest.raises(PcapError) as err:
        read_any(path)  # before any iteration
    assert_error(err.value, path, 4, f"unsupported pcap version {major}.{minor}")
    # libpcap (tcpdump) refuses every major version but 2; wiretap refuses 1 but tries to read 3.
    if major == 1:
        assert tshark(path, "frame.len")[1] != 0


@pytest.mark.parametrize(
    ("magic", "word"),
    [
        (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
        (b"\xfd7zXZ\x00", "xz-compressed"),
        (b"BZh9", "bzip2-compressed"),
        (struct.pack("<I", 0xA1B2CD34), "modified (Kuznetzov) pcap"),
    ],
)
def test_other_formats_are_named(tmp_path: Path, magic: bytes, word: str) -> None:
    path = tmp_path / "x.cap"
    path.write_bytes(magic + bytes(60))
    with pytest.raises(PcapError) as err:
        read_any(path)
    assert_error(err.value, path, 0, word)


def test_gzip_is_read_like_the_plain_file(tmp_path: Path) -> None:
    content, expected, _ = kitchen_sink()
    for name, data in {"sink.pcapng": content, "eth.pcap": _classic_bytes()[0]}.items():
        plain, gz = tmp_path / name, tmp_path / (name + ".gz")
        plain.write_bytes(data)
        gz.write_bytes(gzip.compress(data))
        assert list(read_any(gz)) == list(read_any(plain))
        assert_tshark_agrees(gz, list(read_any(gz)))
    # Cut inside the compressed stream: the complete records, then CutShort (or the end, with FileInfo).
    gz = tmp_path / "cut.pcapng.gz"
    gz.write_bytes(gzip.compress(content)[: len(gzip.compress(content)) - 40])
    info = FileInfo()
    got = list(read_any(gz, info))
    assert info.cut_short is not None and "offset" in info.cut_short.message
    assert [r.orig_len for r in got] == [e[1] for e in expected[: len(got)]]
    with pytest.raises(CutShort):
        list(read_any(gz))
    empty = tmp_path / "empty.pcap.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(PcapError) as err:
        read_any(empty)
    assert_error(err.value, empty, 0, "empty file (gzip-compressed)")


def named_capture(*sections: list[tuple[str | None, int, list[tuple[float, bytes]]]]) -> bytes:
    """pcapng: per section, interfaces (if_name or None, link type, (ts, frame) list); frames interleaved by time."""
    out = b""
    for section in sections:
        out += shb()
        for name, linktype, _frames in section:
            opts = opt(2, name.encode()) + opt(0, b"") if name else b""
            out += block(1, struct.pack("<HHI", linktype, 0, 0) + opts)
        packets = sorted((ts, i, data) for i, (_n, _l, frames) in enumerate(section) for ts, data in frames)
        out += b"".join(epb(i, round(ts * 1_000_000), data) for ts, i, data in packets)
    return out


def test_interface_names_and_indexes_span_sections(tmp_path: Path) -> None:
    eth = eth_frames()
    path = tmp_path / "named.pcapng"
    path.write_bytes(named_capture([("san0", 1, eth[:3]), ("br0", 1, eth[3:])], [(None, 1, eth)]))
    info = FileInfo()
    records = list(read_any(path, info))
    assert [(i.name, i.section) for i in info.interfaces] == [("san0", 0), ("br0", 0), (None, 1)]
    assert [r.interface for r in records] == [0, 0, 0, 1, 1, 1, 1] + [2] * len(eth)
    rows, rc = tshark(path, "frame.interface_name")
    assert rc == 0
    # wiretap 4.0 agrees for the first section; in later ones it takes interface id N for the first
    # section's N (here "san0"), although the format numbers interfaces afresh in every section.
    assert [row[0] for row in rows[:7]] == [info.interfaces[r.interface].name for r in records[:7]]
    assert {row[0] for row in rows[7:]} == {"san0"}


# count_files over several interfaces of one file, and frames seen twice ---------------------------

PORTS_ALL = ((0, 65535),)


def test_one_pcapng_of_two_interfaces_counts_each(tmp_path: Path) -> None:
    """`dumpcap -i san0 -i br0`: a bridge and its port in one file count like two files."""
    eth = eth_frames()
    both = tmp_path / "both.pcapng"
    both.write_bytes(named_capture([("san0", 1, eth), ("br0", 1, [(ts + 1e-5, d) for ts, d in eth]), ("idle", 1, [])]))
    res = count_files([(both, "ignored")], PORTS_ALL)
    assert [i.name for i in res.interfaces] == ["br0", "idle", "san0"]  # idle carried nothing: zeros
    rows, rc = tshark(both, "frame.interface_name", "frame.len")
    assert rc == 0
    for name in ("san0", "br0"):
        iface = res.get(name)
        assert iface is not None and iface.pcap == str(both)
        assert iface.bytes_tx + iface.bytes_rx == sum(int(r[1]) for r in rows if r[0] == name)
        assert iface.packets == sum(r[0] == name for r in rows)
    (conn,) = res.connections
    assert conn.interfaces == ("br0", "san0") and conn.packets == len(eth)  # counted once
    # The same frames as two files give the same counts.
    files = []
    for name, shift in (("san0", 0.0), ("br0", 1e-5)):
        files.append((tmp_path / f"{name}.pcap", name))
        write_classic(files[-1][0], [(ts + shift, d) for ts, d in eth])
    apart = count_files(files, PORTS_ALL)
    for name in ("san0", "br0"):
        a, b = res.get(name), apart.get(name)
        assert a is not None and b is not None
        assert (a.bytes_tx, a.bytes_rx, a.packets, a.payload) == (b.bytes_tx, b.bytes_rx, b.packets, b.payload)


def test_a_single_named_interface_takes_the_files_name(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcapng"
    path.write_bytes(named_capture([("eth7", 1, eth_frames())], [("eth7", 1, [])]))
    assert [i.name for i in count_files([(path, "san0")], PORTS_ALL).interfaces] == ["san0"]


def test_identical_frames_at_the_same_time_on_one_interface_count_once(tmp_path: Path) -> None:
    eth = eth_frames()
    one = tmp_path / "one.pcapng"
    one.write_bytes(named_capture([("san0", 1, eth)]))
    once = count_files([(one, "san0")], PORTS_ALL).get("san0")
    assert once is not None and once.packets == len(eth)
    # Concatenated copies (cat a b): two sections, one interface name, each frame twice.
    twice = tmp_path / "twice.pcapng"
    twice.write_bytes(one.read_bytes() * 2)
    assert count_files([(twice, "x")], PORTS_ALL).get("x") == dataclasses.replace(once, name="x", pcap=str(twice))
    # Two interfaces of one file with the same name, the same frames: once.
    dup = tmp_path / "dup.pcapng"
    dup.write_bytes(named_capture([("san0", 1, eth), ("san0", 1, eth)]))
    assert count_files([(dup, "x")], PORTS_ALL).get("x") == dataclasses.replace(once, name="x", pcap=str(dup))
    # The same bytes a little later are another frame (a retransmission): counted.
    later = tmp_path / "later.pcap"
    write_classic(later, [(ts + 0.5, d) for ts, d in eth])
    res = count_files([(one, "san0"), (later, "san0")], PORTS_ALL).get("san0")
    assert res is not None and res.packets == 2 * len(eth)


def test_link_types_not_decoded(tmp_path: Path) -> None:
    eth = eth_frames()
    wifi = tmp_path / "wifi.pcap"
    write_classic(wifi, eth, 105)
    with pytest.raises(PcapError) as err:
        count_files([(wifi, "wlan0")], PORTS_ALL)
    assert "link type 105 (IEEE 802.11) is not decoded" in err.value.message and str(wifi) in err.value.message
    empty = tmp_path / "null.pcap"
    write_classic(empty, [], 0)
    with pytest.raises(PcapError) as err:
        count_files([(empty, "lo0")], PORTS_ALL)
    assert "link type 0 (BSD loopback) is not decoded" in err.value.message
    # Mixed: the Ethernet interface counts, the loopback one is reported.
    mixed = tmp_path / "mixed.pcapng"
    mixed.write_bytes(named_capture([("eth0", 1, eth), ("lo0", 0, [(T0, b"\x02\0\0\0" + tcp_frame(CLIENT, SERVER))])]))
    res = count_files([(mixed, "x")], PORTS_ALL)
    assert [i.name for i in res.interfaces] == ["eth0"]
    (problem,) = res.problems
    assert "1 frame(s) of link type 0 (BSD loopback)" in problem and "lo0" in problem


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, 12, 14, 228])
def test_raw_ipv4_link_types(tmp_path: Path, linktype: int) -> None:
    frames = [(T0 + i, tcp_frame(CLIENT, SERVER, 100 * i)) for i in range(4)]
    path = tmp_path / "raw.pcap"
    write_classic(path, frames, linktype)
    iface = count_files([(path, "raw")], PORTS_ALL).get("raw")
    assert iface is not None and iface.packets == 4 and iface.bytes_tx == sum(len(d) for _, d in frames)
    assert iface.payload_tx == 600


def test_raw_ipv6_with_extension_headers(tmp_path: Path) -> None:
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop

    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
    frames = [(T0 + i, bytes(pkt / TCP(sport=40000, dport=49152) / Raw(b"x" * 50))) for i in range(3)]
    path = tmp_path / "raw6.pcap"
    write_classic(path, frames, 229)
    iface = count_files([(path, "raw6")], PORTS_ALL).get("raw6")
    assert iface is not None and iface.packets == 3 and iface.payload_tx == 150


def test_tcp_options_cut_by_the_snap_length_are_not_counted() -> None:
    full = bytes(Ether(src=MAC_A, dst=MAC_B) / IP() / TCP(options=[("MSS", 1460), ("SAckOK", b""), ("NOP", None)] * 3))
    header_end = 14 + 20 + (full[14 + 20 + 12] >> 4) * 4
    assert decode(full[:header_end], len(full)) is not None
    assert decode(full[: header_end - 1], len(full)) is None  # tshark gives up on it too


def test_validate_options(tmp_path: Path) -> None:
    pcaps = [tmp_path / "san0.pcap", Path("rel/br0.pcap")]
    validate_options(pcaps, {"san0.pcap": "bond0", str(tmp_path / "san0.pcap"): "x", "rel/br0.pcap": "br0"}, [])
    validate_options(pcaps, {}, ["198.51.100.1", "198.51.100.1/24", "fe80::1%eth0", "2001:DB8::1"])
    for iface_map, local, words in (
        ({"other.pcap": "eth0"}, [], "--iface-map other.pcap=eth0 names a file that is not among"),
        ({}, ["notanip"], "--local 'notanip' is not an IP address"),
        ({}, ["198.51.100.1", "10.0.0.300"], "--local '10.0.0.300'"),
    ):
        with pytest.raises(UsageError) as err:
            validate_options(pcaps, iface_map, local)
        assert words in err.value.message and err.value.hint and "\n" not in err.value.one_line()
    assert interface_for(Path("/x/san0.pcap.gz"), {}) == "san0"
