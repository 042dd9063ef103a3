"""Capture files for offline counting: which interface each frame counts for, link types refused,
files cut short, and frames seen twice.

A file is read twice: `scan_file` reads it once for its earliest time, its interfaces and its
link types (refusing a file with nothing decodable at once, naming the link type, rather than
counting nothing and blaming the path later); `FileScan.counted_records` reads it again for the
Counter. Memory does not grow with the file: the second pass streams, and `SeenFrames` forgets a
second once the files have moved past it.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from verifier.capture.frames import DECODED_LINKTYPES, linktype_name
from verifier.capture.readers import FileInfo, Record, read_any
from verifier.capture.records import PcapError

_HINT_LINKTYPE = (
    "verify-path counts TCP over Ethernet, Linux cooked (v1, v2) and raw IP; capture the migration on a "
    "wired interface, or on all of them with `tcpdump -i any`"
)


@dataclass
class FileScan:
    """What the first pass learnt about one file."""

    path: Path
    given: str  # the interface the file stands for (--iface-map, else the file's stem)
    info: FileInfo = field(default_factory=FileInfo)
    first_ts: float | None = None
    undecoded: Tally[tuple[int, int]] = field(default_factory=Tally)  # (interface, link type) -> frames

    def interface_names(self) -> list[str]:
        """The counted name of each interface of the file, by index.

        One name per file, unless the file (a pcapng) declares interfaces of different names:
        then each keeps its own, and only unnamed ones take the file's. Interfaces of the same name
        in different sections are one interface (captures of it concatenated).
        """
        declared = self.info.interfaces
        if len({i.name for i in declared}) <= 1:
            return [self.given] * len(declared)
        return [i.name or self.given for i in declared]

    def names(self) -> list[str]:
        """The interfaces this file shows, with zeros if they carried nothing: those it can count."""
        names = self.interface_names()
        shown = [n for n, i in zip(names, self.info.interfaces, strict=True) if i.linktype in DECODED_LINKTYPES]
        return list(dict.fromkeys(shown)) or [self.given]

    def counted_records(self) -> Iterator[tuple[str, Record]]:
        """(interface name, record) for every record of a decoded link type: the second pass."""
        names = self.interface_names()
        for rec in read_any(self.path, FileInfo()):
            if rec.linktype in DECODED_LINKTYPES:
                yield names[rec.interface], rec

    def problems(self) -> list[str]:
        out = []
        cut = self.info.cut_short
        if cut is not None:
            out.append(
                f"{cut.message}: the file appears to be cut short in the middle of a packet; its "
                f"{self.info.records} complete records were counted (a capture still running, or a copy cut short?)"
            )
        names = self.interface_names()
        by_name: Tally[tuple[str, int]] = Tally()
        for (index, linktype), frames in self.undecoded.items():
            by_name[(names[index], linktype)] += frames
        for (name, linktype), frames in sorted(by_name.items()):
            out.append(
                f"{self.path}: {frames} frame(s) of link type {linktype} ({linktype_name(linktype)}) captured on "
                f"{name} not decoded, so not counted"
            )
        return out


def scan_file(path: Path, given: str) -> FileScan:
    """First pass over PATH; raise PcapError if it cannot be read or holds nothing decodable."""
    scan = FileScan(path, given)
    info = scan.info
    decoded = 0
    for rec in read_any(path, info):
        if scan.first_ts is None or rec.ts < scan.first_ts:
            scan.first_ts = rec.ts
        if rec.linktype in DECODED_LINKTYPES:
            decoded += 1
            continue
        if info.format == "pcap":
            raise _refuse(path, rec.linktype)  # one link type for the whole file: no need to read on
        scan.undecoded[(rec.interface, rec.linktype)] += 1
    if not decoded:
        # Nothing to count, and the file says why: name the link type, not "no stream" later.
        undecoded = [lt for _i, lt in scan.undecoded] or [
            i.linktype for i in info.interfaces if i.linktype not in DECODED_LINKTYPES
        ]
        if undecoded and (scan.undecoded or all(i.linktype not in DECODED_LINKTYPES for i in info.interfaces)):
            raise _refuse(path, undecoded[0])
    return scan


def _refuse(path: Path, linktype: int) -> PcapError:
    return PcapError(f"{path}: link type {linktype} ({linktype_name(linktype)}) is not decoded", hint=_HINT_LINKTYPE)


class SeenFrames:
    """Frames already counted, per interface, for the last few seconds of capture time.

    Two captures of one interface (the same frames in two files, or merged into one) hold the same
    frame with the same timestamp: counted once. Distinct frames never share bytes and time.
    """

    WINDOW_S = 2  # files are merged in time order; a frame out of order by more is not matched

    def __init__(self) -> None:
        self._seconds: dict[str, dict[int, set[tuple[int, int, int]]]] = {}
        self._newest: dict[str, int] = {}

    def again(self, iface: str, rec: Record) -> bool:
        """Whether REC was counted on IFACE already; remember it if not."""
        # Microseconds: the coarsest resolution a copy of the file may have been rewritten with.
        micros = round(rec.ts * 1_000_000)
        second = micros // 1_000_000
        buckets = self._seconds.setdefault(iface, {})
        if second > self._newest.get(iface, second - 1):
            self._newest[iface] = second
            for old in [s for s in buckets if s < second - self.WINDOW_S]:
                del buckets[old]
        key = (micros, rec.orig_len, hash(rec.data))
        seen = buckets.setdefault(second, set())
        if key in seen:
            return True
        seen.add(key)
        return False
