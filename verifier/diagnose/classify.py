"""After a run: what limited the migration's speed, in one of four classes, with the numbers.

Definitions (one meaning each, used by every report that shows them):

- wire rate: the migration's own bytes on the wire per second while its stream flowed. Bytes are
  frame bytes as captured (the frame's original length: Ethernet, IP and TCP headers included),
  of the migration's own connections (main stream, multifd channels, NBD), on the observed path's
  L3 interface, in the caller's `wire_bins`. The flow runs from the first bin with a byte to the
  last one; that excludes QEMU's start-up before the first byte (the destination QEMU starting)
  and the idle tail after the last. The two edge bins are only partly inside the flow, so when
  there are three bins or more the rate is the bytes of the bins strictly between them divided by
  their time (gaps inside the flow count: a stalled sender is part of the answer); with fewer, it
  is all the bytes over all the bins, a lower bound. Bits per second.
- link rate: the slowest link on the observed path in bits/s, tbf shaping and a bond member's own
  speed included (`verifier.predict.links.chain_mbps`, decimal Mbit/s * 10**6): one TCP stream
  never exceeds one member. Frame bytes against line rate: a full link shows about 98 % (the
  preamble and inter-frame gap are not captured), so 90 % means full.
- cap: the bandwidth limit in effect: `--bandwidth` (VIR_MIGRATE_PARAM_BANDWIDTH) overrides the
  domain's max speed (`virsh migrate-setspeed`) for that migration (libvirt's qemuMigrationRun:
  `resource ? resource : migMaxBandwidth`). QEMU's limit counts stream bytes, the wire adds
  headers, so a capped stream shows 100-105 % of the cap; 85 % or more means the cap is holding it.
- dirty rate: memory_dirty_rate (pages/s) * page size, the median over the window (bits/s).

Order when several apply: not-converging > cap-bound > link-bound > sender-bound. A guest that
dirties memory as fast as it is sent never finishes whatever the rate, and the fix (auto-converge,
post-copy, a link faster than the dirty rate) differs from a rate fix, so it is named first. A cap
below the link is a deliberate limit that holds the stream under the link, and removing it is
the cheaper fix; a cap at or above the link never engaged. Then a full link. What remains, a
stream well below both, is the sender's.
"""

from __future__ import annotations

import statistics

from verifier.diagnose.units import MIB, both, bytes_rate, link_text, size
from verifier.model import Bottleneck, Diagnosis, JobSample, RateCap, Timeline, Topology
from verifier.predict.links import chain_mbps

LINK_SHARE = 0.90  # the threshold: 90 % of the slowest link is a full link
CAP_SHARE = 0.85  # a cap holds the stream when it reaches 85 % of it (see the module docstring)
WINDOW = 6  # samples (3 s at the hypervisor's 0.5 s polls) that judge convergence
SLOW_ITERATIONS = 10  # a completed run that needed this many passes spent its time re-sending
NOT_FALLING = 0.8  # "not falling": the later half of the window keeps 80 % of the earlier
RESENT = 2.0  # a run still going that sent twice the guest's memory is re-sending what it dirties
FAST_LINK_BPS = 10_000_000_000  # one QEMU migration thread (one core) rarely fills 10 Gbit/s
LIBVIRT_UNLIMITED_MIB = 8796093022207  # libvirt's "no limit" max speed: INT64_MAX / 2**20


def link_rate_bps(topology: Topology, path: tuple[str, ...]) -> int | None:
    """The slowest link on PATH in bits/s (tbf and bond members included), None when unknown."""
    mbps = chain_mbps(topology, path)
    return mbps * 1_000_000 if mbps else None


def cap_in_effect(bandwidth_mib: int | None, max_speed_mib: int | None) -> RateCap | None:
    """The cap QEMU ran under: --bandwidth wins over the domain's max speed (libvirt's rule)."""
    if bandwidth_mib:
        return RateCap(bandwidth_mib * MIB * 8, f"--bandwidth {bandwidth_mib} MiB/s")
    if max_speed_mib and max_speed_mib < LIBVIRT_UNLIMITED_MIB:
        return RateCap(max_speed_mib * MIB * 8, f"libvirt max speed {max_speed_mib} MiB/s (virsh migrate-setspeed)")
    return None


def wire_rate(timeline: Timeline) -> tuple[int | None, float]:
    """(wire rate in bits/s, seconds the stream flowed) by the definition above."""
    bins = sorted((start, n) for start, n in timeline.wire_bins)
    active = [start for start, n in bins if n > 0]
    if not active or timeline.bin_s <= 0:
        return None, 0.0
    first, last = active[0], active[-1]
    count = round((last - first) / timeline.bin_s) + 1
    if count >= 3:
        inner = sum(n for start, n in bins if first < start < last)
        return int(inner * 8 / ((count - 2) * timeline.bin_s)), count * timeline.bin_s
    total = sum(n for start, n in bins if first <= start <= last)
    return int(total * 8 / (count * timeline.bin_s)), count * timeline.bin_s


