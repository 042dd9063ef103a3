"""`verify-path VM DEST`, `verify-path predict` and `verify-path watch`: their parsers, the options
they turn into `JobOptions`, and the real back ends they run on."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from verifier import expect, profiles
from verifier.cli.output import write_finished
from verifier.cli.parser import (
    Parser,
    add_capture,
    add_expectation,
    add_interfaces,
    add_output,
    add_ports,
    add_route,
    positive_int,
    positive_seconds,
    split_list,
)
from verifier.errors import UsageError, exit_code_for
from verifier.jobs import Backends, DomainsSampler, JobOptions, OwnersFactory

if TYPE_CHECKING:
    from verifier.render.progress import ProgressPrinter

OTHER_COMMANDS = """other commands:
  verify-path predict VM DEST ...   the path and its reasons, without migrating
  verify-path watch ...             capture a migration started elsewhere
  verify-path probe NODE DEST ...   migrate a throwaway guest from this host to DEST and verify it
  verify-path report RUN ...        re-render a stored run (text, markdown, html, json, junit)
  verify-path compare RUN_A RUN_B   compare two stored runs
  verify-path runs                  list stored runs
  verify-path matrix RUN_DIR...     every pair of hosts: which link, from many runs (the playbook's)
  verify-path analyze PCAP...       count pcaps made by tcpdump/tshark, store them as a run
  verify-path bond-hash ...         which bond member the kernel's transmit hash picks for a flow
  verify-path lab ...               the two-node test lab (up, down, status, exec, load)"""


def job_parser(env: Mapping[str, str]) -> Parser:
    p = Parser(
        "verify-path",
        "Migrate VM live to DEST and prove which network link the stream took.\n\n" + OTHER_COMMANDS,
    )
    add_route(p, env.get("LIBVIRT_DEFAULT_URI", ""))
    p.add_argument("--version", action="version", version=f"verify-path {_version()}")
    p.add_argument("--bandwidth", type=positive_int, metavar="MIB", help="bandwidth limit in MiB/s")
    p.add_argument("--parallel", type=positive_int, metavar="N", help="N parallel (multifd) connections")
    p.add_argument(
        "--round-trip", action="store_true", help="migrate back afterwards and report the return leg as received here"
    )
    p.add_argument(
        "--return-uri",
        metavar="URI",
        help="libvirt URI of this host as the destination sees it, for --round-trip (default: --connect)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="abort the migration after S seconds (the guest stays on the source; the run and its diagnosis are kept)",
    )
    p.add_argument(
        "--auto-converge", action="store_true", help="let QEMU throttle the guest's vCPUs until the migration converges"
    )
    p.add_argument(
        "--postcopy",
        action="store_true",
        help="switch to post-copy after the first pass. RISK: if the network fails during post-copy the guest "
        "is lost (its memory is split between the two hosts)",
    )
    p.add_argument("--max-downtime", type=positive_int, metavar="MS", help="the longest pause QEMU may take to finish")
    p.add_argument("--dry-run", action="store_true", help="predict only: no migration, no capture")
    add_capture(p)
    add_expectation(p)
    add_output(p)
    return p


def predict_parser(env: Mapping[str, str]) -> Parser:
    p = Parser(
        "verify-path predict",
        "Predict the link a live migration of VM to DEST would take, with every step's evidence "
        "(migration URI, name resolution, policy rule, route, bridge/bond chain, link speed), "
        "without migrating or capturing anything. Exit 1 when the prediction misses --expect.",
    )
    add_route(p, env.get("LIBVIRT_DEFAULT_URI", ""))
    add_interfaces(p)
    add_ports(p)
    add_expectation(p)
    add_output(p)
    return p


def watch_parser() -> Parser:
    p = Parser("verify-path watch", "Capture and reconcile a migration started elsewhere (Pacemaker, virsh).")
    # Both may be given: stop when the migration went idle, or at the latest after --duration.
    p.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S seconds at the latest")
    p.add_argument(
        "--until-idle",
        type=positive_seconds,
        metavar="S",
        help="stop once traffic was seen and then S seconds passed without any",
    )
    p.add_argument("--vm", default="", help="label the run with this VM name")
    p.add_argument("--dest", default="", help="label the run with this destination")
    add_capture(p)
    add_expectation(p)
    add_output(p)
    return p


def _version() -> str:
    from verifier import __version__

    return __version__


def _roles(values: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        iface, sep, name = value.partition("=")
        if not sep or not iface or not name:
            raise UsageError(f"--role {value!r} is not IFACE=NAME", hint="e.g. --role san0=iscsi-a")
        out.append((iface, name))
    return tuple(out)


def options(args: argparse.Namespace, env: Mapping[str, str]) -> JobOptions:
    """The parsed arguments as JobOptions; a malformed value is a usage error before anything runs."""
    dest = getattr(args, "dest", "") or ""
    template = env.get("VERIFY_PATH_DEST_URI") or "qemu+ssh://{dest}/system"
    migrates = hasattr(args, "connect")  # the job and predict; watch only labels its run
    dest_uri = getattr(args, "dest_uri", None) or (template.replace("{dest}", dest) if migrates else "")
    opts = JobOptions(
        vm=getattr(args, "vm", "") or "",
        dest=dest,
        connect_uri=getattr(args, "connect", ""),
        dest_uri=dest_uri,
        migrate_uri=getattr(args, "migrate_uri", None),
        via=getattr(args, "via", None),
        bandwidth=getattr(args, "bandwidth", None),
        parallel=getattr(args, "parallel", None),
        ports=profiles.parse_ports(args.ports) if args.ports else (),
        profile=args.profile,
        roles=_roles(args.role),
        interfaces=split_list(args.interfaces),
        expectation=expect.Expectation(split_list(args.expect), expect.parse_networks(args.expect_net)),
        captures_dir=getattr(args, "captures_dir", None) or JobOptions.captures_dir,
        chart=getattr(args, "chart", None),
        round_trip=getattr(args, "round_trip", False),
        return_uri=getattr(args, "return_uri", None),
        command=tuple(getattr(args, "argv", ())),
        timeout=getattr(args, "timeout", None),
        auto_converge=getattr(args, "auto_converge", False),
        postcopy=getattr(args, "postcopy", False),
        max_downtime=getattr(args, "max_downtime", None),
    )
    if opts.migrate_uri:
        from verifier.predict import uri_host

        uri_host(opts.migrate_uri)  # a malformed URI is a usage error before anything is touched
    return opts


def backends(args: argparse.Namespace, err: TextIO) -> tuple[ProgressPrinter, Backends]:
    """The real back ends: netlink, libvirt, live sniffers; progress on ERR."""
    from verifier import destconf, topology
    from verifier.capture import engines
    from verifier.capture.live import DEFAULT_RCVBUF
    from verifier.capture.pcap import DEFAULT_SNAPLEN, FULL_SNAPLEN
    from verifier.hypervisor import LibvirtHypervisor
    from verifier.lab import qemuconf
    from verifier.render.progress import ProgressPrinter
    from verifier.routing import NetlinkRoutes

    printer = ProgressPrinter(err)
    rcvbuf = getattr(args, "capture_buffer", None) or DEFAULT_RCVBUF
    snaplen = DEFAULT_SNAPLEN
    if getattr(args, "keep_payload", False):
        snaplen = FULL_SNAPLEN
        print(
            "verify-path: WARNING: --keep-payload writes whole frames: the pcaps will hold the guest's memory "
            "in clear (passwords, keys, data). Protect or delete them.",
            file=err,
            flush=True,
        )

    choice = engines.choose(getattr(args, "engine", None))
    full = getattr(args, "capture", "sampled") == "full" or snaplen == FULL_SNAPLEN

    def capture(ifaces: list[str], ports: profiles.PortRanges, out_dir: Path | None) -> engines.Capture:
        return engines.make(choice, ifaces, ports, out_dir, snaplen=snaplen, rcvbuf=rcvbuf, full=full)

    return printer, Backends(
        topology=topology.discover,
        routes=NetlinkRoutes(),
        hypervisor=LibvirtHypervisor,
        capture=capture,
        dest_config=destconf.first_of(qemuconf.read, destconf.read_local),
        owners=owner_sampler(os.environ),
        domains=domains_sampler,
        log=printer.log,
        progress=printer,
    )


def domains_sampler(ports: profiles.PortRanges) -> DomainsSampler:
    from verifier.owners.domains import DomainsSampler as Sampler

    return Sampler(ports)


def owner_sampler(env: Mapping[str, str]) -> OwnersFactory:
    """Ownership from libvirt's pid files: the system's run dir, and the one `lab exec` names."""
    from verifier import owners

    run_dirs = [Path(d) for d in (env.get("VERIFY_PATH_LIBVIRT_RUN_DIR"), "/run/libvirt") if d]

    def make(vm: str, ports: profiles.PortRanges) -> owners.OwnershipSampler:
        # QEMU's descriptor table every 200 ms, a kernel-filtered socket dump when it holds a new
        # socket and every 5 s: multifd and NBD connections that open after the main one are caught.
        return owners.OwnershipSampler(vm, run_dirs, ports=ports)

    return make


def run_predict(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """No migration, no capture: the chain and its evidence, and whether it meets the expectation."""
    from verifier.pipeline import predict_only
    from verifier.predict import predicted_verdict
    from verifier.render import text

    opts = options(args, env)
    _printer, b = backends(args, err)
    plan = predict_only(opts, b)
    verdict = predicted_verdict(plan, opts.expectation)
    if args.json:
        out.write(
            json.dumps(text.prediction_dict(opts.vm, opts.dest, opts.expectation, plan, verdict), indent=2) + "\n"
        )
    else:
        out.write(text.render_prediction(opts.vm, opts.dest, plan, verdict))
    return exit_code_for(verdict)


def run_job(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from verifier.capture.live import check_privilege
    from verifier.pipeline import run_job as conduct

    opts = options(args, env)
    check_privilege()
    printer, b = backends(args, err)
    try:
        finished = conduct(opts, b)
    finally:
        printer.close()
    return write_finished(finished, args.json, args.chart, out)


def run_watch(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from verifier.capture.live import check_privilege
    from verifier.pipeline import run_watch as conduct

    opts = options(args, env)
    check_privilege()
    _printer, b = backends(args, err)
    finished = conduct(opts, b, args.duration, args.until_idle)
    return write_finished(finished, args.json, args.chart, out)
