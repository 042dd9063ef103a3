"""From stored runs to the cluster's matrix: find every run.json, pair send and receive sides, mark.

- A migrate-mode run (the main job or `verify-path probe`) is one cell: source -> destination, its
  observed link is the send side. The newest run of a pair wins.
- The receive side comes from a `watch` run on the destination whose capture overlaps the send
  run in time and saw the same connection (client and server address; the destination's name
  when either run recorded no address); else from the return leg
  of the reverse pair's round trip: probing B -> A with --round-trip migrates A -> B back, and A
  -> B's stream arrived at B on `return_leg.observed_interface`.
- A watch run on a destination may also have seen the round trip's return stream leaving it, so
  its receive link is the link that *received* most bytes (climbed to the top of its master
  chain), not the link with the most traffic.
- Host names are compared by their short form (node1.example.com is node1): libvirt names the
  source by its hostname, the operator names the destination as it pleases.
- A pair's network is the subnet holding the address the stream connected to: one of --network
  when given, else the /24 (IPv4) or /64 (IPv6) around it; without an address, the link's role,
  else the link. `outlier` marks a pair whose network is not the one more than half the pairs took.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier import figures, runs
from verifier.errors import UsageError
from verifier.matrix.model import ASYMMETRIC, OUTLIER, Cell, Matrix, Rate, Side
from verifier.model import InterfaceReport, Report, canonical_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROBE_PREFIX = "verify-path-probe-"


def find_records(paths: Sequence[Path]) -> list[Path]:
    """Every run.json under PATHS (a run directory, a run.json, or a tree of runs), sorted, once each."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob("run.json") if p.is_file())
        else:
            raise UsageError(f"{path} does not exist", hint="point at a directory of runs, e.g. captures/matrix-*/")
    return sorted(found)


def load_all(records: Sequence[Path]) -> tuple[list[Report], list[str]]:
    """The readable records, and one line per unreadable one (a matrix shows what it could not read)."""
    reports, problems = [], []
    for record in records:
        try:
            reports.append(runs.load(record))
        except UsageError as exc:
            problems.append(exc.one_line())
    return reports, problems


def host_key(name: str) -> str:
    """NAME's short form, lower case; an address stays whole."""
    name = name.strip().lower()
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return name
    except ValueError:
        return name.split(".", 1)[0]


def is_probe(report: Report) -> bool:
    return bool(report.options.get("probe")) or report.vm.startswith(PROBE_PREFIX)


def _by_name(report_interfaces: Sequence[InterfaceReport]) -> dict[str, InterfaceReport]:
    return {i.name: i for i in report_interfaces}


def _role(ifaces: dict[str, InterfaceReport], name: str | None) -> str | None:
    found = ifaces.get(name) if name else None
    return found.role if found else None


def _top(ifaces: dict[str, InterfaceReport], name: str) -> str:
    seen = {name}
    while (i := ifaces.get(name)) and i.master and i.master in ifaces and i.master not in seen:
        name = i.master
        seen.add(name)
    return name


def send_side(report: Report) -> Side:
    ifaces = _by_name(report.interfaces)
    return Side(report.observed_interface, _role(ifaces, report.observed_interface), report.observed_path)


def receive_side_of_watch(report: Report) -> Side:
    """The link that received most of what a watch run saw, at the top of its master chain."""
    ifaces = _by_name(report.interfaces)
    busiest = max(report.interfaces, key=lambda i: i.bytes_rx, default=None)
    if busiest is None or busiest.bytes_rx == 0:
        return send_side(report)
    top = _top(ifaces, busiest.name)
    if top == report.observed_interface:
        return send_side(report)
    # The window held more than the received stream (a probe's return leg, sent out over another
    # link, is the observed path then): the received path is the top link and the ports or
    # members under it that received, as an observed path lists them.
    under = tuple(i.name for i in report.interfaces if i.name != top and i.bytes_rx and _top(ifaces, i.name) == top)
    return Side(top, _role(ifaces, top), (top, *under))


def _endpoint_hosts(report: Report) -> tuple[set[str], set[str]]:
    """(client addresses, server addresses) of the stream's connections ("c:p -> s:p")."""
    clients: set[str] = set()
    servers: set[str] = set()
    for text in report.stream.endpoints:
        client, arrow, server = text.partition(" -> ")
        if not arrow:
            continue
        for side, out in ((client, clients), (server, servers)):
            host = side.rsplit(":", 1)[0].strip("[]")
            try:
                out.add(canonical_ip(host))
            except ValueError:
                continue
    return clients, servers


def _window(report: Report) -> tuple[float, float]:
    m = report.migration
    start = m.started_at or report.started_at
    return start, start + (m.duration_s or 0.0)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds the two windows share; -1 when they are apart (touching windows share 0)."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return shared if shared >= 0 else -1.0


def matching_watch(send: Report, watches: Sequence[Report]) -> Report | None:
    """The watch run on SEND's destination that saw SEND's stream: overlapping in time, and either
    the same connection's addresses (client and server) or, without addresses, the destination's
    name. Addresses first: a watch names its host by its hostname, which a lab node shares."""
    clients, servers = _endpoint_hosts(send)
    best: tuple[float, Report] | None = None
    for w in watches:
        shared = _overlap(_window(send), _window(w))
        w_clients, w_servers = _endpoint_hosts(w)
        if clients and w_clients:
            same = bool(clients & w_clients and servers & w_servers)
        else:
            same = host_key(w.source) == host_key(send.destination)
        if shared >= 0 and same and (best is None or shared > best[0]):
            best = (shared, w)
    return best[1] if best else None


