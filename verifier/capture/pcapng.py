"""Read a pcapng file as `Record`s.

Every section is read (each Section Header Block sets its own byte order and starts a fresh list
of interface ids), with Interface Description Blocks (link type, snap length, if_name, if_tsresol
in powers of 10 or of 2, if_tsoffset), Enhanced Packet Blocks (with the epb_flags direction bits)
and Simple Packet Blocks; every other block type is skipped after its length has been checked.
Each interface is reported to `FileInfo.interfaces` as its IDB is read, and each record names its
interface by that list's index, so interfaces of different sections stay apart.

A record's direction comes from epb_flags when they give one, else from the packet type of a Linux
cooked header (SLL, SLL2), else it is unknown (None). Every loop consumes at least one header per
turn, so a malformed length cannot make the reader spin.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from verifier.capture.records import (
    HINT_MALFORMED,
    HINT_TRUNCATED,
    MAX_RECORD,
    CutShort,
    FileInfo,
    InterfaceInfo,
    PcapError,
    Record,
    Source,
    cooked_direction,
)

MAX_BLOCK = 16 << 20  # largest pcapng block that is read into memory (packet, interface, section)

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
_BOM = 0x1A2B3C4D
SHB_BYTES = struct.pack("<I", PCAPNG_SHB)  # a palindrome: the same bytes in both byte orders

OPT_ENDOFOPT = 0
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
OPT_EPB_FLAGS = 2

_EPB_DIRECTION = {1: False, 2: True}  # epb_flags bits 0-1: 0 unknown, 1 inbound, 2 outbound


@dataclass(frozen=True)
class _Interface:
    index: int  # in FileInfo.interfaces: unique across sections
    linktype: int
    snaplen: int
    per_second: int  # timestamp units per second (if_tsresol)
    offset_s: int  # if_tsoffset, seconds added to every timestamp


def _options(body: bytes, start: int, endian: str, where: str) -> dict[int, bytes]:
    """The options from BODY[START:] (the block body without its trailing length): first value per code."""
    out: dict[int, bytes] = {}
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            break
        if pos + 4 + length > len(body):
            raise PcapError(f"{where}: option {code} of length {length} overruns its block", hint=HINT_MALFORMED)
        out.setdefault(code, body[pos + 4 : pos + 4 + length])
        pos += 4 + ((length + 3) & ~3)
    return out


def _interface(body: bytes, endian: str, index: int, where: str) -> tuple[_Interface, str | None]:
    if len(body) < 8:
        raise PcapError(f"{where}: interface description block too short", hint=HINT_MALFORMED)
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body, 0)
    opts = _options(body, 8, endian, where)
    per_second = 1_000_000
    resol = opts.get(OPT_IF_TSRESOL)
    if resol:
        exponent = resol[0] & 0x7F
        per_second = 1 << exponent if resol[0] & 0x80 else 10**exponent
    offset_s = 0
    tsoff = opts.get(OPT_IF_TSOFFSET)
    if tsoff is not None and len(tsoff) == 8:
        (offset_s,) = struct.unpack(endian + "q", tsoff)
    raw_name = opts.get(OPT_IF_NAME)
    # dumpcap writes what was given to -i; a NUL pad or an empty name means "no name".
    name = raw_name.split(b"\0", 1)[0].decode("utf-8", "replace").strip() if raw_name else ""
    return _Interface(index, linktype, snaplen, per_second, offset_s), name or None


def _timestamp(iface: _Interface, units: int) -> float:
    sec, frac = divmod(units, iface.per_second)
    return iface.offset_s + sec + frac / iface.per_second


def read_pcapng(src: Source, info: FileInfo) -> Iterator[Record]:
    """Records of the pcapng file open in SRC; closes SRC at the end."""
    path = src.path
    info.format = "pcapng"
    with src:
        offset = 0
        endian = "<"
        section = -1
        ifaces: list[_Interface] = []
        last_ts = 0.0  # Simple Packet Blocks carry no time: they get the previous packet's
        while True:
            cut = _cut if offset else _refuse
            head = src.read(8, offset)
            if not head:
                return
            if len(head) < 8:
                raise cut(f"{path}: truncated block header at offset {offset} ({len(head)} of 8 bytes)", offset=offset)
            extra = b""
            if head[:4] == SHB_BYTES:
                extra = src.read(4, offset + 8)
                if len(extra) < 4:
                    raise cut(f"{path}: truncated section header at offset {offset}", offset=offset)
                if struct.unpack("<I", extra)[0] == _BOM:
                    endian = "<"
                elif struct.unpack(">I", extra)[0] == _BOM:
                    endian = ">"
                else:
                    raise PcapError(
                        f"{path}: section header with bad byte-order magic {extra.hex()} at offset {offset}",
                        hint=HINT_MALFORMED,
                    )
                ifaces = []
                section += 1
            btype, blen = struct.unpack(endian + "II", head)
            minimum = 28 if btype == PCAPNG_SHB else 12
            if blen < minimum or blen % 4:
                raise PcapError(
                    f"{path}: bad block length {blen} for block type {btype:#x} at offset {offset}",
                    hint=HINT_MALFORMED,
                )
            parsed = btype in (PCAPNG_SHB, PCAPNG_IDB, PCAPNG_EPB, PCAPNG_SPB)
            if parsed and blen > MAX_BLOCK:
                raise PcapError(
                    f"{path}: implausible block length {blen} for block type {btype:#x} at offset {offset}",
                    hint=HINT_MALFORMED,
                )
            want = blen - 8 - len(extra)
            if parsed:
                rest = src.read(want, offset + 8 + len(extra))
                got = len(rest)
            else:
                rest, got = _skip(src, want, offset)
            if got < want:
                raise cut(
                    f"{path}: truncated block of type {btype:#x} at offset {offset} "
                    f"({8 + len(extra) + got} of {blen} bytes)",
                    offset=offset,
                )
            (trailer,) = struct.unpack(endian + "I", rest[-4:])
            if trailer != blen:
                raise PcapError(
                    f"{path}: block length inconsistent at offset {offset} (header says {blen}, trailer {trailer})",
                    hint=HINT_MALFORMED,
                )
            body = extra + rest[:-4]  # everything between the leading and the trailing length
            where = f"{path}: block at offset {offset}"
            if btype == PCAPNG_SHB:
                (major,) = struct.unpack_from(endian + "H", body, 4)
                if major != 1:
                    raise PcapError(
                        f"{path}: unsupported pcapng version {major} at offset {offset}", hint=HINT_MALFORMED
                    )
            elif btype == PCAPNG_IDB:
                iface, name = _interface(body, endian, len(info.interfaces), where)
                ifaces.append(iface)
                info.interfaces.append(InterfaceInfo(name, iface.linktype, section))
            elif btype == PCAPNG_EPB:
                record = _enhanced(body, endian, ifaces, where)
                last_ts = record.ts
                yield record
            elif btype == PCAPNG_SPB:
                yield _simple(body, endian, ifaces, last_ts, where)
            offset += blen


def _cut(message: str, *, offset: int) -> PcapError:
    return CutShort(message, offset=offset)


def _refuse(message: str, *, offset: int) -> PcapError:
    """A cut inside the first Section Header Block: nothing makes the file a capture, refuse it."""
    return PcapError(message, hint=HINT_TRUNCATED)


def _skip(src: Source, want: int, offset: int) -> tuple[bytes, int]:
    """Read past WANT bytes of a block not parsed, in bounded chunks; return (last 4 bytes, bytes read)."""
    got = 0
    tail = b""
    while got < want:
        chunk = src.read(min(want - got, 1 << 20), offset)
        if not chunk:
            break
        got += len(chunk)
        tail = (tail + chunk)[-4:]
    return tail, got


def _enhanced(body: bytes, endian: str, ifaces: list[_Interface], where: str) -> Record:
    if len(body) < 20:
        raise PcapError(f"{where}: enhanced packet block too short", hint=HINT_MALFORMED)
    if_id, ts_high, ts_low, caplen, orig = struct.unpack_from(endian + "IIIII", body, 0)
    if if_id >= len(ifaces):
        raise PcapError(
            f"{where}: packet for undeclared interface {if_id} ({len(ifaces)} declared)", hint=HINT_MALFORMED
        )
    if caplen > MAX_RECORD:
        raise PcapError(f"{where}: implausible record length {caplen} (limit {MAX_RECORD})", hint=HINT_MALFORMED)
    if 20 + caplen > len(body):
        raise PcapError(f"{where}: captured length {caplen} overruns its block", hint=HINT_MALFORMED)
    iface = ifaces[if_id]
    data = body[20 : 20 + caplen]
    outgoing: bool | None = None
    flags = _options(body, 20 + ((caplen + 3) & ~3), endian, where).get(OPT_EPB_FLAGS)
    if flags is not None and len(flags) == 4:
        outgoing = _EPB_DIRECTION.get(struct.unpack(endian + "I", flags)[0] & 3)
    if outgoing is None:
        outgoing = cooked_direction(data, iface.linktype)
    ts = _timestamp(iface, (ts_high << 32) | ts_low)
    return Record(ts, data, orig, iface.linktype, outgoing, iface.index)


def _simple(body: bytes, endian: str, ifaces: list[_Interface], ts: float, where: str) -> Record:
    if not ifaces:
        raise PcapError(f"{where}: simple packet block before any interface description", hint=HINT_MALFORMED)
    if len(body) < 4:
        raise PcapError(f"{where}: simple packet block too short", hint=HINT_MALFORMED)
    (orig,) = struct.unpack_from(endian + "I", body, 0)
    iface = ifaces[0]  # a Simple Packet Block always belongs to the section's first interface
    caplen = min(orig, iface.snaplen or orig, len(body) - 4)
    if caplen > MAX_RECORD:
        raise PcapError(f"{where}: implausible record length {caplen} (limit {MAX_RECORD})", hint=HINT_MALFORMED)
    data = body[4 : 4 + caplen]
    return Record(ts, data, orig, iface.linktype, cooked_direction(data, iface.linktype), iface.index)
