"""Offline analysis: count capture files (pcap or pcapng) exactly as a live run counts frames.

Each file stands for one interface. All files feed one `Counter`, whose t0 is the earliest
timestamp in any of them, so the per-second bins of different interfaces line up.

A frame's direction (outgoing = this host sent it), in order of precedence:
1. what the file records (pcapng epb_flags, the packet type of a Linux cooked header);
2. with LOCAL (this host's addresses): the frame's source address is one of them;
3. otherwise the frame goes from its connection's client to its server: the source hypervisor
   opens the migration connections and sends the stream, so for a capture taken on the source
   "client -> server" is "outgoing".
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from verifier.capture.counting import Counter, PortRanges
from verifier.capture.frames import decode
from verifier.capture.readers import Record, read_any
from verifier.errors import UsageError
from verifier.model import CaptureResult, Expectation, Interface, MigrationResult, Prediction, Reason, Report, Topology


def interface_for(path: Path, iface_map: dict[str, str]) -> str:
    """The interface PATH stands for: its FILE=IFACE entry (by path, then by file name), else its stem."""
    for key, iface in iface_map.items():
        if key == str(path) or Path(key) == path:
            return iface
    try:
        resolved = path.resolve()
        for key, iface in iface_map.items():
            if Path(key).resolve() == resolved:
                return iface
    except (OSError, RuntimeError):
        pass
    for key, iface in iface_map.items():
        if key == path.name:
            return iface
    return path.stem  # "san0.pcap" -> "san0"


def _normalise(address: str) -> str:
    """'10.0.0.1/24' -> '10.0.0.1', '2001:DB8::0001' -> '2001:db8::1'; anything else unchanged."""
    text = address.strip().split("/", 1)[0].split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return address


def count_files(files: list[tuple[Path, str]], ports: PortRanges, local: set[str] | None = None) -> CaptureResult:
    """Count the (file, interface) pairs through one Counter; raise PcapError for an unreadable file."""
    t0: float | None = None
    for path, _iface in files:  # first pass: the earliest time, so that every file's bins share t0
        for rec in read_any(path):
            if t0 is None or rec.ts < t0:
                t0 = rec.ts
    counter = Counter(ports, t0 if t0 is not None else 0.0)
    mine = {_normalise(a) for a in local} if local is not None else None
    pcaps: dict[str, str] = {}
    snaplen = 0
    ended = t0 if t0 is not None else 0.0
    for path, iface in files:
        counter.ensure(iface)  # an interface that carried nothing still shows, with zeros
        pcaps.setdefault(iface, str(path))
        for rec in read_any(path):
            counter.add(iface, _outgoing(counter, rec, mine), rec.ts, rec.data, rec.orig_len, rec.linktype)
            snaplen = max(snaplen, len(rec.data))
            ended = max(ended, rec.ts)
    return counter.result(pcaps=pcaps, snaplen=snaplen, ended_at=ended)


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


def run_offline(args: argparse.Namespace) -> Report:
    """`verify-path analyze`: count the files, reconcile like a live run, store the result as a run."""
    from verifier import pipeline, profiles, reconcile, runs
    from verifier.cli import parse_ports

    iface_map = _pairs(args.iface_map, "--iface-map")
    masters = _pairs(args.master, "--master")
    files = [(path, interface_for(path, iface_map)) for path in args.pcaps]
    ports = profiles.ports_for(args.profile, parse_ports(args.ports) if args.ports else ())
    # An empty --local list means "not given": an empty set would make no frame outgoing.
    captured = count_files(files, ports, set(args.local) or None)
    topology = offline_topology([name for _path, name in files], masters)
    migration = MigrationResult(
        status="not-run",
        migrate_uri=None,
        data_processed=args.data_processed,
        duration_s=captured.ended_at - captured.started_at,
    )
    expectation = Expectation(interfaces=tuple(p for v in args.expect for p in v.split(",") if p))
    leg = reconcile.decide(
        topology, captured, migration, None, expectation, require_coverage=args.data_processed is not None
    )
    opts = pipeline.JobOptions(
        vm=args.vm or "analyze", dest=args.dest or "pcap", connect_uri="", dest_uri="", expectation=expectation
    )
    prediction = Prediction(
        None,
        None,
        None,
        reasons=(Reason("source", "offline analysis of " + ", ".join(f"{p} as {n}" for p, n in files)),),
    )
    plan = pipeline.Plan(topology, [name for _p, name in files], None, prediction, ports)
    run_dir = runs.create(args.captures_dir, opts.vm, opts.dest)
    report = pipeline.assemble_report(
        opts, plan, leg, None, run_dir, captured.started_at, mode="analyze", source="offline"
    )
    runs.store(report, run_dir)
    return report
