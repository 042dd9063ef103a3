"""The run record on disk: captures/<UTC timestamp>-<vm>-<dest>/ with run.json, pcaps, chart.

Directories are 0700 and files 0600: pcaps hold packet headers and the first bytes of a stream
that carries guest RAM. run.json is written atomically so a crash never leaves half a record.

Reading records back: `load` checks run.json's schema_version and upgrades an older record step
by step through UPGRADES; `list_runs` summarises every run in a captures directory.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from verifier import __version__
from verifier.errors import EnvironmentProblem, UsageError
from verifier.model import SCHEMA_VERSION, Report, from_dict, to_dict

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


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def store(report: Report, run_dir: Path) -> Path:
    path = run_dir / "run.json"
    write_json(path, to_dict(report))
    return path


# --- reading records back -------------------------------------------------------------------

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]

# UPGRADES[n] turns a run.json dict of schema_version n into one of schema_version n + 1 (and sets
# schema_version itself). Version 1 is the first schema ever written, so there is no rule yet: the
# slot for the first one is UPGRADES[0]. When SCHEMA_VERSION becomes 2, add UPGRADES[1] = _v1_to_v2.
UPGRADES: dict[int, Upgrade] = {}

_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def record_path(path: Path) -> Path:
    """PATH's run.json: PATH is a run directory or the run.json itself."""
    return path / "run.json" if path.is_dir() else path


def upgrade(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """DATA brought to the current SCHEMA_VERSION; UsageError when that is impossible."""
    found = data.get("schema_version")
    if isinstance(found, bool) or not isinstance(found, int):
        raise UsageError(
            f"{source} has no usable schema_version (found {found!r}), so it is not a verify-path run record",
            hint="point at a run directory or its run.json written by verify-path",
        )
    if found > SCHEMA_VERSION:
        writer = data.get("tool_version")
        needed = f"verify-path {writer} or newer" if isinstance(writer, str) and writer else "a newer verify-path"
        raise UsageError(
            f"{source} has schema_version {found}, newer than the {SCHEMA_VERSION} that verify-path {__version__} "
            f"reads",
            hint=f"install {needed} to read it (pip install --upgrade verify-path)",
        )
    version = found
    while version < SCHEMA_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            raise UsageError(
                f"{source} has schema_version {version} and verify-path {__version__} has no rule to upgrade it "
                f"to {SCHEMA_VERSION}",
                hint="read it with the verify-path version that wrote it",
            )
        data = step(dict(data))
        data["schema_version"] = version + 1
        version += 1
    return data


def load(path: Path) -> Report:
    """The Report stored in PATH (a run directory or its run.json), upgraded to the current schema.

    run_dir is set to the directory the record is in now: records get moved (captures/samples/).
    Raises UsageError, with one line naming the file and what to do, for a missing, garbled or
    too new record.
    """
    source = record_path(path)
    try:
        raw = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"{source} does not exist", hint="point at a run directory (captures/<run>/) or its run.json"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {source}: {why}", hint="check the path and its permissions") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="the record is damaged; rerun verify-path to make a new one",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{source} holds a JSON {type(data).__name__}, not a run record",
            hint="point at a run.json written by verify-path",
        )
    data = upgrade(data, source)
    try:
        report: Report = from_dict(Report, data)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise UsageError(
            f"{source} has schema_version {data['schema_version']} but does not match it ({exc})",
            hint="the record is damaged; rerun verify-path to make a new one",
        ) from None
    return replace(report, run_dir=str(source.parent))


@dataclass(frozen=True)
class RunSummary:
    """One line of a run listing. verdict is "unreadable" (and error says why) for a damaged record."""

    run_dir: Path
    time: str  # UTC, "2025-01-31T12:00:00Z"; from the directory name when the record is unreadable
    vm: str
    destination: str
    verdict: str
    observed_interface: str | None
    expected: tuple[str, ...]  # --expect interfaces, then --expect-net networks
    error: str = ""


def utc_text(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _time_from_name(run_dir: Path) -> str:
    m = _STAMP.match(run_dir.name)
    if m:
        y, mo, d, h, mi, s = m.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"
    try:
        return utc_text(run_dir.stat().st_mtime)
    except OSError:
        return ""


def summarise(run_dir: Path) -> RunSummary:
    """RUN_DIR's summary; never raises (a damaged record is verdict "unreadable")."""
    try:
        report = load(run_dir)
    except UsageError as exc:
        return RunSummary(run_dir, _time_from_name(run_dir), "", "", "unreadable", None, (), exc.one_line())
    except Exception as exc:  # noqa: BLE001 - a listing must show every directory, whatever is in it
        return RunSummary(run_dir, _time_from_name(run_dir), "", "", "unreadable", None, (), repr(exc))
    return RunSummary(
        run_dir=run_dir,
        time=utc_text(report.started_at),
        vm=report.vm,
        destination=report.destination,
        verdict=report.verdict,
        observed_interface=report.observed_interface,
        expected=report.expected.interfaces + report.expected.networks,
    )


def list_runs(captures_dir: Path) -> list[RunSummary]:
    """Every run directory directly under CAPTURES_DIR that has a run.json, oldest first.

    Directories without run.json are skipped; a missing CAPTURES_DIR is an empty list. Never raises.
    """
    try:
        dirs = [d for d in captures_dir.iterdir() if d.is_dir() and (d / "run.json").is_file()]
    except OSError:
        return []
    return sorted((summarise(d) for d in dirs), key=lambda r: (r.time, r.run_dir.name))
