"""engines.Combined: the eBPF counts with the evidence ring's pcaps, and the ring's own losses said."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from verifier.capture.engines import Combined
from verifier.model import CaptureResult
from verifier.model.capture import InterfaceCount


class _Stopped:
    """A started engine whose stop() returns a fixed result (Combined only calls start/stop)."""

    def __init__(self, result: CaptureResult, sample: int = 0, evidence_lost: int = 0) -> None:
        self.result = result
        self.sample = sample
        self.evidence_lost = evidence_lost  # as the eBPF engine counts its refused records

    def start(self) -> None:
        pass

    def stop(self, drain_s: float = 0.3) -> CaptureResult:
        return self.result


def _result(*ifaces: InterfaceCount, problems: tuple[str, ...] = ()) -> CaptureResult:
    return CaptureResult(ifaces, (), ((49152, 49215),), 0.0, 1.0, 128, "tcp", problems)


def test_evidence_ring_drops_are_a_problem_and_do_not_touch_the_counts() -> None:
    counted = _result(InterfaceCount("san0", bytes_tx=10_000), InterfaceCount("br0", bytes_tx=5))
    evidence = _result(
        InterfaceCount("san0", bytes_tx=80, drops=17, pcap="san0.pcap"), InterfaceCount("br0", pcap="br0.pcap")
    )
    fake: Any = _Stopped(evidence, sample=1024)
    combined = Combined(_Stopped(counted, evidence_lost=99), fake)  # type: ignore[arg-type]
    out = combined.stop(0)
    assert combined.evidence_lost == 17  # the ring's, which wrote the pcaps
    assert out.engine == "ebpf" and out.pcaps == "sampled"
    assert [(i.name, i.bytes_tx, i.drops, i.pcap) for i in out.interfaces] == [
        ("san0", 10_000, 0, "san0.pcap"),
        ("br0", 5, 0, "br0.pcap"),
    ]
    assert len(out.problems) == 1
    assert "evidence ring on san0 dropped 17 frames" in out.problems[0]


def test_no_evidence_drops_no_problem() -> None:
    counted = _result(InterfaceCount("san0", bytes_tx=10_000), problems=("eBPF flow table full: 3 frames not counted",))
    fake: Any = _Stopped(_result(InterfaceCount("san0", pcap="san0.pcap")), sample=1024)
    out = Combined(_Stopped(counted), fake).stop(0)  # type: ignore[arg-type]
    assert out.problems == ("eBPF flow table full: 3 frames not counted",)


def test_without_an_evidence_ring_the_counter_result_is_returned_as_is() -> None:
    """The default capture: the eBPF program wrote the sampled pcaps itself; nothing to merge."""
    own = replace(_result(InterfaceCount("san0", bytes_tx=80, pcap="san0.pcap")), engine="ebpf", pcaps="sampled")
    fake: Any = _Stopped(own, evidence_lost=3)
    started = threading.active_count()
    combined = Combined(fake, None)
    assert combined.stop() is own
    assert combined.evidence_lost == 3  # the eBPF program's refused records
    assert threading.active_count() == started and not any(t.name == "evidence-stop" for t in threading.enumerate())
