"""Command line: parse arguments, build the back ends, call the pipeline, map errors to exit codes.

`main(argv, env)` returns the exit status and never raises for expected failures, so tests can
run the CLI in-process. Only this module turns exceptions into exit codes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from verifier import __version__, signals
from verifier.cli_records import RECORD_COMMANDS
from verifier.cli_records import dispatch as dispatch_records
from verifier.errors import ExitCode, NotStored, UsageError, VerifierError, exit_code_for
from verifier.model import Expectation, Report
from verifier.profiles import PROFILES

if TYPE_CHECKING:
    from verifier.pipeline import JobOptions

EXIT_CODES = """exit codes:
  0    verified: the stream took the expected link (or, without --expect, was observed)
  1    wrong path: the stream did not take the expected link
  2    usage error (bad option or argument)
  3    inconclusive: drops, no stream seen, or counts do not reconcile with libvirt
  4    environment: privileges, libvirt unreachable, interface missing
  5    migration failed
  130  interrupted
"""

SUBCOMMANDS = ("lab", "watch", "predict", "report", "compare", "runs", "analyze")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def parse_ports(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        lo_s, sep, hi_s = part.strip().partition("-")
        try:
            lo, hi = int(lo_s), int(hi_s) if sep else int(lo_s)
        except ValueError:
            raise UsageError(f"--ports {text!r} is malformed", hint="use e.g. 49152-49215,8002") from None
        if not (1 <= lo <= hi <= 65535):
            raise UsageError(f"--ports range {part!r} is outside 1-65535 or reversed", hint="use e.g. 49152-49215")
        ranges.append((lo, hi))
    return tuple(ranges)


def parse_networks(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        for part in value.split(","):
            try:
                out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise UsageError(
                    f"--expect-net {part!r} is not a network", hint="use CIDR, e.g. 198.18.0.0/24"
                ) from None
    return tuple(out)


def _split(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interfaces",
        action="append",
        default=[],
        metavar="A,B,C",
        help="interfaces to watch (default: every interface with an address, plus bridge ports "
        "and bond members beneath it)",
    )
    p.add_argument(
        "--profile",
        default="qemu",
        choices=sorted(PROFILES),
        help="port profile: qemu 49152-49215 (+ the destination's configured range when readable), "
        "libxl 49152-49216, xend 8002/8003, proxmox 60000-60050, tunnel 16509/16514/22 (default qemu)",
    )
    p.add_argument("--ports", default=None, metavar="RANGES", help="more ports to watch, e.g. 49152-49215,8002")
    p.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="IFACE=NAME",
        help="label an interface in every table (corosync rings and iSCSI links are found by themselves)",
    )
    p.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="IFACE[,IFACE]",
        help="the stream must take these interfaces (>= 95%% of its bytes)",
    )
    p.add_argument(
        "--expect-net",
        action="append",
        default=[],
        metavar="CIDR",
        help="the stream must take the interface(s) holding an address in CIDR",
    )
    p.add_argument(
        "--captures-dir",
        type=Path,
        default=Path("captures"),
        metavar="DIR",
        help="where runs are stored (default ./captures)",
    )
    p.add_argument("--chart", type=Path, metavar="PATH", help="also write the chart (PNG) to PATH")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--capture-buffer", type=_positive, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--keep-payload",
        action="store_true",
        help="store whole frames in the pcaps (default: headers only). WARNING: a migration stream "
        "is the guest's memory in clear; this writes it to disk",
    )


def job_parser(env: Mapping[str, str], prog: str = "verify-path") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Migrate VM live to DEST and prove which network link the stream took.\n\n"
        "other commands:\n"
        "  verify-path predict VM DEST ...   the path and its reasons, without migrating\n"
        "  verify-path watch ...             capture a migration started elsewhere\n"
        "  verify-path report RUN ...        re-render a stored run (text, markdown, html, json, junit)\n"
        "  verify-path compare RUN_A RUN_B   compare two stored runs\n"
        "  verify-path runs                  list stored runs\n"
        "  verify-path analyze PCAP...       count pcaps made by tcpdump/tshark, store them as a run\n"
        "  verify-path lab ...               the two-node test lab (up, down, status, exec)",
        epilog=EXIT_CODES,
    )
    p.add_argument("vm", metavar="VM", help="the libvirt domain to migrate")
    p.add_argument("dest", metavar="DEST", help="the destination host")
    p.add_argument("--version", action="version", version=f"verify-path {__version__}")
    p.add_argument(
        "--connect",
        metavar="URI",
        default=env.get("LIBVIRT_DEFAULT_URI") or "qemu:///system",
        help="source libvirt URI (default $LIBVIRT_DEFAULT_URI or qemu:///system)",
    )
    p.add_argument(
        "--dest-uri",
        metavar="URI",
        help="destination libvirt URI (default $VERIFY_PATH_DEST_URI with {dest} filled in, "
        "else qemu+ssh://DEST/system)",
    )
    route = p.add_mutually_exclusive_group()
    route.add_argument("--migrate-uri", metavar="URI", help="QEMU migration URI, e.g. tcp://node2-san")
    route.add_argument(
        "--via", metavar="IFACE", help="migrate to the destination's address on IFACE's subnet (the usual fix)"
    )
    p.add_argument("--bandwidth", type=_positive, metavar="MIB", help="bandwidth limit in MiB/s")
    p.add_argument("--parallel", type=_positive, metavar="N", help="N parallel (multifd) connections")
    p.add_argument(
        "--round-trip", action="store_true", help="migrate back afterwards and report the return leg as received here"
    )
    p.add_argument(
        "--return-uri",
        metavar="URI",
        help="libvirt URI of this host as the destination sees it, for --round-trip (default: --connect)",
    )
    if prog == "verify-path":
        p.add_argument("--dry-run", action="store_true", help="predict only: no migration, no capture")
    _common(p)
    return p


def watch_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="verify-path watch",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Capture and reconcile a migration started elsewhere (Pacemaker, virsh).",
    )
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    stop.add_argument(
        "--until-idle", type=float, metavar="S", help="stop once traffic was seen and then S seconds passed without any"
    )
    p.add_argument("--vm", default="", help="label the run with this VM name")
    p.add_argument("--dest", default="", help="label the run with this destination")
    _common(p)
    return p


def _expectation(args: argparse.Namespace) -> Expectation:
    return Expectation(interfaces=_split(args.expect), networks=parse_networks(args.expect_net))


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    out, err = stdout or sys.stdout, stderr or sys.stderr
    debug = "--debug" in argv
    signals.install()
    try:
        return _dispatch(argv, env, out, err)
    except NotStored as exc:
        # The run happened: show its report anyway, then say what could not be kept.
        report = exc.report
        if isinstance(report, Report):
            out.write(text_render(report))
        print(f"verify-path: error: {exc.one_line()}", file=err)
        return int(exc.exit_code)
    except VerifierError as exc:
        if debug:
            traceback.print_exc(file=err)
        print(f"verify-path: error: {exc.one_line()}", file=err)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("verify-path: interrupted", file=err)
        return int(ExitCode.INTERRUPTED)


def _dispatch(argv: list[str], env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if argv and argv[0] == "lab":
        from verifier.lab import commands

        p = _Parser(prog="verify-path")
        sub = p.add_subparsers(dest="command", required=True)
        commands.add_parser(sub)
        return commands.run(p.parse_args(argv), out)
    if argv and argv[0] == "watch":
        args = watch_parser().parse_args(argv[1:])
        return _run_watch(args, err, out)
    if argv and argv[0] in RECORD_COMMANDS:
        return dispatch_records(argv[0], argv[1:], _Parser, EXIT_CODES, out)
    if argv and argv[0] == "predict":
        args = job_parser(env, prog="verify-path predict").parse_args(argv[1:])
        return _run_predict(args, env, out, err)
    if not argv or argv[0] in ("-h", "--help"):
        job_parser(env).print_help(out)
        return 0 if argv else int(ExitCode.USAGE)
    args = job_parser(env).parse_args(argv)
    if args.dry_run:
        return _run_predict(args, env, out, err)
    return _run_job(args, env, out, err)


def _backends(args: argparse.Namespace, err: TextIO):
    from verifier import topology
    from verifier.capture.live import DEFAULT_RCVBUF, LiveCapture
    from verifier.capture.pcap import DEFAULT_SNAPLEN, FULL_SNAPLEN
    from verifier.hypervisor import LibvirtHypervisor
    from verifier.pipeline import Backends
    from verifier.render.progress import ProgressPrinter
    from verifier.routing import NetlinkRoutes

    printer = ProgressPrinter(err)
    rcvbuf = args.capture_buffer or DEFAULT_RCVBUF

    snaplen = DEFAULT_SNAPLEN
    if args.keep_payload:
        snaplen = FULL_SNAPLEN
        print(
            "verify-path: WARNING: --keep-payload writes whole frames: the pcaps will hold the guest's memory "
            "in clear (passwords, keys, data). Protect or delete them.",
            file=err,
            flush=True,
        )

    def capture(ifaces, ports, out_dir):
        return LiveCapture(ifaces, ports, out_dir, snaplen=snaplen, rcvbuf=rcvbuf)

    return printer, Backends(
        topology=topology.discover,
        routes=NetlinkRoutes(),
        hypervisor=LibvirtHypervisor,
        capture=capture,
        log=printer.log,
        progress=printer,
    )


def _require_capture_privilege() -> None:
    from verifier.capture.live import check_privilege

    check_privilege()


def text_render(report: Report) -> str:
    from verifier.render import text

    return text.render(report)


def _roles(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        iface, sep, name = value.partition("=")
        if not sep or not iface or not name:
            raise UsageError(f"--role {value!r} is not IFACE=NAME", hint="e.g. --role san0=iscsi-a")
        out.append((iface, name))
    return tuple(out)


def _capture_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the main job and `watch` share (see _common)."""
    return {
        "ports": parse_ports(args.ports) if args.ports else (),
        "profile": args.profile,
        "roles": _roles(args.role),
        "interfaces": _split(args.interfaces),
        "expectation": _expectation(args),
        "captures_dir": args.captures_dir,
        "chart": args.chart,
    }


