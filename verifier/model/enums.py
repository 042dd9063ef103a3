"""The closed vocabularies of a run: verdicts, migration states, severities.

`StrEnum` members are `str`s, so JSON, renderers and comparisons with plain strings stay exactly
as they were when these were bare strings; the type checker now catches a misspelt verdict.
"""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    PASS = "pass"  # the stream took the expected link
    FAIL = "fail"  # it did not
    INCONCLUSIVE = "inconclusive"  # drops, no stream, counts that do not reconcile, failed migration
    OBSERVED = "observed"  # no expectation given: what was seen is the answer
    INTERRUPTED = "interrupted"


class MigrationStatus(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    NOT_RUN = "not-run"  # watch and analyze: the migration was not triggered here


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    RETURN = "return"


class Attribution(enum.StrEnum):
    """How the migration's own connections were told apart from other traffic on its ports."""

    OWNERSHIP = "ownership"  # the sockets its QEMU (or libvirtd, tunnelled) holds
    CLASSIFICATION = "classification"  # no owner readable: the streams' first bytes (QEVM, multifd, NBD)
    PORT_RANGE = "port-range"  # neither: every connection on the migration ports counts
