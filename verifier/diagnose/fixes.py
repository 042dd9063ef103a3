"""The bottleneck findings and their prescriptions: the exact commands, with the guest's real name.

`findings()` turns a `Diagnosis` into one finding whose code names its class; the prescribe stage
words the fix through `FIXES` (register them into `prescribe.FIXES`), reading only the finding's
`DiagnosisFacts`. This module does not import `verifier.prescribe` (that module registers these),
so a prescription takes any context with the guest's and the destination's names.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from typing import Protocol

from verifier.diagnose.units import MIB, both, bytes_rate, link_text, size
from verifier.model import Bottleneck, Diagnosis, DiagnosisFacts, Facts, Finding, LinkForecast, Severity

CODES: dict[Bottleneck, str] = {
    Bottleneck.LINK: "bottleneck-link",
    Bottleneck.CAP: "bottleneck-cap",
    Bottleneck.SENDER: "bottleneck-sender",
    Bottleneck.NOT_CONVERGING: "not-converging",
}
TIMEOUT_S = 120  # the example bound for --timeout; the operator picks their own
MAX_PARALLEL = 8  # more multifd channels than this rarely help one guest


class Where(Protocol):
    """What a prescription needs from prescribe.Context (read-only, so a frozen dataclass fits)."""

    @property
    def vm(self) -> str: ...
    @property
    def dest(self) -> str: ...
    @property
    def dest_uri(self) -> str | None: ...


def findings(
    diagnosis: Diagnosis,
    vm: str,
    faster: tuple[str, int] | None = None,
    faster_name: str | None = None,
    forecast: LinkForecast | None = None,
) -> tuple[Finding, ...]:
    """The diagnosis as one finding. FASTER: (interface, rate in bits/s) of a faster link that
    reaches the destination (predict.links.slower_links knows it), FASTER_NAME the destination's
    host name on it, FORECAST that link's convergence forecast when one was made."""
    d = diagnosis
    code = CODES[d.bottleneck]
    rate = d.wire_rate_bps if d.wire_rate_bps is not None else d.transfer_rate_bps
    ran = f"ran at {both(rate)}" if rate is not None else "ran at an unmeasured rate"
    if d.bottleneck == Bottleneck.NOT_CONVERGING:
        dirty = f"the guest dirtied {bytes_rate(d.dirty_rate_bps / 8)} while the migration " if d.dirty_rate_bps else ""
        done = f"converged only after {d.iterations} iterations" if d.converged else "did not converge"
        message = f"{vm}: {dirty}{ran}: it {done}"
        severity = Severity.WARNING
    elif d.bottleneck == Bottleneck.CAP:
        message = f"{vm}'s migration {ran}, held by a bandwidth cap of {both(d.cap_bps or 0)} ({d.cap_source})"
        severity = Severity.WARNING
    elif d.bottleneck == Bottleneck.LINK:
        link = link_text(d.link_rate_bps) if d.link_rate_bps else "the link"
        message = f"{vm}'s migration {ran}: the path's {link} link is full"
        severity = Severity.WARNING if faster else Severity.INFO
    else:
        below = f", well below the path's {link_text(d.link_rate_bps)}" if d.link_rate_bps else ""
        message = f"{vm}'s migration {ran}{below}: the sender is the limit ({d.cause})"
        severity = Severity.INFO
    facts = DiagnosisFacts(
        interface=faster[0] if faster else None,
        name=faster_name,
        count=d.streams,
        diagnosis=d,
        faster_rate_bps=faster[1] if faster else None,
        forecast=forecast,
    )
    return (Finding(code, severity, message, facts=facts),)


def _parts(facts: Facts, where: Where) -> tuple[Diagnosis | None, str, str]:
    """The diagnosis (if the facts carry one), the quoted guest name and destination URI."""
    d = facts.diagnosis if isinstance(facts, DiagnosisFacts) else None
    uri = where.dest_uri or f"qemu+ssh://{where.dest}/system"
    return d, shlex.quote(where.vm), shlex.quote(uri)


def _via(facts: Facts, where: Where, vm: str, uri: str) -> str:
    """How to send the stream over the faster link named in FACTS."""
    iface = facts.interface
    rate = facts.faster_rate_bps if isinstance(facts, DiagnosisFacts) else None
    speed = f" ({link_text(rate)})" if rate else ""
    text = f"migrate over {iface}{speed}: `verify-path {vm} {shlex.quote(where.dest)} --via {iface}`"
    if facts.name:
        text += (
            f", `virsh migrate --live --p2p {vm} {uri} --migrateuri tcp://{facts.name}`, or for good "
            f'migration_host = "{facts.name}" in {where.dest}\'s /etc/libvirt/qemu.conf'
        )
    return text


def link_fix(facts: Facts, where: Where) -> str:
    """bottleneck-link: a faster link if one reaches the destination, else fewer bytes."""
    d, vm, uri = _parts(facts, where)
    if facts.interface:
        return _via(facts, where, vm, uri)
    link = link_text(d.link_rate_bps) if d and d.link_rate_bps else "the link"
    return (
        f"no faster link reaches {where.dest}: {link} is the limit. A faster or dedicated migration link "
        f"is the fix; or send fewer bytes: `virsh migrate --live --p2p --compressed {vm} {uri}` "
        "(XBZRLE sends re-dirtied pages as deltas, at the cost of sender CPU)"
    )


