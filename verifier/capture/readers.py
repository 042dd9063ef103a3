"""Read capture files of either format, classic pcap or pcapng, plain or gzipped, as `Record`s.

Classic pcap: version 2.x, both byte orders, microsecond and nanosecond magic (pcapng: see
`pcapng`). A gzip-compressed file (magic 1f 8b, as `tcpdump -w - | gzip` or a rotated `.gz`
makes) is read through gzip, as tshark reads it; other compressions are refused, naming them.

A file that cannot be read raises `PcapError` (one line: the file, the byte offset at fault, a
hint), never another exception type. A file that ends in the middle of a record raises `CutShort`
after its complete records, unless the caller passes a `FileInfo`: then the iteration just ends
and `FileInfo.cut_short` says where, so that a count can go on and warn.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from verifier.capture.pcapng import SHB_BYTES, read_pcapng
from verifier.capture.records import (
    HINT_FORMAT,
    HINT_MALFORMED,
    HINT_TRUNCATED,
    MAGIC_NS,
    MAGIC_US,
    MAX_RECORD,
    CutShort,
    FileInfo,
    InterfaceInfo,
    PcapError,
    Record,
    Source,
    cooked_direction,
)

__all__ = [
    "MAX_RECORD",
    "CutShort",
    "FileInfo",
    "InterfaceInfo",
    "Record",
    "classic_linktype",
    "read_any",
    "read_classic",
]

MAGIC_KUZNETZOV = 0xA1B2CD34  # "modified" pcap of old Red Hat tcpdump: 8 more bytes per record header
# Compressions tshark 4.0 does not read either: say what the file is and how to get a capture out of it.
_COMPRESSED = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zX": "xz", b"BZh": "bzip2", b"\x04\x22\x4d\x18": "lz4"}


def read_any(path: Path, info: FileInfo | None = None) -> Iterator[Record]:
    """Records of the classic pcap or pcapng file PATH (gzipped or not), in file order.

    The format is checked now (a file that is neither raises PcapError at once); the records are
    read lazily, and a problem further in raises PcapError when the iteration reaches it. With
    INFO, the file's interfaces are recorded there, and a file cut short ends the iteration
    (INFO.cut_short set) instead of raising.
    """
    src = Source(path)
    try:
        head = src.read(4, 0)
    except BaseException:
        src.close()
        raise
    compressed = " (gzip-compressed)" if src.gzip else ""
    if len(head) < 4:
        src.close()
        what = "empty file" if not head else f"only {len(head)} bytes"
        raise PcapError(f"{path}: {what}{compressed}, no capture header at offset 0", hint=HINT_FORMAT)
    src.close()
    out = info if info is not None else FileInfo()
    if head == SHB_BYTES:
        records = read_pcapng(Source(path), out)
    elif _classic_magic(head):
        _classic_header(_header_bytes(path), path)  # refuse a bad header now, not at the first record
        records = _classic(Source(path), out)
    else:
        raise PcapError(f"{path}: {_not_a_capture(head)}{compressed}", hint=HINT_FORMAT)
    return records if info is None else _tolerant(records, info)


def _tolerant(records: Iterator[Record], info: FileInfo) -> Iterator[Record]:
    try:
        for rec in records:
            info.records += 1
            yield rec
    except CutShort as err:
        info.cut_short = err


def _classic_magic(head: bytes) -> bool:
    return struct.unpack("<I", head)[0] in (MAGIC_US, MAGIC_NS) or struct.unpack(">I", head)[0] in (MAGIC_US, MAGIC_NS)


def _not_a_capture(head: bytes) -> str:
    magic = f"magic {head.hex()} at offset 0"
    if MAGIC_KUZNETZOV in (struct.unpack("<I", head)[0], struct.unpack(">I", head)[0]):
        return f"a modified (Kuznetzov) pcap file, not read ({magic}); rewrite it with `editcap -F pcap IN OUT`"
    for prefix, name in _COMPRESSED.items():
        if head.startswith(prefix):
            return f"{name}-compressed ({magic}); decompress it first"
    return f"not a pcap or pcapng file ({magic})"


def _header_bytes(path: Path) -> bytes:
    with Source(path) as src:
        return src.read(24, 0)


# Classic pcap ------------------------------------------------------------------------------------


def _classic_header(head: bytes, path: Path) -> tuple[str, int, int]:
    """(byte order, timestamp units per second, link type) from a classic pcap file header."""
    if len(head) < 24:
        raise PcapError(
            f"{path}: truncated pcap file header at offset 0 ({len(head)} of 24 bytes)", hint=HINT_TRUNCATED
        )
    if struct.unpack("<I", head[:4])[0] in (MAGIC_US, MAGIC_NS):
        endian = "<"
    elif struct.unpack(">I", head[:4])[0] in (MAGIC_US, MAGIC_NS):
        endian = ">"
    else:
        raise PcapError(
            f"{path}: not a classic pcap file (magic {head[:4].hex()} at offset 0)",
            hint="for pcapng use verify-path analyze, which reads both",
        )
    magic, major, minor, _zone, _sigfigs, _snaplen, link = struct.unpack(endian + "IHHiIII", head[:24])
    if major != 2:
        # libpcap and wiretap read version 2 only; another major version lays out its records differently.
        raise PcapError(
            f"{path}: unsupported pcap version {major}.{minor} at offset 4 (only version 2.x is read)",
            hint="rewrite it with `editcap -F pcap IN OUT` if some tool can read it, or capture again",
        )
    per_second = 1_000_000_000 if magic == MAGIC_NS else 1_000_000
    return endian, per_second, link & 0xFFFF  # the upper bits of the link type carry FCS information


def classic_linktype(path: Path) -> int:
    """Check that PATH is a classic pcap file now, and return its link type."""
    return _classic_header(_header_bytes(path), path)[2]


def read_classic(path: Path) -> Iterator[Record]:
    """Records of a classic pcap file (the header is checked when the iteration starts)."""
    return _classic(Source(path), FileInfo())


def _classic(src: Source, info: FileInfo) -> Iterator[Record]:
    path = src.path
    with src:
        endian, per_second, linktype = _classic_header(src.read(24, 0), path)
        info.format = "pcap"
        info.interfaces.append(InterfaceInfo(None, linktype))
        rec = struct.Struct(endian + "IIII")
        offset = 24
        while True:
            hdr = src.read(16, offset)
            if not hdr:
                return
            if len(hdr) < 16:
                raise CutShort(
                    f"{path}: truncated record header at offset {offset} ({len(hdr)} of 16 bytes)", offset=offset
                )
            sec, frac, caplen, orig = rec.unpack(hdr)
            if caplen > MAX_RECORD:
                raise PcapError(
                    f"{path}: implausible record length {caplen} at offset {offset} (limit {MAX_RECORD})",
                    hint=HINT_MALFORMED,
                )
            data = src.read(caplen, offset + 16)
            if len(data) < caplen:
                raise CutShort(
                    f"{path}: truncated record at offset {offset} ({len(data)} of {caplen} captured bytes)",
                    offset=offset,
                )
            yield Record(sec + frac / per_second, data, orig, linktype, cooked_direction(data, linktype))
            offset += 16 + caplen


def read_pcap(path: Path) -> tuple[int, Iterator[tuple[float, bytes, int]]]:
    """Open a classic pcap file (what PcapWriter writes); return (link type, iterator of (ts,
    captured bytes, orig_len)). The header is checked at once; the records are read by
    read_classic, so every error names the file, the offset and a remedy."""
    linktype = classic_linktype(path)
    return linktype, ((r.ts, r.data, r.orig_len) for r in read_classic(path))
