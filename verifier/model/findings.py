"""What the predict, reconcile and prescribe stages say: reasons, findings and the prediction.

Findings carry a code and structured `Facts`; the prescribe stage words each fix from those
facts, so no stage ever parses another's prose. Facts, policy rules and bond picks are working
data (`INTERNAL`): run.json keeps the words, not these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier.model.enums import Severity
from verifier.model.serial import INTERNAL


@dataclass(frozen=True)
class Facts:
    """The names a prescription needs, by role; each finding code fills the ones it has."""

    expected: str | None = None  # the interface the stream should have taken
    interface: str | None = None  # the interface the finding is about (a bond, a faster link)
    member: str | None = None  # a bond member
    policy: str | None = None  # a bond's xmit_hash_policy
    name: str | None = None  # the destination's host name on `interface`
    count: int | None = None  # how many connections
    location: str | None = None  # where the guest is after a failed or interrupted migration
    port: int | None = None  # a port another program holds
    free_range: tuple[int, int] | None = None  # a migration port range nothing here uses


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    fix: str = ""
    facts: Facts | None = field(default=None, compare=False, metadata=INTERNAL)


@dataclass(frozen=True)
class Reason:
    step: str
    detail: str
    evidence: str = ""


@dataclass(frozen=True)
class PolicyRule:
    """The `ip rule` that selected the routing table for the migration's destination address."""

    priority: int
    text: str  # in `ip rule` words: "100: from all to 198.18.0.12/32 lookup 100"
    table: int

    @property
    def is_default(self) -> bool:
        """One of the kernel's own rules (lookup local/main/default): nothing to remove."""
        return self.table in (253, 254, 255)


@dataclass(frozen=True)
class MemberPick:
    """Which member of a bond a flow leaves by, and how that was decided."""

    bond: str
    mode: str
    policy: str | None
    member: str | None  # None: not predictable from the flow (encap*, balance-rr, alb/tlb)
    how: str  # active-backup | hash | per-flow (ports not known yet) | unpredictable
    flow: tuple[str, int, str, int] | None = None  # src, sport, dst, dport
    hash: int | None = None
    generation: str | None = None  # the kernel generation whose formula was applied


@dataclass(frozen=True)
class Expectation:
    interfaces: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        return bool(self.interfaces or self.networks)


@dataclass(frozen=True)
class Prediction:
    target_host: str | None
    target_address: str | None
    interface: str | None
    path: tuple[str, ...] = ()
    source_address: str | None = None
    gateway: str | None = None
    table: int | None = None
    reasons: tuple[Reason, ...] = ()
    uri_origin: str = "hostname"  # migrate-uri | via | migration_host | hostname
    migrate_uri: str | None = None
    findings: tuple[Finding, ...] = ()  # what the prediction alone already shows (a slower link)
    rule: PolicyRule | None = field(default=None, metadata=INTERNAL)
    bond_picks: tuple[MemberPick, ...] = field(default=(), metadata=INTERNAL)