def cap_fix(facts: Facts, where: Where) -> str:
    """bottleneck-cap: remove the limit where it was set, or raise it to what the link carries."""
    d, vm, _uri = _parts(facts, where)
    # The link's whole rate in MiB/s is the meaningful ceiling; libvirt's "unlimited" otherwise.
    target = str(math.ceil(d.link_rate_bps / 8 / MIB)) if d and d.link_rate_bps else "8796093022207"
    source = (d.cap_source or "") if d else ""
    steps = []
    if "--bandwidth" in source:
        steps.append(f"drop --bandwidth from the migration command (or raise it to {target} MiB/s, the link's rate)")
    if "parameter" in source:
        steps.append(
            "remove the bandwidth migration parameter (VIR_MIGRATE_PARAM_BANDWIDTH) from the tool that "
            f"starts the migration, or raise it to {target} MiB/s"
        )
    steps.append(
        f"`virsh migrate-setspeed {vm} {target}` raises the domain's max speed "
        f"(check with `virsh migrate-getspeed {vm}`)"
    )
    steps.append(
        f"with Pacemaker: `pcs resource update {vm} migration_speed=0` "
        "(VirtualDomain runs virsh migrate-setspeed with it before each migration; 0 sets none)"
    )
    return "; ".join(steps)


def sender_fix(facts: Facts, where: Where) -> str:
    """bottleneck-sender: more streams for one thread's limit; TLS and compression cost sender CPU."""
    d, vm, uri = _parts(facts, where)
    wire = (d.wire_rate_bps or d.transfer_rate_bps) if d else None
    link = d.link_rate_bps if d else None
    n = min(MAX_PARALLEL, max(2, math.ceil(link / wire))) if link and wire else 4
    dest = shlex.quote(where.dest)
    parallel = (
        f"`verify-path {vm} {dest} --parallel {n}` or `virsh migrate --live --p2p --parallel "
        f"--parallel-connections {n} {vm} {uri}` ({n} multifd streams, one sending thread each)"
    )
    steps = []
    if d and d.tls:
        steps.append(f"TLS encrypts each stream on one core: spread it, {parallel} with --tls kept")
        steps.append("or, on a dedicated and trusted migration link only, migrate without --tls")
    elif d and d.compressed:
        steps.append(
            f"compression costs more sender CPU than it saves on this link: migrate without --compressed, "
            f"e.g. `virsh migrate --live --p2p {vm} {uri}`"
        )
    else:
        steps.append(parallel)
    steps.append("watch the source QEMU's migration thread: at 100 % of one core it is the limit")
    return "; ".join(steps)


def converge_fix(facts: Facts, where: Where) -> str:
    """not-converging: a link that outruns the guest, then the ways to force or bound convergence."""
    d, vm, uri = _parts(facts, where)
    steps = []
    forecast = facts.forecast if isinstance(facts, DiagnosisFacts) else None
    if facts.interface and (forecast is None or forecast.converges):
        why = f" ({forecast.text})" if forecast else ""
        steps.append(_via(facts, where, vm, uri) + why)
    sent = (d.transfer_rate_bps or d.wire_rate_bps) if d else None
    steps.append(
        f"`virsh migrate --live --p2p --auto-converge {vm} {uri}`: QEMU throttles the guest's vCPUs until it "
        f"dirties less than it sends{f' ({bytes_rate(sent / 8)})' if sent else ''}; the guest runs slower meanwhile"
    )
    if d and d.remaining_bytes and sent:
        # The pause that copies what stays dirty each pass, rounded up to 50 ms.
        ms = 50 * math.ceil(d.remaining_bytes / (sent / 8) * 1000 / 50)
        steps.append(
            f"`virsh migrate-setmaxdowntime {vm} {ms}` while it runs: a {ms} ms pause copies the "
            f"~{size(d.remaining_bytes)} that stays dirty per pass (QEMU's default allows 300 ms)"
        )
    else:
        steps.append(f"`virsh migrate-setmaxdowntime {vm} MS` while it runs allows a longer final pause")
    steps.append(
        f"`virsh migrate --live --p2p --postcopy --postcopy-after-precopy {vm} {uri}` finishes whatever the "
        "dirty rate; risk: after the switch the guest's memory is split between the hosts, so a network "
        "failure (or either host failing) during post-copy loses the guest"
    )
    steps.append(
        f"bound it: `virsh migrate --live --p2p --timeout {TIMEOUT_S} --timeout-suspend {vm} {uri}` pauses the "
        f"guest after {TIMEOUT_S} s and copies the rest (a longer downtime, no risk), or "
        f"`--postcopy --timeout {TIMEOUT_S} --timeout-postcopy` switches to post-copy then (its risk as above)"
    )
    return "; ".join(steps)


FIXES: dict[str, Callable[[Facts, Where], str]] = {
    "bottleneck-link": link_fix,
    "bottleneck-cap": cap_fix,
    "bottleneck-sender": sender_fix,
    "not-converging": converge_fix,
}
