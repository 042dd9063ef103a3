"""One migration check at a time per host: two runs would count each other's streams."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from verifier.errors import EnvironmentProblem

DEFAULT_LOCK = Path(os.environ.get("VERIFY_PATH_LOCK", "/run/verify-path.lock"))


@contextlib.contextmanager
def host_lock(path: Path = DEFAULT_LOCK) -> Iterator[None]:
    """Hold the host lock for the block, or refuse at once naming the holder."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot open the lock file {path}: {exc.strerror}", hint="set VERIFY_PATH_LOCK to a writable path"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise EnvironmentProblem(
                f"another verify-path run (pid {holder}) is migrating from this host",
                hint="wait for it to finish, or observe it with `verify-path watch`",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