def network_of(report: Report, networks: Sequence[Network] = ()) -> str | None:
    _, servers = _endpoint_hosts(report)
    address = min(servers) if servers else report.prediction.target_address
    if address:
        try:
            ip = ipaddress.ip_address(canonical_ip(address))
        except ValueError:
            ip = None
        if ip is not None:
            held = next((n for n in networks if ip in n), None)
            default = ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False)
            return str(held or default)
    side = send_side(report)
    if side.role:
        return f"role {side.role}"
    return f"link {side.interface}" if side.interface else None


def rate(report: Report) -> Rate | None:
    """The wire rate (verifier.figures); data_processed over the job's duration when no bins were counted."""
    f = figures.figures(report)
    if f.wire_rate_bps is not None:
        return Rate(float(f.wire_rate_bps), f.wire_rate_lower_bound, "wire")
    m = report.migration
    if m.data_processed and m.duration_s:
        # The job's duration includes QEMU starting on the destination: a lower bound too.
        return Rate(m.data_processed * 8 / m.duration_s, True, "data_processed/duration")
    return None


def _disagree(send: Side, receive: Side | None) -> bool:
    """Different links; by role when both ends label theirs (names differ between hosts)."""
    if receive is None or send.interface is None or receive.interface is None:
        return False
    if send.role and receive.role:
        return send.role != receive.role
    return send.interface != receive.interface


@dataclass(frozen=True)
class _Receive:
    side: Side | None
    how: str
    run_dir: str | None


def _receive(send: Report, watches: Sequence[Report], by_pair: dict[tuple[str, str], Report]) -> _Receive:
    watch = matching_watch(send, watches)
    if watch is not None:
        return _Receive(receive_side_of_watch(watch), "watch", watch.run_dir)
    reverse = by_pair.get((host_key(send.destination), host_key(send.source)))
    if reverse is not None and reverse.return_leg is not None and reverse.return_leg.observed_interface:
        leg = reverse.return_leg
        side = Side(leg.observed_interface, _role(_by_name(leg.interfaces), leg.observed_interface), leg.observed_path)
        return _Receive(side, "return-leg", reverse.run_dir)
    return _Receive(None, "", None)


def majority(values: Sequence[str | None]) -> str | None:
    """The value more than half of VALUES (the known ones) share, else None."""
    known = [v for v in values if v]
    if not known:
        return None
    value, count = Counter(known).most_common(1)[0]
    return value if count * 2 > len(known) else None


def build_from(
    reports: Sequence[Report],
    networks: Sequence[Network] = (),
    partial: bool = False,
    problems: Sequence[str] = (),
    inputs: Sequence[str] = (),
) -> Matrix:
    """The matrix of REPORTS: pure, for tests and for `build`."""
    sends = sorted((r for r in reports if r.mode == "migrate"), key=lambda r: r.started_at)
    watches = [r for r in reports if r.mode == "watch"]
    by_pair: dict[tuple[str, str], Report] = {}
    for r in sends:
        by_pair[(host_key(r.source), host_key(r.destination))] = r  # the newest run of a pair wins
    nets = {pair: network_of(r, networks) for pair, r in by_pair.items()}
    usual = majority(list(nets.values()))
    cells, used = [], set()
    for (src, dst), r in sorted(by_pair.items()):
        send = send_side(r)
        rx = _receive(r, watches, by_pair)
        if rx.how == "watch":
            used.add(rx.run_dir)
        marks = ((ASYMMETRIC,) if _disagree(send, rx.side) else ()) + (
            (OUTLIER,) if usual and nets[(src, dst)] and nets[(src, dst)] != usual else ()
        )
        cells.append(
            Cell(
                source=src,
                destination=dst,
                send=send,
                receive=rx.side,
                receive_from=rx.how,
                verdict=str(r.verdict),
                migration_status=str(r.migration.status),
                network=nets[(src, dst)],
                marks=marks,
                rate=rate(r),
                run_dir=r.run_dir,
                started_at=r.started_at,
                probe=is_probe(r),
                expected=r.expected.interfaces + r.expected.networks,
                receive_run_dir=rx.run_dir,
                report=r,
            )
        )
    hosts = sorted({h for pair in by_pair for h in pair})
    missing = tuple((a, b) for a in hosts for b in hosts if a != b and (a, b) not in by_pair)
    notes = list(problems) + [
        f"watch run {w.run_dir} on {w.source} matched no migration to it" for w in watches if w.run_dir not in used
    ]
    return Matrix(tuple(hosts), tuple(cells), missing, usual, tuple(notes), partial, tuple(inputs))


def build(paths: Sequence[Path], networks: Sequence[Network] = (), partial: bool = False) -> Matrix:
    """The matrix of every run under PATHS; UsageError when there is none."""
    records = find_records(paths)
    if not records:
        raise UsageError(
            f"no run.json under {', '.join(str(p) for p in paths)}",
            hint="point at the directory the playbook fetched, e.g. captures/matrix-<timestamp>/",
        )
    reports, problems = load_all(records)
    return build_from(reports, networks, partial, problems, tuple(str(p) for p in paths))
