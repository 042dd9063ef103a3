"""Signals: SIGTERM behaves like Ctrl-C, and cleanup runs shielded from a second Ctrl-C.

A user who presses Ctrl-C twice must not skip the abort of a half-done migration or the
storing of the partial run; the second press is acknowledged, not obeyed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, like SIGINT: a run
    started over SSH (Ansible) whose connection drops must still abort the migration, destroy a
    probe guest and store what it saw."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGHUP, _raise_interrupt)


@contextlib.contextmanager
def shielded(what: str = "cleaning up") -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP only print a note; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(_signum: int, _frame: FrameType | None) -> None:
        try:
            print(f"verify-path: {what}, please wait", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass  # the terminal (or SSH session) that would read it is gone: clean up all the same

    old = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
