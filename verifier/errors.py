"""Exit codes and the exception hierarchy; only cli.py turns these into process exits."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit codes (README, --help). Result codes never overlap failure codes."""

    VERIFIED = 0
    WRONG_PATH = 1
    USAGE = 2
    INCONCLUSIVE = 3
    ENVIRONMENT = 4
    MIGRATION_FAILED = 5
    INTERRUPTED = 130


EXIT_MEANINGS = {
    ExitCode.VERIFIED: "verified: the stream took the expected link (or, without --expect, was observed)",
    ExitCode.WRONG_PATH: "wrong path: the stream did not take the expected link",
    ExitCode.USAGE: "usage error (bad option or argument)",
    ExitCode.INCONCLUSIVE: "inconclusive: drops, no stream seen, or counts do not reconcile with libvirt",
    ExitCode.ENVIRONMENT: "environment: privileges, libvirt unreachable, interface missing",
    ExitCode.MIGRATION_FAILED: "migration failed",
    ExitCode.INTERRUPTED: "interrupted",
}

VERDICT_EXIT = {
    "pass": ExitCode.VERIFIED,
    "observed": ExitCode.VERIFIED,
    "fail": ExitCode.WRONG_PATH,
    "inconclusive": ExitCode.INCONCLUSIVE,
    "interrupted": ExitCode.INTERRUPTED,
}


def exit_code_for(verdict: str, migration_status: str = "") -> int:
    """The documented exit code of a finished run: an interrupted or failed migration first."""
    if migration_status == "interrupted":
        return int(ExitCode.INTERRUPTED)
    if migration_status == "failed":
        return int(ExitCode.MIGRATION_FAILED)
    return int(VERDICT_EXIT.get(verdict, ExitCode.INCONCLUSIVE))


class VerifierError(Exception):
    """Base error: a one-line message for the user, saying what is wrong and what to do."""

    exit_code: ExitCode = ExitCode.ENVIRONMENT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class UsageError(VerifierError):
    exit_code = ExitCode.USAGE


class EnvironmentProblem(VerifierError):
    """Privileges, missing packages or kernel features, unreachable daemons, missing interfaces."""

    exit_code = ExitCode.ENVIRONMENT


class NotStored(EnvironmentProblem):
    """The run happened but its record could not be written; the report travels with the error."""

    def __init__(self, message: str, report: object, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report
