"""`verify-path probe NODE DEST`: the probe guest's command line (the probe itself: verifier/probe.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TextIO

from verifier.cli import job
from verifier.cli.output import write_finished
from verifier.cli.parser import Parser
from verifier.errors import ExitCode, UsageError
from verifier.probe import DEFAULT_MIB, MAX_MIB, check_node, kvm_usable, plan, run


def parser(env: Mapping[str, str]) -> Parser:
    """The main job's parser, every option the same, with NODE_OR_URI for VM and --memory."""
    p = job.job_parser(env)
    p.prog = "verify-path probe"
    p.description = "Start a throwaway guest on this host, migrate it to DEST with the job's options, verify it."
    for action in p._actions:  # argparse has no public way to rename a positional
        if action.dest == "vm":
            action.metavar, action.help = "NODE_OR_URI", "this host: its name (as libvirt knows it) or libvirt URI"
    mib = f"MiB of random data in the probe's RAM (default {DEFAULT_MIB}, at most {MAX_MIB})"
    p.add_argument("--memory", type=int, default=DEFAULT_MIB, metavar="MIB", help=mib)
    return p


def run_cli(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from verifier.capture.live import check_privilege
    from verifier.hypervisor.probes import ProbeLibvirt
    from verifier.pipeline import run_job as conduct

    if args.dry_run:
        raise UsageError("a probe has no dry run", hint="predict an existing guest: verify-path predict VM DEST")
    if not 1 <= args.memory <= MAX_MIB:
        raise UsageError(f"--memory must be 1..{MAX_MIB} MiB, got {args.memory}")
    node = args.vm
    if "://" in node or node.startswith("qemu:"):
        args.connect = node
    opts = job.options(args, env)
    check_privilege()
    printer, b = job.backends(args, err)
    host = ProbeLibvirt(opts.connect_uri, opts.dest_uri)
    try:
        with host:
            if args.connect != node:
                check_node(node, host.source_hostname())
            spec = plan(host, args.memory, kvm_usable())
            outcome = run(opts, b, host, spec, conduct, warn=lambda line: print(line, file=err, flush=True))
    finally:
        printer.close()
    code = write_finished(outcome.finished, args.json, args.chart, out)
    if outcome.left_behind:
        print(f"verify-path: error: {spec.name} could not be destroyed everywhere", file=err)
        return int(ExitCode.ENVIRONMENT)
    return code
