"""What the capture-file readers share: the `Record` they yield, the interfaces a file declares,
and `Source`, an open file (plain or gzip-compressed) whose read errors name the file and offset.

Errors: a file that cannot be read raises `PcapError` with one line naming the file, the byte
offset at fault and a hint. A file that ends in the middle of a record or block (a capture still
running, a copy cut short) raises its subclass `CutShort`, so that a caller may keep the complete
records before it and warn, as tshark does ("appears to have been cut short in the middle of a
packet"). For a gzip-compressed file the offsets are those of the decompressed data.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from verifier.capture.frames import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2
from verifier.errors import UsageError

MAX_RECORD = 262144  # largest captured length accepted (libpcap's MAXIMUM_SNAPLEN)
GZIP_MAGIC = b"\x1f\x8b"
MAGIC_US = 0xA1B2C3D4  # classic pcap, microsecond timestamps
MAGIC_NS = 0xA1B23C4D  # classic pcap, nanosecond timestamps


class PcapError(UsageError):
    """A file that is not a readable capture; the message names the file and the offset."""


SLL_OUTGOING = 4  # PACKET_OUTGOING, the sll_pkttype of a frame this host sent

HINT_TRUNCATED = "the file ends early (capture still running or copy cut short?); re-copy it or cut it with editcap"
HINT_MALFORMED = "not a valid capture file; check it with `capinfos FILE` or rewrite it with `editcap -F pcap IN OUT`"
HINT_FORMAT = "expected a classic pcap or pcapng capture (tcpdump -w, dumpcap, tshark -w), possibly gzipped"


class CutShort(PcapError):
    """The file ends in the middle of a record or block; the records before it are complete."""

    def __init__(self, message: str, *, offset: int, hint: str | None = HINT_TRUNCATED) -> None:
        super().__init__(message, hint=hint)
        self.offset = offset


@dataclass(frozen=True)
class Record:
    """One captured frame: time (s since the epoch), captured bytes, length on the wire, link type, direction."""

    ts: float
    data: bytes
    orig_len: int
    linktype: int
    outgoing: bool | None  # True: this host sent it; False: received; None: the file does not say
    interface: int = 0  # index into FileInfo.interfaces (every IDB of a pcapng, in file order)


@dataclass(frozen=True)
class InterfaceInfo:
    """An interface a file declares: its name (pcapng if_name, if any), link type and section."""

    name: str | None
    linktype: int
    section: int = 0


@dataclass
class FileInfo:
    """Filled while a file is read: its interfaces, and why it stopped early if it did."""

    format: str = ""  # "pcap" or "pcapng", once the iteration has started
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    records: int = 0  # complete records read
    cut_short: CutShort | None = None


def cooked_direction(data: bytes, linktype: int) -> bool | None:
    """Outgoing from a Linux cooked header's packet type (SLL: bytes 0-1, SLL2: byte 10); None otherwise."""
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 2:
        return int.from_bytes(data[0:2], "big") == SLL_OUTGOING
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 11:
        return data[10] == SLL_OUTGOING
    return None


def is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise PcapError(f"{path}: cannot read ({exc.strerror or exc}) at offset 0", hint=HINT_FORMAT) from exc


class Source:
    """PATH opened for reading, decompressed on the fly when it starts with the gzip magic (1f 8b),
    as tshark reads it; every failure is a PcapError (or CutShort) naming the file and offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gzip = is_gzip(path)
        try:
            # Owned by this object, closed by close() or the with-block that holds it.
            self._f: gzip.GzipFile | BinaryIO = gzip.open(path, "rb") if self.gzip else path.open("rb")  # noqa: SIM115
        except OSError as exc:
            raise PcapError(f"{path}: cannot read ({exc.strerror or exc}) at offset 0", hint=HINT_FORMAT) from exc

    def read(self, n: int, offset: int) -> bytes:
        """Up to N bytes (fewer only at the end of the data); OFFSET is where they start, for messages."""
        try:
            return self._f.read(n)
        except EOFError as exc:  # a gzip stream cut short: what it held before the cut was returned already
            raise CutShort(f"{self.path}: compressed data cut short at offset {offset}", offset=offset) from exc
        except (OSError, zlib.error) as exc:
            what = getattr(exc, "strerror", None) or exc
            hint = HINT_MALFORMED if self.gzip else HINT_TRUNCATED
            raise PcapError(f"{self.path}: read error ({what}) at offset {offset}", hint=hint) from exc

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
