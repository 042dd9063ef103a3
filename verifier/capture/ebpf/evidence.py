"""The eBPF counter's evidence: count.bpf.c's `struct vp_evidence` records, drained from their ring
buffer, written as headers-only pcaps, one per interface (the files the ring engine would write).

The program keeps a record for every SYN, FIN and RST, for each flow's first frames and for each
flow's first frame in every tenth of a second (per CPU, way and interface): a bounded sample whose
size follows the number of flows, not the stream's rate. Each record holds the frame up to the end
of its TCP header (never payload: guest memory) and the frame's length. Egress frames are as the
stack handed them to the device: a GSO super-packet is one record with its whole length.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from pathlib import Path

from verifier.capture.frames import LINKTYPE_ETHERNET
from verifier.capture.pcap import PcapWriter

EVIDENCE_BYTES = 160  # EVIDENCE_BYTES in count.bpf.c
# struct vp_evidence: ts_ns, ifindex, len, caplen, dir, vlan, vlan_proto (as on the wire), vlan_tci
RECORD = struct.Struct(f"=QIIHBBHH{EVIDENCE_BYTES}s")
_TAG = struct.Struct("!H")


def frame_of(data: bytes, caplen: int, vlan: int, vlan_proto: int, vlan_tci: int) -> bytes:
    """The record's bytes as they crossed the link: an offloaded VLAN tag put back after the MAC
    addresses, as libpcap does (the record's length already counts it)."""
    frame = data[:caplen]
    if vlan:
        frame = frame[:12] + struct.pack("=H", vlan_proto) + _TAG.pack(vlan_tci) + frame[12:]
    return frame


class EvidenceWriter:
    """Writes records to OUT_DIR/<interface>.pcap (mode 0600, created at the first record)."""

    def __init__(self, out_dir: Path, names: Mapping[int, str]) -> None:
        self.out_dir = out_dir
        self.names = names
        # ts_ns is CLOCK_MONOTONIC (bpf_ktime_get_ns); pcaps want wall-clock time.
        self.offset = time.time() - time.monotonic()
        self.records = 0
        self._writers: dict[str, PcapWriter] = {}
        self._errors: dict[str, str] = {}

    def record(self, raw: bytes) -> None:
        ts_ns, ifindex, length, caplen, _dir, vlan, vlan_proto, vlan_tci, data = RECORD.unpack_from(raw)
        name = self.names.get(ifindex)
        if name is None or name in self._errors:
            return
        frame = frame_of(data, caplen, vlan, vlan_proto, vlan_tci)
        writer = self._writers.get(name)
        try:
            if writer is None:
                path = self.out_dir / f"{name}.pcap"
                writer = self._writers[name] = PcapWriter(path, LINKTYPE_ETHERNET, EVIDENCE_BYTES + 4)
            writer.write(ts_ns / 1e9 + self.offset, frame, length)
            self.records += 1
        except OSError as exc:
            # A full or failing disk costs the pcap, never the counts.
            self._errors[name] = f"{name}.pcap: {exc.strerror or exc}"
            if writer is not None:
                writer.abandon()

    def close(self) -> tuple[dict[str, str], tuple[str, ...]]:
        """The pcaps written ({interface: path}) and what went wrong writing them."""
        for name, writer in self._writers.items():
            if name in self._errors:
                continue
            try:
                writer.close()
            except OSError as exc:
                self._errors[name] = f"{name}.pcap: {exc.strerror or exc}"
        pcaps = {n: str(w.path) for n, w in self._writers.items()}  # an abandoned one is valid, emptied
        return pcaps, tuple(f"pcap incomplete: {err}" for err in self._errors.values())
