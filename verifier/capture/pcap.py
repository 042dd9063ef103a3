"""Headers-only pcap files: a streaming writer (mode 0600). Reading is `readers`' job.

The writer keeps nothing in memory; each frame is truncated to the snap length and its
original length recorded, so tshark and our reader count the bytes that crossed the link.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from verifier.capture.records import MAGIC_US

DEFAULT_SNAPLEN = 128  # enough for Ethernet+VLAN+IPv6+TCP options and the stream's first bytes
FULL_SNAPLEN = 262144  # --keep-payload: whole frames, GSO super-packets included
_HDR = struct.Struct("<IHHiIII")
_REC = struct.Struct("<IIII")


class PcapWriter:
    def __init__(self, path: Path, linktype: int, snaplen: int = DEFAULT_SNAPLEN) -> None:
        # 0600 from the first byte: a migration stream carries guest RAM in clear.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        self._f: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self.snaplen = snaplen
        self.path = path
        self.frames = 0
        self._buf = bytearray()
        self._f.write(_HDR.pack(MAGIC_US, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts: float, data: bytes | memoryview, orig_len: int) -> None:
        # The hot path at line rate: append to one buffer, one write() per megabyte.
        cap = min(len(data), self.snaplen, orig_len)
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)  # int() on the fraction lost 1 us half the time
        buf = self._buf
        buf += _REC.pack(sec, usec, cap, orig_len)
        buf += data[:cap]
        self.frames += 1
        if len(buf) >= 1 << 20:
            self._f.write(buf)
            buf.clear()

    def close(self) -> None:
        try:
            if self._buf:
                self._f.write(self._buf)
                self._buf.clear()
            self._f.close()
        except OSError:
            self.abandon()
            raise

    def abandon(self) -> None:
        """After a write error (a full disk): keep a valid, empty capture, free the space for run.json."""
        self._buf.clear()
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.truncate(self.path, _HDR.size)
        except OSError:
            pass
