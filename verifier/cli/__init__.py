"""Command line: parse arguments, build the back ends, call the conductor, map errors to exit codes.

`main(argv, env, stdout, stderr)` returns the exit status and never raises for expected failures,
so tests run the CLI in-process. Only this package turns exceptions into exit codes.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from verifier import signals
from verifier.cli import records
from verifier.cli.parser import Parser
from verifier.errors import ExitCode, NotStored, UsageError, VerifierError

COMMANDS = ("lab", "watch", "predict", "probe", *records.RECORD_COMMANDS)


class Cli:
    """One invocation: which command, and whether --debug asked for tracebacks."""

    def __init__(self, env: Mapping[str, str], out: TextIO, err: TextIO) -> None:
        self.env, self.out, self.err = env, out, err
        self.debug = False
        self.argv: list[str] = []

    def dispatch(self, argv: list[str]) -> int:
        from verifier.cli import job, probe

        self.argv = list(argv)
        command = argv[0] if argv else ""
        if command == "lab":
            return self._lab(argv)
        runners: dict[str, Callable[[], int]] = {
            "watch": lambda: job.run_watch(self._parse(job.watch_parser(), argv[1:]), self.env, self.out, self.err),
            "probe": lambda: probe.run_cli(self._parse(probe.parser(self.env), argv[1:]), self.env, self.out, self.err),
            "predict": lambda: job.run_predict(
                self._parse(job.predict_parser(self.env), argv[1:]), self.env, self.out, self.err
            ),
        }
        if command in runners:
            return runners[command]()
        if command in records.RECORD_COMMANDS:
            return records.dispatch(command, self._parse_record(command, argv[1:]), self.out)
        if not argv or command in ("-h", "--help"):
            job.job_parser(self.env).print_help(self.out)
            return 0 if argv else int(ExitCode.USAGE)
        _refuse_typo(argv)
        args = self._parse(job.job_parser(self.env), argv)
        if args.dry_run:
            return job.run_predict(args, self.env, self.out, self.err)
        return job.run_job(args, self.env, self.out, self.err)

    def _parse(self, parser: Parser, argv: list[str]) -> argparse.Namespace:
        args = parser.parse_args(argv)
        self.debug = bool(getattr(args, "debug", False))
        args.argv = ["verify-path", *self.argv]  # recorded in the run as it was typed
        return args

    def _parse_record(self, command: str, argv: list[str]) -> argparse.Namespace:
        args = records.parse(command, argv)
        self.debug = bool(getattr(args, "debug", False))
        return args

    def _lab(self, argv: list[str]) -> int:
        from verifier.lab import commands

        p = Parser("verify-path")
        sub = p.add_subparsers(dest="command", required=True)
        commands.add_parser(sub)
        return commands.run(p.parse_args(argv), self.out)


def _refuse_typo(argv: list[str]) -> None:
    """`verify-path reprot RUN` would otherwise try to migrate a VM named "reprot"."""
    word = argv[0]
    if word.startswith("-"):
        return
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.75)
    if close:
        raise UsageError(
            f"unknown command {word!r}: did you mean {close[0]}?",
            hint=f"to migrate a VM named {word!r}, write `verify-path -- {word} DEST`",
        )


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = Cli(os.environ if env is None else env, stdout or sys.stdout, stderr or sys.stderr)
    signals.install()
    try:
        return cli.dispatch(argv)
    except NotStored as exc:
        # The run happened: show its report anyway, then say what could not be kept.
        from verifier.model import Report
        from verifier.render import text

        if isinstance(exc.report, Report):
            cli.out.write(text.render(exc.report))
        print(f"verify-path: error: {exc.one_line()}", file=cli.err)
        return int(exc.exit_code)
    except VerifierError as exc:
        if cli.debug:
            traceback.print_exc(file=cli.err)
        print(f"verify-path: error: {exc.one_line()}", file=cli.err)
        return int(exc.exit_code)
    except BrokenPipeError:
        # `verify-path compare A B | head -1`: the reader left; that is not an error of ours.
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("verify-path: interrupted", file=cli.err)
        return int(ExitCode.INTERRUPTED)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run() -> None:
    code = main()
    # Everything is written and closed by now. Without this, the interpreter's final garbage
    # collections walk every object matplotlib, numpy and scapy left behind: 0.14-0.19 s between
    # the verdict and the exit, in the lab's jobs (strace: no system call in that time), which a
    # script waiting for the exit code sees as time to verdict. Frozen, they are skipped (0.02 s);
    # atexit handlers and the flushing of open files still run.
    gc.freeze()
    sys.exit(code)
