"""Frozen dataclasses that cross pipeline stage boundaries, with to_dict/from_dict for JSON.

No stage hands another a netlink message, a scapy packet or a libvirt object: only these.
One module per stage's vocabulary; everything is importable from `verifier.model`.
"""

from verifier.model.capture import Bin, CaptureResult, Connection, ForeignFlow, InterfaceCount
from verifier.model.diagnosis import (
    Bottleneck,
    Diagnosis,
    DiagnosisFacts,
    JobSample,
    LinkForecast,
    RateCap,
    Timeline,
)
from verifier.model.enums import Attribution, Direction, MigrationStatus, Severity, Verdict
from verifier.model.findings import Expectation, Facts, Finding, MemberPick, PolicyRule, Prediction, Reason
from verifier.model.migration import JobProgress, MigrationRequest, MigrationResult
from verifier.model.network import BondInfo, Interface, Topology
from verifier.model.ownership import Endpoints, FlowKey, OwnedFlow, Ownership, canonical_ip, flow_key
from verifier.model.plan import Plan
from verifier.model.report import (
    CaptureInfo,
    Coverage,
    InterfaceReport,
    KindCount,
    Leg,
    MigrationSeen,
    Report,
    StreamSummary,
)
from verifier.model.serial import INTERNAL, from_dict, to_dict

SCHEMA_VERSION = 1

__all__ = [
    "INTERNAL",
    "SCHEMA_VERSION",
    "Attribution",
    "Bin",
    "BondInfo",
    "Bottleneck",
    "CaptureInfo",
    "CaptureResult",
    "Connection",
    "Coverage",
    "Diagnosis",
    "DiagnosisFacts",
    "Direction",
    "Expectation",
    "Facts",
    "Finding",
    "Endpoints",
    "FlowKey",
    "ForeignFlow",
    "Interface",
    "InterfaceCount",
    "InterfaceReport",
    "JobProgress",
    "JobSample",
    "KindCount",
    "Leg",
    "LinkForecast",
    "MemberPick",
    "MigrationRequest",
    "MigrationResult",
    "MigrationSeen",
    "MigrationStatus",
    "OwnedFlow",
    "Ownership",
    "Plan",
    "PolicyRule",
    "Prediction",
    "RateCap",
    "Reason",
    "Report",
    "Severity",
    "StreamSummary",
    "Timeline",
    "Topology",
    "Verdict",
    "canonical_ip",
    "flow_key",
    "from_dict",
    "to_dict",
]
