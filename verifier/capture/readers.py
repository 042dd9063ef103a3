"""Read capture files of either format, classic pcap or pcapng, as one stream of `Record`s.

Classic pcap: both byte orders, microsecond and nanosecond magic. pcapng: every section (each
Section Header Block sets its own byte order and starts a fresh list of interfaces), Interface
Description Blocks (link type, snap length, if_tsresol in powers of 10 or of 2, if_tsoffset),
Enhanced Packet Blocks (with the epb_flags direction bits) and Simple Packet Blocks; every other
block type is skipped after its length has been checked.

A record's direction comes from epb_flags when they give one, else from the packet type of a
Linux cooked header (SLL, SLL2), else it is unknown (None) and the caller decides.

A file that cannot be read raises `PcapError` with one line naming the file, the byte offset of
the block or record at fault and a hint; never another exception type. Every loop consumes at
least one header per turn, so a malformed length cannot make the reader spin.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from verifier.capture.frames import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2
from verifier.capture.pcap import MAGIC_NS, MAGIC_US, PcapError

MAX_RECORD = 262144  # largest captured length accepted (libpcap's MAXIMUM_SNAPLEN)
MAX_BLOCK = 16 << 20  # largest pcapng block that is read into memory (packet, interface, section)

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
_BOM = 0x1A2B3C4D
_SHB_BYTES = struct.pack("<I", PCAPNG_SHB)  # a palindrome: the same bytes in both byte orders

OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
OPT_EPB_FLAGS = 2

SLL_OUTGOING = 4  # PACKET_OUTGOING, the sll_pkttype of a frame this host sent
_EPB_DIRECTION = {1: False, 2: True}  # epb_flags bits 0-1: 0 unknown, 1 inbound, 2 outbound

_HINT_TRUNCATED = "the file ends early (capture still running or copy cut short?); re-copy it or cut it with editcap"
_HINT_MALFORMED = "not a valid capture file; check it with `capinfos FILE` or rewrite it with `editcap -F pcap IN OUT`"
_HINT_FORMAT = "expected a classic pcap or pcapng capture (tcpdump -w, dumpcap, tshark -w)"


@dataclass(frozen=True)
class Record:
    """One captured frame: time (s since the epoch), captured bytes, length on the wire, link type, direction."""

    ts: float
    data: bytes
    orig_len: int
    linktype: int
    outgoing: bool | None  # True: this host sent it; False: received; None: the file does not say


@dataclass(frozen=True)
class _Interface:
    linktype: int
    snaplen: int
    per_second: int  # timestamp units per second (if_tsresol)
    offset_s: int  # if_tsoffset, seconds added to every timestamp


def cooked_direction(data: bytes, linktype: int) -> bool | None:
    """Outgoing from a Linux cooked header's packet type (SLL: bytes 0-1, SLL2: byte 10); None otherwise."""
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 2:
        return int.from_bytes(data[0:2], "big") == SLL_OUTGOING
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 11:
        return data[10] == SLL_OUTGOING
    return None


def read_any(path: Path) -> Iterator[Record]:
    """Records of the classic pcap or pcapng file PATH, in file order.

    The format is checked now (a file that is neither raises PcapError at once); the records are
    read lazily, and a problem further in raises PcapError when the iteration reaches it.
    """
    head = _open_and_read(path, 4)
    if len(head) < 4:
        what = "empty file" if not head else f"only {len(head)} bytes"
        raise PcapError(f"{path}: {what}, no capture header at offset 0", hint=_HINT_FORMAT)
    if head == _SHB_BYTES:
        return _pcapng(path)
    if struct.unpack("<I", head)[0] in (MAGIC_US, MAGIC_NS) or struct.unpack(">I", head)[0] in (MAGIC_US, MAGIC_NS):
        return _classic(path)
    raise PcapError(f"{path}: not a pcap or pcapng file (magic {head.hex()} at offset 0)", hint=_HINT_FORMAT)


