"""Frozen dataclasses that cross pipeline stage boundaries, with to_dict/from_dict for JSON.

No stage hands another a netlink message, a scapy packet or a libvirt object: only these.
One module per stage's vocabulary; everything is importable from `verifier.model`.
"""

from verifier.model.capture import Bin, CaptureResult, Connection, InterfaceCount
from verifier.model.enums import Direction, MigrationStatus, Severity, Verdict
from verifier.model.findings import Expectation, Facts, Finding, MemberPick, Plan, PolicyRule, Prediction, Reason
from verifier.model.migration import JobProgress, MigrationRequest, MigrationResult
from verifier.model.network import BondInfo, Interface, Topology
from verifier.model.report import Coverage, InterfaceReport, KindCount, Leg, Report, StreamSummary
from verifier.model.serial import INTERNAL, from_dict, to_dict

SCHEMA_VERSION = 1

__all__ = [
    "INTERNAL",
    "SCHEMA_VERSION",
    "Bin",
    "BondInfo",
    "CaptureResult",
    "Connection",
    "Coverage",
    "Direction",
    "Expectation",
    "Facts",
    "Finding",
    "Interface",
    "InterfaceCount",
    "InterfaceReport",
    "JobProgress",
    "KindCount",
    "Leg",
    "MemberPick",
    "MigrationRequest",
    "MigrationResult",
    "MigrationStatus",
    "Plan",
    "PolicyRule",
    "Prediction",
    "Reason",
    "Report",
    "Severity",
    "StreamSummary",
    "Topology",
    "Verdict",
    "from_dict",
    "to_dict",
]
