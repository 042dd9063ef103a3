"""`verify-path lab up | down | status | exec | load`: argument parsing and output for the lab."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TextIO

from verifier import signals
from verifier.errors import ExitCode, UsageError, VerifierError
from verifier.lab import control, flows, labstatus, load, spec
from verifier.lab.system import netns_list, require_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "lab",
        help="the two-node (or three-node) libvirt lab in network namespaces",
        description=f"A cluster (node1, node2; node3 with --nodes 3) in network namespaces with "
        f"real libvirtd, sshd and QEMU guests ({spec.GUEST} by default). State lives in "
        f"{spec.STATE_DIR}.",
    )
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="{up,down,status,exec,load}")
    p_up = labsub.add_parser("up", help="build the lab (no-op when already up with the same options)")
    p_up.add_argument(
        "--guest-data",
        type=int,
        default=spec.DEFAULT_GUEST_DATA_MIB,
        metavar="MIB",
        help="random data loaded into each guest's RAM (default %(default)s MiB)",
    )
    p_up.add_argument(
        "--guests",
        type=int,
        default=1,
        metavar="N",
        help=f"define and start vm01..vmN on node1, each with its own data (1-{spec.GUESTS_MAX}, default 1)",
    )
    p_up.add_argument(
        "--dirty",
        type=int,
        default=0,
        metavar="MIB",
        help="boot each guest into a program that keeps rewriting MIB mebibytes (default: an idle guest)",
    )
    p_up.add_argument(
        "--dirty-rate",
        type=int,
        default=0,
        metavar="MBPS",
        help="cap that rewriting at MBPS MiB/s (default: as fast as it can)",
    )
    p_up.add_argument(
        "--nodes",
        type=int,
        default=len(spec.NODES),
        metavar="N",
        help=f"build node1..nodeN ({len(spec.NODES)}-{len(spec.ALL_NODES)}, default %(default)s), "
        "every link a segment all nodes share",
    )
    p_up.add_argument(
        "--migration-host",
        action="append",
        default=[],
        metavar="NODE=HOST",
        help="write migration_host = HOST into NODE's qemu.conf (e.g. node2=node2-san)",
    )
    labsub.add_parser("down", help="remove every namespace, daemon, mount and file of the lab")
    p_st = labsub.add_parser("status", help="nodes, links, addresses, daemons, where each guest runs")
    p_st.add_argument("--json", action="store_true", help="print JSON")
    p_ex = labsub.add_parser("exec", help="run a command inside a node: NODE -- CMD...")
    p_ex.add_argument("node", choices=spec.ALL_NODES)
    p_ex.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    p_ld = labsub.add_parser(
        "load",
        help="iperf3 background traffic node1 -> node2 on the lab's links until --seconds pass or Ctrl-C",
    )
    p_ld.add_argument("--seconds", type=float, default=60.0, metavar="S", help="how long (default %(default)s)")
    p_ld.add_argument(
        "--links",
        default=",".join(flows.DEFAULT_LINKS),
        metavar="LINK,...",
        help="comma-separated links to load (default %(default)s)",
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    def progress(msg: str) -> None:
        print(f"lab: {msg}", file=sys.stderr, flush=True)

    if args.lab_command == "up":
        options = control.LabOptions(
            guest_data_mib=args.guest_data,
            migration_hosts=tuple(_pair(v) for v in args.migration_host),
            guests=args.guests,
            dirty_mib=args.dirty,
            dirty_rate=args.dirty_rate,
            nodes=args.nodes,
        )
        control.up(options, progress=progress)
        return 0
    if args.lab_command == "down":
        problems = control.down(progress=progress)
        return 4 if problems else 0
    if args.lab_command == "status":
        st = labstatus.status()
        out.write(json.dumps(st, indent=2) + "\n" if args.json else render_status(st))
        return 0
    if args.lab_command == "load":
        links = [name.strip() for name in args.links.split(",") if name.strip()]
        return run_load(args.seconds, links, out, progress)
    return exec_in_node(args.node, args.cmd)


def run_load(seconds: float, links: list[str], out: TextIO, progress: control.Progress) -> int:
    """Load LINKS until SECONDS pass or Ctrl-C, then print what each link of node1 sent."""
    require_root()
    control.require_up()
    if not links:
        raise UsageError("--links names no link", hint="e.g. --links br0,san0")
    interfaces = sorted({spec.link(name).l3_interface for name in links if _known_link(name)})
    before = load.tx_bytes("node1", interfaces) if interfaces else {}
    started = time.monotonic()
    interrupted = False
    with load.background_load(seconds, links) as running:
        for flow in running.flows:
            progress(f"flow {flow}")
        progress(f"running for {seconds:g}s (Ctrl-C ends it early)")
        try:
            while time.monotonic() - started < seconds and not running.clients_done():
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True  # the context still ends every iperf3 it started
    elapsed = time.monotonic() - started
    after = load.tx_bytes("node1", interfaces)
    for name in interfaces:
        rate = (after[name] - before[name]) * 8 / elapsed / 1e6
        out.write(f"{name}: node1 sent {rate:.0f} Mbit/s over {elapsed:.1f}s\n")
    if interrupted:
        progress("stopped by Ctrl-C; every iperf3 has ended")
    return 0


def _known_link(name: str) -> bool:
    try:
        spec.link(name)
    except KeyError:
        return False  # background_load reports it as a usage error
    return True


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
    # The node's /run/libvirt as seen from here (exec does not enter libvirtd's mount namespace):
    # its QEMU driver writes qemu/<domain>.pid there, which is how code inside the node finds a
    # guest's QEMU process (design.md section 6).
    env["VERIFY_PATH_LIBVIRT_RUN_DIR"] = str(spec.run_dir(node))
    os.execvpe("ip", ["ip", "netns", "exec", node, *cmd], env)
    return 127  # not reached


def render_status(st: dict) -> str:
    lines = [f"lab: {st['phase']} (state in {st['state_dir']})"]
    for node in st["nodes"]:
        daemon = node["libvirtd"]
        dstate = f"libvirtd pid {daemon['pid']} running" if daemon["running"] else "libvirtd not running"
        ssh = node.get("sshd") or {}
        dstate += f", sshd pid {ssh['pid']} running" if ssh.get("running") else ", sshd not running"
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


def main(argv: list[str] | None = None) -> int:
    """`python -m verifier.lab.commands up|down|status|exec|load ...`: the lab commands alone,
    for when the main CLI cannot be imported (same arguments as `verify-path lab ...`)."""
    parser = argparse.ArgumentParser(prog="python -m verifier.lab.commands")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    signals.install()  # SIGTERM ends `load` like Ctrl-C: through its cleanup
    try:
        return run(args)
    except VerifierError as exc:
        print(f"verify-path: error: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("verify-path: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
