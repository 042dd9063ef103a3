"""`verify-path bond-hash`: which member of a bond a flow leaves by, for a given kernel generation.

The bonding driver's transmit hash changed several times (see verifier/bonds.py); a cluster on
SLES 11 (3.0.101) and one on 6.x pick different members for the same flow, so the kernel is an
input (--kernel, default: the running one) and every answer names the generation it assumed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from verifier import bonds
from verifier.errors import UsageError

MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
FLOW_FIELDS = "src_mac dst_mac src_ip dst_ip proto sport dport slaves [fragment]"
SINGLE = ("slaves", "src_mac", "dst_mac", "src", "dst")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", choices=bonds.POLICIES, help="the bond's xmit_hash_policy")
    parser.add_argument("--slaves", type=int, metavar="N", help="members the hash runs over")
    parser.add_argument(
        "--kernel", metavar="RELEASE", help="uname -r of the sending host (default: this host's), or a generation name"
    )
    parser.add_argument("--src-mac", metavar="MAC", help="source MAC (the bond's)")
    parser.add_argument("--dst-mac", metavar="MAC", help="destination MAC (peer or next hop)")
    parser.add_argument("--src", metavar="IP:PORT", help="source address and port; IPv6 as [addr]:port")
    parser.add_argument("--dst", metavar="IP:PORT", help="destination address and port; IPv6 as [addr]:port")
    parser.add_argument("--proto", choices=bonds.PROTOS, default=None, help="transport protocol (default tcp)")
    parser.add_argument("--fragment", action="store_true", default=None, help="the packet is an IP fragment")
    parser.add_argument("--flows", metavar="FILE", help=f"many flows, one per line, tab-separated: {FLOW_FIELDS}")
    parser.add_argument("--json", action="store_true", help="one JSON object per result")


def _mac(text: str, what: str) -> str:
    if not MAC.match(text):
        raise UsageError(f"{what} {text!r} is not a MAC address", hint="write six hex octets, e.g. 52:54:00:0b:00:01")
    return text


def _port(text: str, what: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise UsageError(f"{what} port {text!r} is not a port number", hint="give a number from 0 to 65535")
    return int(text)


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an IP address", hint="give an IPv4 or IPv6 address") from None


def _endpoint(text: str, what: str) -> tuple[str, int]:
    """IP:PORT, or [IPv6]:PORT."""
    m = re.match(r"^\[([^\]]+)\]:(\d*)$", text) or re.match(r"^([^:\[\]]+):(\d*)$", text)
    if not m:
        raise UsageError(
            f"{what} {text!r} is not IP:PORT", hint="write 10.0.0.1:49152, or [2001:db8::1]:49152 for IPv6"
        )
    return _address(m.group(1), what), _port(m.group(2), what)


def _slaves(text: str, what: str) -> int:
    if not text.lstrip("-").isdigit() or int(text) < 1:
        raise UsageError(f"{what} {text!r} is not a member count", hint="give the number of bond members, 1 or more")
    return int(text)


def _flow(smac: str, dmac: str, src: tuple[str, int], dst: tuple[str, int], proto: str, frag: bool) -> bonds.Flow:
    if (":" in src[0]) != (":" in dst[0]):
        raise UsageError(f"{src[0]} and {dst[0]} are not the same address family", hint="give two IPv4 or two IPv6")
    return bonds.Flow(smac, dmac, src[0], dst[0], src[1], dst[1], proto, frag)


def _generation(args: argparse.Namespace) -> tuple[bonds.KernelGeneration, str]:
    release = args.kernel if args.kernel else os.uname().release
    try:
        return bonds.generation_for(release), release
    except ValueError:
        names = ", ".join(bonds.BY_NAME)
        raise UsageError(
            f"--kernel {release!r} is not a kernel release",
            hint=f"give uname -r (e.g. 3.0.101-63-default) or one of {names}",
        ) from None


def _single(args: argparse.Namespace) -> tuple[bonds.Flow, int]:
    missing = [f"--{name.replace('_', '-')}" for name in SINGLE if getattr(args, name) is None]
    if missing:
        raise UsageError(
            f"missing {', '.join(missing)}", hint="give every flow field, or read many flows with --flows FILE"
        )
    slaves = _slaves(str(args.slaves), "--slaves")
    flow = _flow(
        _mac(args.src_mac, "--src-mac"),
        _mac(args.dst_mac, "--dst-mac"),
        _endpoint(args.src, "--src"),
        _endpoint(args.dst, "--dst"),
        args.proto or "tcp",
        bool(args.fragment),
    )
    return flow, slaves


def parse_flows(text: str, name: str) -> list[tuple[int, bonds.Flow, int]]:
    """(line number, flow, slaves) for each line; blank lines and # comments are skipped."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"--flows {name} line {n}"
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) not in (8, 9):
            raise UsageError(
                f"{where}: {len(fields)} tab-separated fields, expected 8 or 9",
                hint=f"write {FLOW_FIELDS} separated by tabs",
            )
        smac, dmac, sip, dip, proto, sport, dport, slaves = (f.strip() for f in fields[:8])
        frag = fields[8].strip() if len(fields) == 9 else "0"
        if proto.lower() not in bonds.PROTOS:
            raise UsageError(f"{where}: protocol {proto!r} is not tcp or udp", hint="write tcp or udp")
        if frag not in ("0", "1"):
            raise UsageError(f"{where}: fragment {frag!r} is not 0 or 1", hint="write 1 for an IP fragment, else 0")
        flow = _flow(
            _mac(smac, f"{where}: src_mac"),
            _mac(dmac, f"{where}: dst_mac"),
            (_address(sip, f"{where}: src_ip"), _port(sport, f"{where}: sport")),
            (_address(dip, f"{where}: dst_ip"), _port(dport, f"{where}: dport")),
            proto.lower(),
            frag == "1",
        )
        out.append((n, flow, _slaves(slaves, f"{where}: slaves")))
    return out


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as err:
        raise UsageError(f"cannot read --flows {path}: {err.strerror}", hint="give a readable file") from None


def _line(result: bonds.Selection, slaves: int, as_json: bool, prefix: str = "") -> str:
    if as_json:
        return json.dumps(
            {"member_index": result.member_index, "hash": result.hash, "kernel_generation": result.generation.name}
        )
    return (
        f"{prefix}member {result.member_index} of {slaves} (0-based, enslave order), "
        f"hash {result.hash} (0x{result.hash:08x}), kernel generation {result.generation.name}"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    if not args.policy:
        raise UsageError("missing --policy", hint=f"give the bond's xmit_hash_policy: {', '.join(bonds.POLICIES)}")
    gen, release = _generation(args)
    if args.flows:
        given = [f"--{name.replace('_', '-')}" for name in (*SINGLE, "proto", "fragment") if getattr(args, name)]
        if given:
            raise UsageError(
                f"{', '.join(given)} cannot be combined with --flows", hint="put each flow's fields in the file"
            )
        # One line per flow and nothing else, so the output lines up with the input; each text
        # line names the generation assumed.
        flows = parse_flows(_read(args.flows), args.flows)
        for n, flow, slaves in flows:
            result = bonds.select(args.policy, slaves, flow, gen)
            out.write(_line(result, slaves, args.json, f"line {n}: ") + "\n")
        return 0
    flow, slaves = _single(args)
    result = bonds.select(args.policy, slaves, flow, gen)
    out.write(_line(result, slaves, args.json) + "\n")
    if not args.json:
        out.write(f"{args.policy}, kernel generation {gen.name} assumed from {release!r} ({gen.source})\n")
    return 0
