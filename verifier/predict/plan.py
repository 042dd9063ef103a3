"""Everything decided before anything moves: the predicted chain, the ports, what it already shows.

Pure given its inputs: the conductor hands in the discovered topology, the migration target and
the route lookup back end.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from verifier import expect
from verifier.model import Expectation, Facts, Finding, Plan, Severity, Topology, Verdict
from verifier.predict.chain import predict
from verifier.predict.links import ring_finding
from verifier.predict.uri import MigrationTarget
from verifier.resolve import HOSTS, Resolver
from verifier.routing import RouteLookup


def make_plan(
    topology: Topology,
    watch: tuple[str, ...],
    ports: tuple[tuple[int, int], ...],
    target: MigrationTarget,
    routes: RouteLookup,
    dest: str,
    expectation: Expectation,
    hosts: Path = HOSTS,
    resolver: Resolver | None = None,
) -> Plan:
    prediction = predict(target.host, target.reason, topology, routes, hosts=hosts, dest=dest, resolver=resolver)
    prediction = replace(prediction, uri_origin=target.origin, migrate_uri=target.migrate_uri)
    findings = list(prediction.findings)
    wanted = expect.wanted_interfaces(topology, expectation)
    ring = ring_finding(topology, prediction.path, dest, wanted, hosts)
    if ring:
        findings.append(ring)
    if expectation.given and prediction.interface:
        wanted = expect.wanted_interfaces(topology, expectation)
        if not wanted & set(prediction.path):
            findings.append(
                Finding(
                    "predicted-wrong-path",
                    Severity.ERROR,
                    f"the stream will take {' -> '.join(prediction.path)}, not {', '.join(sorted(wanted))}",
                    facts=Facts(expected=expect.target_interface(topology, expectation)),
                )
            )
    return Plan(topology, watch, prediction, ports, tuple(findings))


def predicted_verdict(plan: Plan, expectation: Expectation) -> Verdict:
    if plan.prediction.interface is None:
        return Verdict.INCONCLUSIVE
    if not expectation.given:
        return Verdict.OBSERVED
    wrong = any(f.code == "predicted-wrong-path" for f in plan.findings)
    return Verdict.FAIL if wrong else Verdict.PASS
