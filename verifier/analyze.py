"""Offline analysis: count capture files (pcap or pcapng) exactly as a live run counts frames.

Each file stands for one interface, except a pcapng that names several (as `dumpcap -i san0 -i
br0` writes): its frames count under the names it stores. All files feed one `Counter`, whose t0 is the earliest
timestamp in any of them, so the per-second bins of different interfaces line up.

A frame's direction (outgoing = this host sent it), in order of precedence:
1. what the file records (pcapng epb_flags, the packet type of a Linux cooked header);
2. with LOCAL (this host's addresses): the frame's source address is one of them;
3. otherwise the frame goes from its connection's client to its server: the source hypervisor
   opens the migration connections and sends the stream, so for a capture taken on the source
   "client -> server" is "outgoing".
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from verifier import prescribe
from verifier.capture.counting import Counter, PortRanges
from verifier.capture.frames import decode
from verifier.capture.readers import Record
from verifier.capture.scan import SeenFrames, scan_file
from verifier.errors import UsageError
from verifier.jobs import Finished
from verifier.model import (
    CaptureResult,
    Expectation,
    Interface,
    MigrationResult,
    MigrationStatus,
    Plan,
    Prediction,
    Reason,
    Topology,
)


def _names_file(key: str, path: Path) -> bool:
    """Whether an --iface-map FILE key names PATH: the same path, the same file, or its file name."""
    if key == str(path) or Path(key) == path:
        return True
    try:
        if Path(key).resolve() == path.resolve():
            return True
    except (OSError, RuntimeError):
        pass
    return key == path.name


def interface_for(path: Path, iface_map: dict[str, str]) -> str:
    """The interface PATH stands for: its FILE=IFACE entry (by path, then by file name), else its stem."""
    # A full-path entry wins over a file-name entry, whatever the order of the map.
    for key, iface in iface_map.items():
        if key != path.name and _names_file(key, path):
            return iface
    for key, iface in iface_map.items():
        if key == path.name:
            return iface
    name = path.name.removesuffix(".gz") if path.name.endswith(".gz") else path.name
    return Path(name).stem  # "san0.pcap" -> "san0", "san0.pcap.gz" -> "san0"


def validate_options(pcaps: Sequence[Path], iface_map: dict[str, str], local: Sequence[str]) -> None:
    """Refuse, before reading anything, a --local that is not an address and an --iface-map for a file not given."""
    for value in local:
        if not _is_address(value):
            raise UsageError(
                f"--local {value!r} is not an IP address", hint="give this host's address, e.g. --local 198.51.100.11"
            )
    for key, iface in iface_map.items():
        if not any(_names_file(key, path) for path in pcaps):
            raise UsageError(
                f"--iface-map {key}={iface} names a file that is not among the PCAP arguments",
                hint="use one of the files given, by path or by file name, e.g. --iface-map san0.pcap=san0",
            )


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip().split("/", 1)[0].split("%", 1)[0])
    except ValueError:
        return False
    return True


def _normalise(address: str) -> str:
    """'10.0.0.1/24' -> '10.0.0.1', '2001:DB8::0001' -> '2001:db8::1'; anything else unchanged."""
    text = address.strip().split("/", 1)[0].split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return address


def count_files(files: list[tuple[Path, str]], ports: PortRanges, local: set[str] | None = None) -> CaptureResult:
    """Count the (file, interface) pairs through one Counter; raise PcapError for an unreadable file.

    A file stands for its interface, except a pcapng declaring interfaces of different names (as
    `dumpcap -i san0 -i br0` writes): there each frame counts for the interface it was captured on.
    A file cut short counts up to the cut, with a problem saying so (CaptureResult.problems).
    """
    scans = [scan_file(path, iface) for path, iface in files]
    starts = [s.first_ts for s in scans if s.first_ts is not None]
    t0 = min(starts) if starts else 0.0
    counter = Counter(ports, t0)
    mine = {_normalise(a) for a in local} if local is not None else None
    pcaps: dict[str, str] = {}
    for scan in scans:
        for name in scan.names():
            counter.ensure(name)  # an interface that carried nothing still shows, with zeros
            pcaps.setdefault(name, str(scan.path))
    snaplen = 0
    ended = t0
    seen = SeenFrames()
    # All files at once, in time order, as a live run sees its interfaces: the same frame read from
    # two files of one interface then arrives twice in a row and is counted once.
    for name, rec in heapq.merge(*(s.counted_records() for s in scans), key=lambda item: item[1].ts):
        if seen.again(name, rec):
            continue
        counter.add(name, _outgoing(counter, rec, mine), rec.ts, rec.data, rec.orig_len, rec.linktype)
        snaplen = max(snaplen, len(rec.data))
        ended = max(ended, rec.ts)
    problems = tuple(p for s in scans for p in s.problems())
    return counter.result(pcaps=pcaps, snaplen=snaplen, ended_at=ended, problems=problems)


def _outgoing(counter: Counter, rec: Record, local: set[str] | None) -> bool:
    if rec.outgoing is not None:
        return rec.outgoing
    if local is not None:
        seg = decode(rec.data, rec.orig_len, rec.linktype)
        return seg is not None and seg.src in local
    return counter.orient_outgoing(rec.data, rec.orig_len, rec.linktype)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.rpartition("=")
        if not sep or not key or not val:
            raise UsageError(f"{option} {value!r} is not A=B", hint=f"e.g. {option} san0.pcap=san0")
        out[key] = val
    return out


def offline_topology(names: list[str], masters: dict[str, str]) -> Topology:
    """Interfaces known only by the captures' names; --master PORT=BRIDGE restores a bridge or bond
    chain, so that a port's bytes are not counted a second time beside its master's."""
    members: dict[str, list[str]] = {}
    for port, master in masters.items():
        members.setdefault(master, []).append(port)
    everything = list(dict.fromkeys([*names, *masters.values()]))
    return Topology(
        hostname="offline",
        interfaces=tuple(
            Interface(name=n, index=i + 1, kind="captured", master=masters.get(n), members=tuple(members.get(n, ())))
            for i, n in enumerate(everything)
        ),
    )


def run_offline(
    files: list[tuple[Path, str]],
    ports: PortRanges,
    expectation: Expectation,
    captures_dir: Path,
    local: set[str] | None = None,
    masters: dict[str, str] | None = None,
    vm: str = "",
    dest: str = "",
    data_processed: int | None = None,
    chart: Path | None = None,
) -> Finished:
    """`verify-path analyze`: count the (file, interface) pairs, reconcile like a live run, store
    the result as a run."""
    from verifier import pipeline, reconcile, runs

    captured = replace(count_files(files, ports, local), engine="pcap", pcaps="the input files")
    # A pcapng naming several interfaces yields counts under its own names, not the file's.
    names = [i.name for i in captured.interfaces] or [name for _path, name in files]
    topology = offline_topology(names, masters or {})
    migration = MigrationResult(
        status=MigrationStatus.NOT_RUN,
        migrate_uri=None,
        data_processed=data_processed,
        duration_s=captured.ended_at - captured.started_at,
    )
    leg = reconcile.decide(
        topology, captured, migration, None, expectation, require_coverage=data_processed is not None
    )
    prediction = Prediction(
        None,
        None,
        None,
        reasons=(Reason("source", "offline analysis of " + ", ".join(f"{p} as {n}" for p, n in files)),),
    )
    plan = Plan(topology, tuple(names), prediction, ports)
    vm, dest = vm or "analyze", dest or "pcap"
    run_dir = runs.create(captures_dir, vm, dest)
    labels = reconcile.RunLabels(vm, "offline", dest, captured.started_at, str(run_dir), mode="analyze")
    report = reconcile.assemble_report(labels, plan, expectation, leg, None)
    # Files name no destination to route to: findings keep their words, path fixes stay empty.
    return pipeline.finish(report, prescribe.Context(topology, "", offline=True), chart)
