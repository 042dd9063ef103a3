"""The eBPF capture engine: count the watched TCP flows in the kernel, read the totals at the end.

Why: the ring engine (live.py) costs 9-14x tcpdump's CPU per GB and drops at ~350k frames/s,
because Python touches every frame. Here count.bpf.c adds bytes, frames and payload per
(interface, direction, 4-tuple) and bytes per (interface, direction, second) into per-CPU maps;
user space reads the maps once, at stop().

Hook, chosen by measurement (iperf3 over a veth, offloads off, 4 s, kernel.bpf_stats_enabled=1):
- tcx ingress+egress (kernel 6.6+): the program ran 93k times for 3.7 GB, 27 ms in all; iperf3
  kept 7.3-8.0 Gbit/s (9.4 without a counter). tcx sees a GSO super-packet once, before the stack
  segments it for a device without TSO, so the program counts the segments the wire and tcpdump
  see from gso_segs and the device's offloads (egress_segments in count.bpf.c, devices.py): equal to tcpdump
  per 4-tuple, bytes and frames, with TSO and with offloads off.
- a socket filter on a packet socket (tcpdump's tap, so equal to tcpdump by construction): 2.0M
  runs, 350-430 ms for 2.8 GB, iperf3 down to 5.5 Gbit/s: the tap clones every outgoing frame
  and runs once per segment. 15x the kernel CPU per GB: not chosen (and its program since removed
  from count.bpf.c).
tcx links belong to their file descriptors: closing them, or the process dying, detaches the
programs; nothing is pinned, and legacy tc (clsact) filters, which outlive the process, are not used.

A flow's counters on a CPU live in one of 32 per-CPU slots (the first flow whose ports land on a
slot keeps it) or else in the per-CPU hash map; user space merges the two (decode.merge_slots).
Bins are counted in the kernel per 100 ms since start (a bpf_timer keeps the current tenth), in a
ring of 32 bins inside each flow's counters (no second lookup per frame), and read by a thread once a
second, before a slot comes round again: a frame lands in the tenth it passed, not in the second a
late reader woke up in. Totals never depend on the reader; a tenth it missed is reported. With an
output directory the same thread drains the programs' evidence records into headers-only pcaps
(evidence.py).
"""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from verifier.capture.counting import Counter, PortRanges
from verifier.capture.ebpf import devices, loader, objects
from verifier.capture.ebpf.build import OBJECT
from verifier.capture.ebpf.decode import (
    FIRST,
    FLOW_KEY,
    FLOW_VAL,
    NSLOTS,
    SLOT,
    U64,
    announced,
    config,
    fill_counter,
    merge_slots,
    missed_tenths,
    ring_tenths,
)
from verifier.capture.ebpf.evidence import EVIDENCE_BYTES, EvidenceWriter
from verifier.capture.live import bpf_filter, read_counters
from verifier.errors import EnvironmentProblem
from verifier.model import CaptureResult, Endpoints

READ_EVERY = 1.0  # seconds between reads of the bin rings: well inside the 3.2 s they hold
# The `stats` array of count.bpf.c, in order: what each count of lost frames means.
STATS = (
    "eBPF flow table full: {} frames not counted",
    "eBPF evidence ring full: {} frames missing from the sampled pcaps (the counts are complete)",
)
EVIDENCE_LOST = 1  # ST_EVIDENCE_LOST


