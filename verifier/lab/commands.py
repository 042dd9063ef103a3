"""`verify-path lab up | down | status | exec`: argument parsing and output for the lab."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from verifier.errors import UsageError
from verifier.lab import control, spec
from verifier.lab.system import netns_list, require_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "lab",
        help="the two-node libvirt lab in network namespaces",
        description=f"A two-node cluster (node1, node2) in network namespaces with "
        f"real libvirtd and a QEMU guest {spec.GUEST}. State lives in "
        f"{spec.STATE_DIR}.",
    )
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="{up,down,status,exec}")
    p_up = labsub.add_parser("up", help="build the lab (no-op when already up with the same options)")
    p_up.add_argument(
        "--guest-data",
        type=int,
        default=spec.DEFAULT_GUEST_DATA_MIB,
        metavar="MIB",
        help=f"random data loaded into {spec.GUEST}'s RAM (default %(default)s MiB)",
    )
    p_up.add_argument(
        "--migration-host",
        action="append",
        default=[],
        metavar="NODE=HOST",
        help="write migration_host = HOST into NODE's qemu.conf (e.g. node2=node2-san)",
    )
    labsub.add_parser("down", help="remove every namespace, daemon, mount and file of the lab")
    p_st = labsub.add_parser("status", help="nodes, links, addresses, daemons, where the guest runs")
    p_st.add_argument("--json", action="store_true", help="print JSON")
    p_ex = labsub.add_parser("exec", help="run a command inside a node: NODE -- CMD...")
    p_ex.add_argument("node", choices=spec.NODES)
    p_ex.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    def progress(msg: str) -> None:
        print(f"lab: {msg}", file=sys.stderr, flush=True)

    if args.lab_command == "up":
        options = control.LabOptions(
            guest_data_mib=args.guest_data,
            migration_hosts=tuple(_pair(v) for v in args.migration_host),
        )
        control.up(options, progress=progress)
        return 0
    if args.lab_command == "down":
        problems = control.down(progress=progress)
        return 4 if problems else 0
    if args.lab_command == "status":
        st = control.status()
        out.write(json.dumps(st, indent=2) + "\n" if args.json else render_status(st))
        return 0
    return exec_in_node(args.node, args.cmd)


def _pair(value: str) -> tuple[str, str]:
    node, sep, host = value.partition("=")
    if not sep:
        raise UsageError(f"--migration-host {value!r} is not NODE=HOST", hint="e.g. --migration-host node2=node2-san")
    return node, host


def exec_in_node(node: str, cmd: list[str]) -> int:
    """Replace this process with CMD inside NODE's netns and hosts file, keeping the cwd."""
    require_root()
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("lab exec needs a command", hint=f"verify-path lab exec {node} -- virsh list")
    if node not in netns_list():
        raise UsageError(f"{node} does not exist", hint="run `verify-path lab up` first")
    env = dict(os.environ)
    env["LIBVIRT_DEFAULT_URI"] = spec.libvirt_uri(node)
    # The main job's --dest-uri default for the lab: the destination's TCP listener.
    env["VERIFY_PATH_DEST_URI"] = "qemu+tcp://{dest}/system"
    env["VERIFY_PATH_LAB_NODE"] = node
    # ip netns exec only overlays files that exist under /etc; the lab's corosync.conf is handed over.
    env["VERIFY_PATH_COROSYNC_CONF"] = str(spec.node_dir(node) / "corosync.conf")
    os.execvpe("ip", ["ip", "netns", "exec", node, *cmd], env)
    return 127  # not reached


def render_status(st: dict) -> str:
    lines = [f"lab: {st['phase']} (state in {st['state_dir']})"]
    for node in st["nodes"]:
        daemon = node["libvirtd"]
        dstate = f"libvirtd pid {daemon['pid']} running" if daemon["running"] else "libvirtd not running"
        lines.append(f"{node['name']}: netns {'present' if node['netns'] else 'absent'}, {dstate}, {node['uri']}")
        for link in node.get("links", []):
            master = f" (port of {link['master']})" if link["master"] else ""
            addrs = " ".join(link["addresses"]) or "-"
            lines.append(f"  {link['name']:<6} {link['kind']:<7} {link['state']:<5} {addrs}{master}")
    for name, where in st.get("guests", {}).items():
        placed = ", ".join(f"{state} on {node}" for node, state in where.items()) or "not defined"
        lines.append(f"guest {name}: {placed}")
    lines += [f"note: {n}" for n in st.get("notes", [])]
    return "\n".join(lines) + "\n"
