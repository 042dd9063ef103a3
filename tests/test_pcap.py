"""pcap.PcapWriter and readers.read_pcap: round trip, file mode, errors, and tshark as an independent reader."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from verifier.capture.frames import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL
from verifier.capture.pcap import PcapWriter
from verifier.capture.readers import read_pcap as read
from verifier.capture.records import PcapError

SNAPLEN = 128
T0 = 1_700_000_000.0


def frames() -> list[tuple[float, bytes]]:
    """(timestamp, full frame) with payloads around the snap length, some microsecond-exact timestamps."""
    out = []
    for i, size in enumerate((0, 10, 74, 75, 1448, 8948)):
        pkt = Ether() / IP(src="198.51.100.11", dst="198.51.100.12") / TCP(sport=40000, dport=49152, seq=i)
        out.append((T0 + i + i * 3 / 1_000_000, bytes(pkt / Raw(b"\x5a" * size) if size else pkt)))
    return out


def write(path: Path, linktype: int = LINKTYPE_ETHERNET) -> list[tuple[float, bytes]]:
    written = frames()
    w = PcapWriter(path, linktype, SNAPLEN)
    for ts, data in written:
        w.write(ts, data, len(data))
    w.close()
    assert w.frames == len(written)
    return written


def test_round_trip_truncates_to_snaplen_and_keeps_orig_len(tmp_path: Path) -> None:
    path = tmp_path / "eth0.pcap"
    written = write(path, LINKTYPE_LINUX_SLL)
    linktype, it = read(path)
    assert linktype == LINKTYPE_LINUX_SLL
    back = list(it)
    assert len(back) == len(written)
    for (ts, data), (rts, rdata, orig) in zip(written, back, strict=True):
        assert orig == len(data)
        assert rdata == data[:SNAPLEN]
        assert rts == pytest.approx(ts, abs=5e-7)
    assert sum(len(d) > SNAPLEN for _, d in written) >= 2  # the truncation above was really exercised


def test_file_mode_is_0600_even_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh.pcap"
    old_umask = os.umask(0)
    try:
        write(fresh)
    finally:
        os.umask(old_umask)
    assert fresh.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("inside", "what"), [("data", "truncated record at"), ("header", "truncated record header")])
def test_truncated_file_names_the_file_and_offset(tmp_path: Path, inside: str, what: str) -> None:
    path = tmp_path / "cut.pcap"
    caps = [min(len(d), SNAPLEN) for _, d in write(path)]
    last_record = 24 + sum(16 + c for c in caps[:-1])
    cut = last_record + 16 + caps[-1] // 2 if inside == "data" else last_record + 7
    path.write_bytes(path.read_bytes()[:cut])
    _, it = read(path)
    with pytest.raises(PcapError) as err:
        list(it)
    assert str(path) in err.value.message
    assert f"offset {last_record}" in err.value.message
    assert what in err.value.message


def test_not_a_pcap_file(tmp_path: Path) -> None:
    for name, content in (
        ("notes.txt", b"this is not a capture file at all\n"),
        ("x.pcapng", b"\x0a\x0d\x0d\x0a" + b"\0" * 40),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(PcapError) as err:
            read(path)
        assert str(path) in err.value.message
        assert "offset 0" in err.value.message
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3\xb2\xa1")
    with pytest.raises(PcapError, match="offset 0"):
        read(short)


def test_reads_big_endian_nanosecond_files(tmp_path: Path) -> None:
    # Written by hand, not by PcapWriter: magic a1b23c4d (ns), big-endian, one 60-byte frame captured whole.
    frame = bytes(range(60))
    path = tmp_path / "be.pcap"
    path.write_bytes(
        struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
        + struct.pack(">IIII", 1_700_000_000, 250_000_000, 60, 1514)
        + frame
    )
    linktype, it = read(path)
    assert linktype == LINKTYPE_ETHERNET
    ((ts, data, orig),) = list(it)
    assert (data, orig) == (frame, 1514)
    assert ts == pytest.approx(1_700_000_000.25)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_agrees_with_what_we_wrote(tmp_path: Path) -> None:
    path = tmp_path / "oracle.pcap"
    written = write(path)
    fields = ("frame.len", "frame.cap_len", "frame.time_epoch")
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == len(written)
    assert sum(int(r[0]) for r in rows) == sum(len(d) for _, d in written)
    assert [int(r[1]) for r in rows] == [min(len(d), SNAPLEN) for _, d in written]
    # Microsecond timestamps: T0 + i seconds + 3*i microseconds, exactly.
    assert [Decimal(r[2]) for r in rows] == [
        Decimal(int(T0) + i) + Decimal(3 * i) / 1_000_000 for i in range(len(rows))
    ]
