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


class MigrationFailed(VerifierError):
    exit_code = ExitCode.MIGRATION_FAILED


class NotStored(EnvironmentProblem):
    """The run happened but its record could not be written; the report travels with the error."""

    def __init__(self, message: str, report: object, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report