def _job_options(args: argparse.Namespace, env: Mapping[str, str]) -> JobOptions:
    from verifier.pipeline import JobOptions  # imported late: `--help` must not load the pipeline

    template = env.get("VERIFY_PATH_DEST_URI") or "qemu+ssh://{dest}/system"
    dest_uri = args.dest_uri or template.replace("{dest}", args.dest)
    opts = JobOptions(
        vm=args.vm,
        dest=args.dest,
        connect_uri=args.connect,
        dest_uri=dest_uri,
        migrate_uri=args.migrate_uri,
        via=args.via,
        bandwidth=args.bandwidth,
        parallel=args.parallel,
        round_trip=args.round_trip,
        return_uri=args.return_uri,
        **_capture_options(args),
    )
    if opts.migrate_uri:
        from verifier.predict import uri_host

        uri_host(opts.migrate_uri)  # a malformed URI is a usage error before anything is touched
    return opts


def _run_predict(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """No migration, no capture: the chain and its evidence, and whether it meets the expectation."""
    from verifier.pipeline import plan, predicted_verdict
    from verifier.render import text

    opts = _job_options(args, env)
    _printer, backends = _backends(args, err)
    p = plan(opts, backends)
    verdict = predicted_verdict(p, opts.expectation)
    if args.json:
        out.write(json.dumps(text.prediction_dict(opts, p, verdict), indent=2) + "\n")
    else:
        out.write(text.render_prediction(opts, p, verdict))
    return exit_code_for(verdict)


def _run_job(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from verifier.pipeline import run_job

    opts = _job_options(args, env)
    _require_capture_privilege()
    printer, backends = _backends(args, err)
    try:
        report = run_job(opts, backends)
    finally:
        printer.close()
    return _finish(report, args, out)


def _run_watch(args: argparse.Namespace, err: TextIO, out: TextIO) -> int:
    from verifier.pipeline import JobOptions, run_watch

    opts = JobOptions(
        vm=args.vm,
        dest=args.dest,
        connect_uri="",
        dest_uri="",
        **_capture_options(args),
    )
    _require_capture_privilege()
    _printer, backends = _backends(args, err)
    report = run_watch(opts, backends, args.duration, args.until_idle)
    return _finish(report, args, out)


def _finish(report: Report, args: argparse.Namespace, out: TextIO) -> int:
    from verifier import runs
    from verifier.render import chart, text

    chart_note = ""
    if report.run_dir:
        try:
            png = chart.render(report, Path(report.run_dir) / "chart.png")
            if args.chart and args.chart.suffix.lower() == ".svg":
                chart.render(report, args.chart)  # SVG on request: drawn again, not a renamed PNG
            elif args.chart:
                shutil.copyfile(png, args.chart)
        except OSError as exc:  # a full disk costs the chart, not the verdict
            chart_note = f"chart not written: {exc.strerror or exc}\n"
    if args.json:
        out.write(json.dumps(runs.report_dict(report), indent=2) + "\n")
    else:
        out.write(text.render(report))
        if chart_note:
            out.write(chart_note)
        elif args.chart:
            out.write(f"chart written to {args.chart}\n")
        elif report.run_dir:
            out.write(f"chart: {Path(report.run_dir) / 'chart.png'}\n")
    return exit_code_for(report.verdict, report.migration.status)


def run() -> None:
    sys.exit(main())