class EbpfCapture:
    """Same interface as LiveCapture: `start` returns once every interface is watched."""

    def __init__(
        self, interfaces: list[str], ports: PortRanges, out_dir: Path | None = None, obj: Path = OBJECT
    ) -> None:
        self.interfaces = interfaces
        self.ports = ports
        self.out_dir = out_dir  # None: no pcap; else the program's evidence records, headers only
        self.bpf = bpf_filter(ports)
        self._objpath = obj
        self._obj: loader.BpfObject | None = None
        self._links: list[int] = []
        self._ifindex: dict[int, str] = {}
        self._counters0: dict[str, tuple[int, int]] = {}
        self._ncpu = 1
        self.t0 = time.time()
        # (flow key, cpu, tenth) -> bytes: the latest value seen in that CPU's slot for the tenth.
        self._tenths: dict[tuple[bytes, int, int], int] = {}
        self._reader: threading.Thread | None = None
        self._stop_pipe: tuple[int, int] | None = None  # written to end the reader's poll at once
        self._events: loader.RingBuffer | None = None
        self._evidence: EvidenceWriter | None = None
        self._evidence_rb: loader.RingBuffer | None = None
        self.evidence_lost = 0  # evidence records the full ring buffer refused, known after stop()
        self._on_new_flow: Callable[[Sequence[Endpoints]], None] | None = None
        self._announced: list[Endpoints] = []  # new-flow events of one drain, for the callback
        self._segmentation: dict[str, devices.Segmentation] = {}  # as read at start
        self._segmentation_problem: str | None = None  # why it could not be read

    def start(self) -> None:
        try:
            self._obj = objects.take(self._objpath)
            self._ncpu = loader.possible_cpus()
            self.t0 = time.time()
            for name in self.interfaces:
                try:
                    self._ifindex[socket.if_nametoindex(name)] = name
                except OSError:
                    raise EnvironmentProblem(f"no interface {name}", hint="check the interface exists") from None
            self._segmentation, self._segmentation_problem = devices.at_start(self.interfaces)
            by_index = {index: self._segmentation[name] for index, name in self._ifindex.items()}
            settings, spill = config(self.ports, time.monotonic_ns(), by_index)  # ktime's clock
            loader.map_update(self._obj.map_fd("vp_config"), struct.pack("=I", 0), settings)
            for index, entry in spill.items():
                loader.map_update(self._obj.map_fd("devs"), struct.pack("=I", index), entry)
            for index, name in self._ifindex.items():
                # The interface's counters bracket our counting: baseline before its programs are
                # attached, end value after they are detached (stop), so we never count more.
                start = read_counters(name)
                if start is not None:
                    self._counters0[name] = start
                for ingress, prog in ((True, "vp_ingress"), (False, "vp_egress")):
                    self._links.append(loader.attach_tcx(self._obj.progs[prog], index, ingress))
            self._events = loader.RingBuffer(
                self._obj.map_fd("new_flows"), lambda raw: self._announced.append(announced(raw))
            )
            if self.out_dir is not None:
                self._evidence = EvidenceWriter(self.out_dir, self._ifindex)
                self._evidence_rb = loader.RingBuffer(self._obj.map_fd("evidence"), self._evidence.record)
            self._stop_pipe = os.pipe()
            self._reader = threading.Thread(target=self._reader_loop, name="ebpf-reader", daemon=True)
            self._reader.start()
        except loader.BpfError as exc:
            self._close()
            raise EnvironmentProblem(f"cannot start the eBPF counter: {exc}", hint="run as root") from exc
        except BaseException:
            self._close()
            raise

    def bytes_so_far(self) -> int:
        """Bytes counted on every interface so far (other connections' too: their orientation is
        settled at stop(); `watch --until-idle` only needs to see the count grow)."""
        if self._obj is None:
            return 0
        return sum(sum(self._per_cpu(v, FLOW_VAL.size)) for _k, v in self._flow_items())

    def on_new_flow(self, callback: Callable[[Sequence[Endpoints]], None]) -> bool:
        """Call CALLBACK (from the reader thread) with the connections, soon after they carry their
        first payload on a watched interface; True: this engine does."""
        self._on_new_flow = callback
        return True

    def _reader_loop(self) -> None:
        """The reader thread: new-flow events as they come, the bin rings every READ_EVERY."""
        assert self._events is not None and self._stop_pipe is not None
        poller = select.poll()
        poller.register(self._events.fd, select.POLLIN)
        poller.register(self._stop_pipe[0], select.POLLIN)
        due = time.monotonic() + READ_EVERY
        while True:
            ready = {fd for fd, _ in poller.poll(max(0.0, due - time.monotonic()) * 1000)}
            if self._stop_pipe[0] in ready:
                return
            if self._events.fd in ready:
                self._announced = []
                if self._events.consume() > 0 and self._on_new_flow is not None:
                    self._on_new_flow(tuple(self._announced))
            if time.monotonic() >= due:
                self._collect()
                if self._evidence_rb is not None:  # no wake-up per record: drained here
                    self._evidence_rb.consume()
                due += READ_EVERY

    def _collect(self) -> None:
        """Keep every used bin slot's value, per flow, CPU and tenth (a tenth still running is
        read again later, larger)."""
        for raw_key, raw in self._flow_items():
            self._tenths.update(ring_tenths(raw_key, raw, self._ncpu))

    def _stop_reader(self) -> None:
        if self._reader is not None and self._stop_pipe is not None:
            os.write(self._stop_pipe[1], b"x")
            self._reader.join()
        self._reader = None
        if self._evidence_rb is not None:
            self._evidence_rb.consume()  # the records left, programs detached by now
            self._evidence_rb.close()
            self._evidence_rb = None
        if self._events is not None:
            self._events.close()
            self._events = None
        for fd in self._stop_pipe or ():
            os.close(fd)
        self._stop_pipe = None

    def stop(self, drain_s: float = 0.05) -> CaptureResult:
        """Let frames in flight pass, read the maps, remove programs and maps; the counts."""
        try:
            time.sleep(drain_s)
            ended = time.time()
            self._detach()  # the maps stay readable until the object is closed
            self._stop_reader()
            deltas = {}
            for name, (tx0, rx0) in self._counters0.items():
                end = read_counters(name)
                if end is not None:
                    deltas[name] = (end[0] - tx0, end[1] - rx0)
            if self._obj is None:
                raise EnvironmentProblem("the eBPF counter was not started")
            self._collect()  # the last tenths, after the programs are gone
            counter, packets = self._read()
            problems = self._problems() + missed_tenths(counter)
            problems += (
                (self._segmentation_problem,) if self._segmentation_problem else devices.changed(self._segmentation)
            )
        finally:
            self._close()
        pcaps, pcap_problems = self._evidence.close() if self._evidence else ({}, ())
        result = counter.result(
            kernel_packets=packets,
            pcaps=pcaps,
            snaplen=EVIDENCE_BYTES if self._evidence else 0,
            bpf=f"ebpf tcx: {self.bpf}",
            ended_at=ended,
            counters=deltas,
            problems=problems + pcap_problems,
        )
        return dataclasses.replace(result, engine="ebpf", pcaps="sampled" if self._evidence else "none")

    def _items(self, name: str, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
        assert self._obj is not None
        return list(loader.map_items(self._obj.map_fd(name), key_size, value_size * self._ncpu))

    def _flow_items(self) -> list[tuple[bytes, bytes]]:
        """Every flow's per-CPU counters: the flows map's and the slots array's, merged."""
        assert self._obj is not None
        slots = loader.map_lookup(self._obj.map_fd("slots"), struct.pack("=I", 0), NSLOTS * SLOT.size * self._ncpu)
        if slots is None:
            raise EnvironmentProblem("the eBPF counter's slots cannot be read", hint="report this as a bug")
        return merge_slots(self._items("flows", FLOW_KEY.size, FLOW_VAL.size), slots, self._ncpu)

    def _per_cpu(self, raw: bytes, size: int) -> list[int]:
        return [U64.unpack_from(raw, i * size)[0] for i in range(self._ncpu)]

    def _read(self) -> tuple[Counter, dict[str, int]]:
        """The maps as a counting.Counter (decode.py), and the frames per interface."""
        assert self._obj is not None
        counter = Counter(self.ports, self.t0)
        for name in self.interfaces:
            counter.ensure(name)
        flow_items = self._flow_items()
        first_items = loader.map_items(self._obj.map_fd("firsts"), FLOW_KEY.size, FIRST.size)
        packets = fill_counter(counter, flow_items, first_items, self._tenths, self._ifindex, self._ncpu)
        counter.last_ts = time.time()
        return counter, packets

    def _problems(self) -> tuple[str, ...]:
        assert self._obj is not None
        problems = []
        fd = self._obj.map_fd("stats")
        for index, what in enumerate(STATS):
            raw = loader.map_lookup(fd, struct.pack("=I", index), 8)
            lost = U64.unpack(raw)[0] if raw else 0
            if index == EVIDENCE_LOST:
                self.evidence_lost = lost
            if lost:
                problems.append(what.format(lost))
        return tuple(problems)

    def _detach(self) -> None:
        for fd in self._links:
            try:
                os.close(fd)
            except OSError:
                pass
        self._links.clear()

    def _close(self) -> None:
        # Each step runs whatever the previous one did: links first (detach), then the object.
        self._detach()
        self._stop_reader()
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> EbpfCapture:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()
