"""The CLI's one parser class and the option groups the commands share, each declared once.

Errors raise `UsageError` (exit 2, one line); the exit-code help is generated from `ExitCode`, so
`--help`, README and the code cannot disagree.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from verifier.errors import EXIT_MEANINGS, ExitCode, UsageError
from verifier.profiles import PROFILES


def exit_codes_text() -> str:
    rows = [f"  {int(code):<4} {EXIT_MEANINGS[code]}" for code in ExitCode]
    return "exit codes:\n" + "\n".join(rows) + "\n"


class Parser(argparse.ArgumentParser):
    """argparse with our error contract: a UsageError naming the command, never sys.exit(2)."""

    def __init__(self, prog: str, description: str = "", **kwargs: object) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=exit_codes_text(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,  # type: ignore[arg-type]
        )

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("verify-path").strip()
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message}", hint=f"see `{self.prog} --help`")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated and comma-separated values as one tuple: --expect a,b --expect c."""
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_ports(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="qemu",
        choices=sorted(PROFILES),
        help="port profile: qemu 49152-49215 (+ the destination's configured range when readable), "
        "libxl 49152-49216, xend 8002/8003, proxmox 60000-60050, tunnel 16509/16514/22 (default qemu)",
    )
    p.add_argument("--ports", default=None, metavar="RANGES", help="more ports to watch, e.g. 49152-49215,8002")


def add_expectation(p: argparse.ArgumentParser) -> None:
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


def add_interfaces(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interfaces",
        action="append",
        default=[],
        metavar="A,B,C",
        help="interfaces to watch (default: every interface with an address, plus bridge ports "
        "and bond members beneath it)",
    )
    p.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="IFACE=NAME",
        help="label an interface in every table (corosync rings and iSCSI links are found by themselves)",
    )


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--captures-dir",
        type=Path,
        default=Path("captures"),
        metavar="DIR",
        help="where runs are stored (default ./captures)",
    )
    p.add_argument("--chart", type=Path, metavar="PATH", help="also write the chart (PNG, or SVG by suffix) to PATH")


def add_capture(p: argparse.ArgumentParser) -> None:
    add_interfaces(p)
    add_ports(p)
    add_storage(p)
    p.add_argument(
        "--engine",
        choices=("ebpf", "ring"),
        default=None,
        help="what counts the bytes: ebpf (in the kernel, the default where it loads) or ring "
        "(a TPACKET_V3 ring read in Python)",
    )
    p.add_argument(
        "--capture",
        choices=("sampled", "full"),
        default="sampled",
        help="pcaps beside the report: sampled (SYN/FIN/RST, each connection's first frames and one "
        "frame per connection and tenth of a second, headers only, written by the eBPF engine; the "
        "default with it) or full (every frame's headers, as the ring engine keeps them)",
    )
    p.add_argument("--capture-buffer", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--keep-payload",
        action="store_true",
        help="store whole frames in the pcaps (default: headers only). WARNING: a migration stream "
        "is the guest's memory in clear; this writes it to disk",
    )


def add_route(p: argparse.ArgumentParser, env_uri: str) -> None:
    """Which libvirt daemons, and which migration URI: what decides the path."""
    p.add_argument("vm", metavar="VM", help="the libvirt domain")
    p.add_argument("dest", metavar="DEST", help="the destination host")
    p.add_argument(
        "--connect",
        metavar="URI",
        default=env_uri or "qemu:///system",
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
