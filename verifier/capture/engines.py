"""Which engine counts: eBPF in the kernel when it can be loaded, the TPACKET_V3 ring otherwise.

With eBPF counting, the evidence pcaps come from the eBPF program too (capture/ebpf/evidence.py):
SYN/FIN/RST, each flow's first frames and its first frame in every tenth of a second, headers
only, through a BPF ring buffer. No packet socket is opened then: a packet socket's tap clones
every outgoing frame on its interface, in the sender's time, and its reader thread wakes with the
stream; a watched 1 GiB migration took 1.10-1.17x as long with the sampled ring beside the eBPF
counter (README, "Capture engines and benchmark"). The ring still runs beside the eBPF counter
for `--capture full` (every frame's headers) and `--keep-payload` (whole frames, sampled). The
eBPF engine also keeps each stream's first bytes (its kind) in its maps. Where eBPF cannot load
(older kernel, no CAP_BPF, lockdown, the object not built) the ring counts, and the report says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from verifier.capture.counting import PortRanges
from verifier.capture.live import DEFAULT_RCVBUF, LiveCapture
from verifier.capture.pcap import DEFAULT_SNAPLEN, FULL_SNAPLEN
from verifier.errors import EnvironmentProblem
from verifier.model import CaptureResult, Endpoints

if TYPE_CHECKING:
    from verifier.capture.ebpf.engine import EbpfCapture

# With --keep-payload beside eBPF counting: one TCP frame in 1024 reaches the evidence pcap, whole
# (plus every SYN, FIN and RST): at 1 in 64 the ring's Python thread cost more CPU per GB than
# tcpdump's whole process (make bench, 2026-11-26).
SAMPLE = 1024


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # ebpf | ring
    note: str = ""  # why the ring, when eBPF was wanted or tried


def choose(requested: str | None) -> EngineChoice:
    """REQUESTED: "ebpf" (fail when it cannot load), "ring", or None (eBPF when it can)."""
    if requested == "ring":
        return EngineChoice("ring", "--engine ring")
    from verifier.capture.ebpf import objects

    why = objects.available(keep=True)  # the capture then takes the loaded object
    if why is None:
        return EngineChoice("ebpf")
    if requested == "ebpf":
        raise EnvironmentProblem(f"--engine ebpf: {why}", hint="use --engine ring, or run `make install` as root")
    return EngineChoice("ring", f"eBPF unavailable ({why}): the ring engine counted")


class Combined:
    """eBPF counts; a sampled ring writes the evidence pcaps."""

    def __init__(self, counter: EbpfCapture, evidence: LiveCapture | None) -> None:
        self._counter = counter
        self._evidence = evidence
        self._lost = 0

    @property
    def evidence_lost(self) -> int:
        """Evidence frames lost, known after stop(): the sampled ring's drops when one ran beside
        the counter, else the eBPF program's records its full ring buffer refused."""
        return self._lost

    def start(self) -> None:
        self._counter.start()
        if self._evidence is not None:
            try:
                self._evidence.start()
            except BaseException:
                self._counter.stop(0)  # detach: nothing of ours stays attached
                raise

    def bytes_so_far(self) -> int:
        return self._counter.bytes_so_far()

    def on_new_flow(self, callback: Callable[[Sequence[Endpoints]], None]) -> bool:
        return self._counter.on_new_flow(callback)

    def stop(self, drain_s: float = 0.05) -> CaptureResult:
        """DRAIN_S: the eBPF programs count each frame as it passes, so a short wait is enough for
        the last ACKs (the ring engine alone needs its reader to catch up, and waits longer)."""
        ring = self._evidence
        if ring is None:
            counted = self._counter.stop(drain_s)  # the eBPF program's own evidence pcaps, if any
            self._lost = self._counter.evidence_lost
            return counted
        # Both at once: each spends its time waiting for the kernel (the links' and the packet
        # sockets' release each wait for an RCU grace period), and the verdict waits for both.
        stopped: list[CaptureResult | BaseException] = []

        def stop_evidence() -> None:
            try:
                stopped.append(ring.stop(0.0))
            except BaseException as exc:  # re-raised below, in the caller's thread
                stopped.append(exc)

        thread = threading.Thread(target=stop_evidence, name="evidence-stop", daemon=True)
        thread.start()
        try:
            counted = self._counter.stop(drain_s)
        finally:
            thread.join()
        evidence = stopped[0]
        if isinstance(evidence, BaseException):
            raise evidence
        self._lost = sum(i.drops for i in evidence.interfaces)
        pcaps = {i.name: i.pcap for i in evidence.interfaces if i.pcap}
        ifaces = tuple(replace(i, pcap=pcaps.get(i.name)) for i in counted.interfaces)
        sampled = "sampled" if ring.sample else "every frame"
        # The evidence ring's own drops: its pcaps lack frames, the kernel's counts do not.
        lost = tuple(
            f"evidence ring on {i.name} dropped {i.drops} frames: its pcap is incomplete (the eBPF counts are not)"
            for i in evidence.interfaces
            if i.drops
        )
        return replace(
            counted,
            interfaces=ifaces,
            problems=counted.problems + evidence.problems + lost,
            engine="ebpf",
            pcaps=sampled,
            snaplen=evidence.snaplen,
        )


Capture = LiveCapture | Combined


def make(
    choice: EngineChoice,
    interfaces: list[str],
    ports: PortRanges,
    out_dir: Path | None,
    snaplen: int = DEFAULT_SNAPLEN,
    rcvbuf: int = DEFAULT_RCVBUF,
    full: bool = False,
) -> Capture:
    if choice.engine == "ring":
        return LiveCapture(interfaces, ports, out_dir, snaplen=snaplen, rcvbuf=rcvbuf, note=choice.note)
    from verifier.capture.ebpf.engine import EbpfCapture

    if out_dir is None or not (full or snaplen >= FULL_SNAPLEN):
        return Combined(EbpfCapture(interfaces, ports, out_dir), None)  # headers-only sample from eBPF
    evidence = LiveCapture(interfaces, ports, out_dir, snaplen=snaplen, rcvbuf=rcvbuf, sample=0 if full else SAMPLE)
    return Combined(EbpfCapture(interfaces, ports), evidence)