def _open_and_read(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise PcapError(f"{path}: cannot read ({exc.strerror or exc}) at offset 0", hint=_HINT_FORMAT) from exc


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise PcapError(f"{path}: cannot read ({exc.strerror or exc}) at offset 0", hint=_HINT_FORMAT) from exc


def _read(f: BinaryIO, n: int, path: Path, offset: int) -> bytes:
    try:
        return f.read(n)
    except OSError as exc:
        raise PcapError(f"{path}: read error ({exc.strerror or exc}) at offset {offset}", hint=_HINT_TRUNCATED) from exc


# Classic pcap ------------------------------------------------------------------------------------


def _classic_header(head: bytes, path: Path) -> tuple[str, int, int]:
    """(byte order, timestamp units per second, link type) from a classic pcap file header."""
    if len(head) < 24:
        raise PcapError(
            f"{path}: truncated pcap file header at offset 0 ({len(head)} of 24 bytes)", hint=_HINT_TRUNCATED
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
    magic, _major, _minor, _zone, _sigfigs, _snaplen, link = struct.unpack(endian + "IHHiIII", head[:24])
    per_second = 1_000_000_000 if magic == MAGIC_NS else 1_000_000
    return endian, per_second, link & 0xFFFF  # the upper bits of the link type carry FCS information


def classic_linktype(path: Path) -> int:
    """Check that PATH is a classic pcap file now, and return its link type."""
    return _classic_header(_open_and_read(path, 24), path)[2]


def read_classic(path: Path) -> Iterator[Record]:
    """Records of a classic pcap file (the header is checked when the iteration starts)."""
    return _classic(path)


def _classic(path: Path) -> Iterator[Record]:
    with _open(path) as f:
        endian, per_second, linktype = _classic_header(_read(f, 24, path, 0), path)
        rec = struct.Struct(endian + "IIII")
        offset = 24
        while True:
            hdr = _read(f, 16, path, offset)
            if not hdr:
                return
            if len(hdr) < 16:
                raise PcapError(
                    f"{path}: truncated record header at offset {offset} ({len(hdr)} of 16 bytes)",
                    hint=_HINT_TRUNCATED,
                )
            sec, frac, caplen, orig = rec.unpack(hdr)
            if caplen > MAX_RECORD:
                raise PcapError(
                    f"{path}: implausible record length {caplen} at offset {offset} (limit {MAX_RECORD})",
                    hint=_HINT_MALFORMED,
                )
            data = _read(f, caplen, path, offset + 16)
            if len(data) < caplen:
                raise PcapError(
                    f"{path}: truncated record at offset {offset} ({len(data)} of {caplen} captured bytes)",
                    hint=_HINT_TRUNCATED,
                )
            yield Record(sec + frac / per_second, data, orig, linktype, cooked_direction(data, linktype))
            offset += 16 + caplen


# pcapng ------------------------------------------------------------------------------------------


def _options(body: bytes, start: int, endian: str, path: Path, offset: int) -> dict[int, bytes]:
    """The options from BODY[START:] (the block body without its trailing length): first value per code."""
    out: dict[int, bytes] = {}
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            break
        if pos + 4 + length > len(body):
            raise PcapError(
                f"{path}: option {code} of length {length} overruns its block at offset {offset}",
                hint=_HINT_MALFORMED,
            )
        out.setdefault(code, body[pos + 4 : pos + 4 + length])
        pos += 4 + ((length + 3) & ~3)
    return out


def _interface(body: bytes, endian: str, path: Path, offset: int) -> _Interface:
    if len(body) < 8:
        raise PcapError(f"{path}: interface description block too short at offset {offset}", hint=_HINT_MALFORMED)
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body, 0)
    opts = _options(body, 8, endian, path, offset)
    per_second = 1_000_000
    resol = opts.get(OPT_IF_TSRESOL)
    if resol:
        exponent = resol[0] & 0x7F
        per_second = 1 << exponent if resol[0] & 0x80 else 10**exponent
    offset_s = 0
    tsoff = opts.get(OPT_IF_TSOFFSET)
    if tsoff is not None and len(tsoff) == 8:
        (offset_s,) = struct.unpack(endian + "q", tsoff)
    return _Interface(linktype, snaplen, per_second, offset_s)


def _timestamp(iface: _Interface, units: int) -> float:
    sec, frac = divmod(units, iface.per_second)
    return iface.offset_s + sec + frac / iface.per_second


def _pcapng(path: Path) -> Iterator[Record]:
    with _open(path) as f:
        offset = 0
        endian = "<"
        ifaces: list[_Interface] = []
        last_ts = 0.0  # Simple Packet Blocks carry no time: they get the previous packet's
        while True:
            head = _read(f, 8, path, offset)
            if not head:
                return
            if len(head) < 8:
                raise PcapError(
                    f"{path}: truncated block header at offset {offset} ({len(head)} of 8 bytes)", hint=_HINT_TRUNCATED
                )
            extra = b""
            if head[:4] == _SHB_BYTES:
                extra = _read(f, 4, path, offset + 8)
                if len(extra) < 4:
                    raise PcapError(f"{path}: truncated section header at offset {offset}", hint=_HINT_TRUNCATED)
                if struct.unpack("<I", extra)[0] == _BOM:
                    endian = "<"
                elif struct.unpack(">I", extra)[0] == _BOM:
                    endian = ">"
                else:
                    raise PcapError(
                        f"{path}: section header with bad byte-order magic {extra.hex()} at offset {offset}",
                        hint=_HINT_MALFORMED,
                    )
                ifaces = []
            btype, blen = struct.unpack(endian + "II", head)
            minimum = 28 if btype == PCAPNG_SHB else 12
            if blen < minimum or blen % 4:
                raise PcapError(
                    f"{path}: bad block length {blen} for block type {btype:#x} at offset {offset}",
                    hint=_HINT_MALFORMED,
                )
            parsed = btype in (PCAPNG_SHB, PCAPNG_IDB, PCAPNG_EPB, PCAPNG_SPB)
            if parsed and blen > MAX_BLOCK:
                raise PcapError(
                    f"{path}: implausible block length {blen} for block type {btype:#x} at offset {offset}",
                    hint=_HINT_MALFORMED,
                )
            want = blen - 8 - len(extra)
            if parsed:
                rest = _read(f, want, path, offset + 8 + len(extra))
                got = len(rest)
            else:
                rest, got = _skip(f, want, path, offset)
            if got < want:
                raise PcapError(
                    f"{path}: truncated block of type {btype:#x} at offset {offset} "
                    f"({8 + len(extra) + got} of {blen} bytes)",
                    hint=_HINT_TRUNCATED,
                )
            (trailer,) = struct.unpack(endian + "I", rest[-4:])
            if trailer != blen:
                raise PcapError(
                    f"{path}: block length inconsistent at offset {offset} (header says {blen}, trailer {trailer})",
                    hint=_HINT_MALFORMED,
                )
            body = extra + rest[:-4]  # everything between the leading and the trailing length
            if btype == PCAPNG_SHB:
                (major,) = struct.unpack_from(endian + "H", body, 4)
                if major != 1:
                    raise PcapError(
                        f"{path}: unsupported pcapng version {major} at offset {offset}", hint=_HINT_MALFORMED
                    )
            elif btype == PCAPNG_IDB:
                ifaces.append(_interface(body, endian, path, offset))
            elif btype == PCAPNG_EPB:
                record = _enhanced(body, endian, ifaces, path, offset)
                last_ts = record.ts
                yield record
            elif btype == PCAPNG_SPB:
                yield _simple(body, endian, ifaces, last_ts, path, offset)
            offset += blen


def _skip(f: BinaryIO, want: int, path: Path, offset: int) -> tuple[bytes, int]:
    """Read past WANT bytes of a block not parsed, in bounded chunks; return (last 4 bytes, bytes read)."""
    got = 0
    tail = b""
    while got < want:
        chunk = _read(f, min(want - got, 1 << 20), path, offset)
        if not chunk:
            break
        got += len(chunk)
        tail = (tail + chunk)[-4:]
    return tail, got


def _enhanced(body: bytes, endian: str, ifaces: list[_Interface], path: Path, offset: int) -> Record:
    if len(body) < 20:
        raise PcapError(f"{path}: enhanced packet block too short at offset {offset}", hint=_HINT_MALFORMED)
    if_id, ts_high, ts_low, caplen, orig = struct.unpack_from(endian + "IIIII", body, 0)
    if if_id >= len(ifaces):
        raise PcapError(
            f"{path}: packet for undeclared interface {if_id} at offset {offset} ({len(ifaces)} declared)",
            hint=_HINT_MALFORMED,
        )
    if caplen > MAX_RECORD:
        raise PcapError(
            f"{path}: implausible record length {caplen} at offset {offset} (limit {MAX_RECORD})", hint=_HINT_MALFORMED
        )
    if 20 + caplen > len(body):
        raise PcapError(f"{path}: captured length {caplen} overruns its block at offset {offset}", hint=_HINT_MALFORMED)
    iface = ifaces[if_id]
    data = body[20 : 20 + caplen]
    outgoing: bool | None = None
    flags = _options(body, 20 + ((caplen + 3) & ~3), endian, path, offset).get(OPT_EPB_FLAGS)
    if flags is not None and len(flags) == 4:
        outgoing = _EPB_DIRECTION.get(struct.unpack(endian + "I", flags)[0] & 3)
    if outgoing is None:
        outgoing = cooked_direction(data, iface.linktype)
    return Record(_timestamp(iface, (ts_high << 32) | ts_low), data, orig, iface.linktype, outgoing)


def _simple(body: bytes, endian: str, ifaces: list[_Interface], ts: float, path: Path, offset: int) -> Record:
    if not ifaces:
        raise PcapError(
            f"{path}: simple packet block before any interface description at offset {offset}", hint=_HINT_MALFORMED
        )
    if len(body) < 4:
        raise PcapError(f"{path}: simple packet block too short at offset {offset}", hint=_HINT_MALFORMED)
    (orig,) = struct.unpack_from(endian + "I", body, 0)
    iface = ifaces[0]
    caplen = min(orig, iface.snaplen or orig, len(body) - 4)
    if caplen > MAX_RECORD:
        raise PcapError(
            f"{path}: implausible record length {caplen} at offset {offset} (limit {MAX_RECORD})", hint=_HINT_MALFORMED
        )
    data = body[4 : 4 + caplen]
    return Record(ts, data, orig, iface.linktype, cooked_direction(data, iface.linktype))