def job_rate(samples: tuple[JobSample, ...]) -> int | None:
    """libvirt's view, bits/s: data_processed gained between the first and last started polls."""
    started = [s for s in samples if s.progress.started and s.progress.data_processed > 0]
    if len(started) < 2 or started[-1].t <= started[0].t:
        return None
    gained = started[-1].progress.data_processed - started[0].progress.data_processed
    return int(gained * 8 / (started[-1].t - started[0].t))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _not_falling(window: list[JobSample]) -> bool:
    """The memory left to send does not fall: its mean over the window's later half keeps 80 % of
    the earlier half's. Means, not the last value: within a pass it falls, at each new pass it
    jumps back to the dirty set, and 0.5 s polls land anywhere on that sawtooth."""
    rem = [s.progress.memory_remaining for s in window if s.progress.memory_remaining is not None]
    if len(rem) < 4:
        return False
    half = len(rem) // 2
    return statistics.mean(rem[half:]) >= NOT_FALLING * statistics.mean(rem[:half])


def diagnose(
    timeline: Timeline,
    link_rate_bps: int | None,
    cap: RateCap | None,
    streams: int,
    tls: bool,
    compressed: bool,
    completed: bool,
    page_size: int = 4096,
    window: int = WINDOW,
) -> Diagnosis:
    """Classify one migration run (see the module docstring for every definition and the order)."""
    samples = timeline.samples
    # Polls while the job ran: started, and memory still to send (the completed stats have none).
    running = [s for s in samples if s.progress.started and s.progress.data_remaining > 0]
    recent = running[-max(window, len(running) // 2) :]
    wire, flowed = wire_rate(timeline)
    job = job_rate(samples)
    rate = wire if wire is not None else job
    transfer_Bps = _median([s.progress.memory_bps for s in recent if s.progress.memory_bps > 0])
    dirty_Bps = _median(
        [
            s.progress.memory_dirty_rate * (s.progress.memory_page_size or page_size)
            for s in recent
            if s.progress.memory_dirty_rate
        ]
    )
    # What was sent, for "dirty >= transfer": QEMU's own figure, else the measured rate.
    sending_Bps = transfer_Bps if transfer_Bps is not None else (rate / 8 if rate else None)
    # The largest amount left in the window: about what each pass has to send again.
    peak = max((s.progress.memory_remaining or 0 for s in recent), default=0) or None

    evidence = _rate_evidence(wire, flowed, job, link_rate_bps, transfer_Bps)
    if dirty_Bps is not None:
        against = f" against {bytes_rate(sending_Bps)} sent" if sending_Bps else ""
        evidence.append(f"the guest dirtied {bytes_rate(dirty_Bps)}{against}")
    stuck, words = _convergence(samples, recent, peak, completed, dirty_Bps, sending_Bps)
    evidence += words

    capped = (
        cap is not None
        and (link_rate_bps is None or cap.bps < link_rate_bps)
        and rate is not None
        and rate >= CAP_SHARE * cap.bps
    )
    full = link_rate_bps is not None and rate is not None and rate >= LINK_SHARE * link_rate_bps
    cause = None
    if stuck:
        bottleneck = Bottleneck.NOT_CONVERGING
        # What held the rate under the dirty rate points at the other fix (no cap, a faster link).
        if capped and cap is not None:
            evidence.append(f"the stream was also held by a cap of {both(cap.bps)} ({cap.source})")
        elif full and link_rate_bps is not None:
            evidence.append(f"the link ({link_text(link_rate_bps)}) was full: only a faster one can outrun the guest")
    elif capped and cap is not None:
        bottleneck = Bottleneck.CAP
        evidence.append(
            f"a cap of {both(cap.bps)} was in effect ({cap.source}); "
            f"the stream reached {100 * (rate or 0) / cap.bps:.0f} % of it"
        )
    elif full:
        bottleneck = Bottleneck.LINK
    else:
        bottleneck = Bottleneck.SENDER
        cause = _sender_cause(rate, link_rate_bps, streams, tls, compressed)
        evidence.append(f"neither the link nor a cap holds it back: likely {cause}")
    last = samples[-1].progress if samples else None
    return Diagnosis(
        bottleneck=bottleneck,
        converged=completed,
        iterations=_iterations(samples),
        downtime_ms=last.downtime_ms if last else None,
        wire_rate_bps=wire,
        link_rate_bps=link_rate_bps,
        cap_bps=cap.bps if cap else None,
        dirty_rate_bps=int(dirty_Bps * 8) if dirty_Bps is not None else None,
        evidence=tuple(evidence),
        cap_source=cap.source if cap else None,
        transfer_rate_bps=int(transfer_Bps * 8) if transfer_Bps is not None else None,
        cause=cause,
        streams=streams,
        tls=tls,
        compressed=compressed,
        remaining_bytes=peak,
    )


def _iterations(samples: tuple[JobSample, ...]) -> int | None:
    return max((s.progress.memory_iteration or 0 for s in samples), default=0) or None


def _rate_evidence(
    wire: int | None, flowed: float, job: int | None, link: int | None, transfer_Bps: float | None
) -> list[str]:
    out = []
    if wire is not None:
        where = f", {100 * wire / link:.0f} % of the path's slowest link ({link_text(link)})" if link else ""
        out.append(
            f"the stream ran at {both(wire)} on the wire over {flowed:.1f} s"
            + (where or " (the path's link speed is unknown)")
        )
    elif job is not None:
        out.append(f"no capture bins: libvirt's data_processed grew at {both(job)}")
    if transfer_Bps is not None:
        out.append(f"libvirt reported {bytes_rate(transfer_Bps)} sent (memory_bps)")
    return out


def _convergence(
    samples: tuple[JobSample, ...],
    recent: list[JobSample],
    peak: int | None,
    completed: bool,
    dirty_Bps: float | None,
    sending_Bps: float | None,
) -> tuple[bool, list[str]]:
    """(not converging?, the sentences that show it or that it converged).

    A run still going (or aborted) is not converging when its passes keep coming (the iteration
    count grew over the window and is 3 or more) and the dirty set keeps up: dirty >= sent, the
    memory left per pass not falling, SLOW_ITERATIONS passes already, or RESENT times the guest's
    memory sent already. The last two do not depend on where the polls fall: with passes as long as
    two polls, the polls land at the same point of each pass's sawtooth, drift along it, and the
    means of the window's halves can fall while the passes do not (a dirty rate just under the
    link's: 10 of 40 simulated runs, and a lab run, were called link-bound). A completed run counts
    too when it needed SLOW_ITERATIONS passes or auto-converge had to throttle the guest: that is
    where its minutes went.
    """
    iterations = _iterations(samples) or 0
    throttle = max((s.progress.auto_converge_throttle or 0 for s in samples), default=0)
    its = [s.progress.memory_iteration for s in recent if s.progress.memory_iteration is not None]
    grew = bool(its) and its[-1] > its[0] and iterations >= 3
    outpaced = dirty_Bps is not None and sending_Bps is not None and dirty_Bps >= sending_Bps
    flat = _not_falling(recent)
    words = []
    if completed:
        last = samples[-1].progress.downtime_ms if samples else None
        words.append(
            f"converged after {iterations or '?'} iterations"
            + (f" with auto-converge throttling the guest's vCPUs by {throttle} %" if throttle else "")
            + (f", downtime {last} ms" if last is not None else "")
        )
        return iterations >= SLOW_ITERATIONS or throttle > 0, words
    now = recent[-1].progress if recent else None
    resent = now is not None and now.data_total > 0 and now.data_processed >= RESENT * now.data_total
    stuck = grew and (outpaced or flat or iterations >= SLOW_ITERATIONS or resent)
    if stuck:
        left = f"; the memory left to send did not fall (up to {size(peak)})" if flat and peak else ""
        words.append(f"iterations grew from {its[0]} to {its[-1]} over the last {len(recent)} polls{left}")
        if resent and now is not None:
            words.append(
                f"{size(now.data_processed)} sent, {now.data_processed / now.data_total:.1f} times the guest's"
                f" {size(now.data_total)}, and {size(now.data_remaining)} still to send"
            )
    words.append(f"did not converge ({iterations or 'no'} iterations reported)")
    return stuck, words


def _sender_cause(rate: int | None, link: int | None, streams: int, tls: bool, compressed: bool) -> str:
    """The likeliest reason a stream stays well under its link, most specific first."""
    if rate is None:
        return "unknown: no rate was measured (no capture bins, no job statistics)"
    if tls:
        return "TLS: every stream is encrypted on one core of the sending host"
    if compressed:
        return "compression: QEMU compresses pages on the sending host's CPU"
    if streams <= 1 and (link is None or link >= FAST_LINK_BPS):
        return (
            "a single stream on a fast link: one QEMU migration thread (one core) sets the pace"
            " (under TCG the guest's emulation competes for the same cores)"
        )
    if link is None:
        return "the sending host (the path's link speed is unknown, so the link cannot be ruled in)"
    return f"the sending host: {streams} stream(s) reach {100 * rate / link:.0f} % of the link (CPU, guest load)"
