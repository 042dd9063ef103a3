"""The run record on disk: captures/<UTC timestamp>-<vm>-<dest>/ with run.json, pcaps, chart.

Directories are 0700 and files 0600: pcaps hold packet headers and the first bytes of a stream
that carries guest RAM. run.json is written atomically so a crash never leaves half a record.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from verifier.errors import EnvironmentProblem
from verifier.model import Report, to_dict

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(text: str) -> str:
    """A VM or host name as a directory name: never a path separator, never empty."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "x"
    return cleaned[:64]


def create(captures_dir: Path, vm: str, dest: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now or time.time()))
    base = f"{stamp}-{safe_component(vm)}-{safe_component(dest)}"
    try:
        captures_dir.mkdir(parents=True, exist_ok=True)
        for n in range(100):
            path = captures_dir / (base if n == 0 else f"{base}.{n}")
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            path.chmod(0o700)
            return path
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot create a run directory in {captures_dir}: {exc.strerror}",
            hint="choose a writable place with --captures-dir",
        ) from exc
    raise EnvironmentProblem(f"too many runs named {base} in {captures_dir}")


def report_dict(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = to_dict(report)
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def store(report: Report, run_dir: Path) -> Path:
    path = run_dir / "run.json"
    write_json(path, report_dict(report))
    return path
