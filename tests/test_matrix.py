"""The cluster's matrix from stored runs: a 3-node cluster, 6 ordered pairs, every format, compare.

The runs are sample_reports' Reports relabelled per pair and stored with runs.store the way the
playbook leaves them after fetching: captures/matrix-<stamp>/<host>/<run>/run.json.
"""

from __future__ import annotations

import importlib.util
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sample_reports as samples

from verifier import runs
from verifier.cli import main
from verifier.matrix import ASYMMETRIC, OUTLIER, build, compare, render
from verifier.matrix.model import rank
from verifier.model import MigrationStatus, Report
from verifier.render.formats import Format

SAN = {"node1": "198.18.0.11", "node2": "198.18.0.12", "node3": "198.18.0.13"}
LAN = {"node1": "203.0.113.11", "node2": "203.0.113.12", "node3": "203.0.113.13"}
ORDER = [("node1", "node2"), ("node1", "node3"), ("node2", "node1"), ("node2", "node3"), ("node3", "node1")]
ORDER.append(("node3", "node2"))


def when(src: str, dst: str) -> float:
    """Pairs run one after the other, 100 s apart."""
    return samples.T0 + 100 * ORDER.index((src, dst))


def send(src: str, dst: str, lan: bool = False, with_return: bool = False) -> Report:
    started = when(src, dst)
    base = samples.lan_fail(started, duration=2.0) if lan else samples.san_pass(started, with_return=with_return)
    net = LAN if lan else SAN
    endpoints = (f"{net[src]}:50000 -> {net[dst]}:49152",)
    return replace(base, source=src, destination=dst, stream=replace(base.stream, endpoints=endpoints))


def watch(host: str, src: str, rx: str, lan: bool = False) -> Report:
    """What `verify-path watch` on HOST recorded while SRC migrated to it (to its LAN address with
    LAN), the stream arriving on RX."""
    started = when(src, host) - 1
    base = samples.observed(started)
    on_rx = {"br0": ("br0", "eth0"), "san0": ("san0",)}[rx]
    interfaces = tuple(
        replace(i, bytes_rx=105_000_000 if i.name in on_rx else 0, bytes_tx=2_000_000 if i.name in on_rx else 0)
        for i in base.interfaces
    )
    net = LAN if lan else SAN
    return replace(
        base,
        mode="watch",
        vm="",
        source=host,
        destination="",
        interfaces=interfaces,
        observed_interface=rx,
        observed_path=on_rx,
        stream=replace(base.stream, endpoints=(f"{net[src]}:50000 -> {net[host]}:49152",)),
        migration=replace(base.migration, status=MigrationStatus.NOT_RUN, started_at=started, duration_s=6.0),
    )


def cluster(flipped: bool = False) -> list[Report]:
    """6 pairs over san0, except node3 -> node1 over the LAN (an outlier, and a fail: --expect san0).
    node1 -> node2 was received on br0 (asymmetric). FLIPPED: node3 -> node1 fixed, node1 -> node3 broken."""
    return [
        send("node1", "node2", with_return=True),
        send("node1", "node3", lan=flipped),
        send("node2", "node1", with_return=True),
        send("node2", "node3", with_return=True),
        send("node3", "node1", lan=not flipped),
        send("node3", "node2", with_return=True),
        watch("node2", "node1", "br0"),
        watch("node3", "node1", "br0" if flipped else "san0", lan=flipped),
        watch("node1", "node2", "san0"),
    ]


def store_all(reports: list[Report], top: Path) -> Path:
    """REPORTS the way the playbook fetches them: TOP/<host that ran it>/<run>/run.json."""
    for r in reports:
        run_dir = runs.create(top / r.source, r.vm or "watch", r.destination or "any", now=r.started_at)
        runs.store(replace(r, run_dir=str(run_dir)), run_dir)
    return top


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def before(tmp_path: Path) -> Path:
    return store_all(cluster(), tmp_path / "matrix-before")


def test_three_nodes_make_six_cells_with_one_asymmetric_pair_and_one_outlier(before: Path) -> None:
    m = build.build([before])
    assert m.hosts == ("node1", "node2", "node3")
    assert [c.pair for c in m.cells] == sorted(ORDER) and m.missing == ()
    assert m.majority_network == "198.18.0.0/24"
    marks = {c.pair: c.marks for c in m.cells}
    assert marks.pop(("node1", "node2")) == (ASYMMETRIC,)
    assert marks.pop(("node3", "node1")) == (OUTLIER,)
    assert set(marks.values()) == {()}
    c12 = m.cell("node1", "node2")
    assert c12 is not None and (c12.interface, c12.receive_interface, c12.receive_from) == ("san0", "br0", "watch")
    # No watch on node3 while node2 sent: node3 -> node2's round trip brought node2 -> node3 back.
    c23 = m.cell("node2", "node3")
    assert c23 is not None and (c23.receive_interface, c23.receive_from) == ("san0", "return-leg")
    c31 = m.cell("node3", "node1")
    assert c31 is not None and c31.verdict == "fail" and c31.interface == "br0" and c31.receive is None
    assert c31.network == "203.0.113.0/24"
    assert m.verdict == "fail" and m.exit_code == 1
    assert m.problems == ()


def test_the_cli_prints_the_grid_and_exits_with_the_worst_verdict(before: Path) -> None:
    code, out, _ = run_cli("matrix", str(before))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL: 6 pairs of 3 hosts; most pairs took 198.18.0.0/24; 2 marked")
    grid = {line.split()[1]: line for line in lines if line.startswith("  from ")}
    assert "san0/br0! PASS" in grid["node1"] and "br0* FAIL" in grid["node3"]


def test_json_has_the_cells_the_playbook_consumers_read(before: Path) -> None:
    code, out, _ = run_cli("matrix", str(before), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and data["verdict"] == "fail"
    assert len(data["cells"]) == 6
    for cell in data["cells"]:
        for key in ("source", "destination", "interface", "receive_interface", "verdict", "marks", "rate", "run_dir"):
            assert key in cell
    c12 = next(c for c in data["cells"] if (c["source"], c["destination"]) == ("node1", "node2"))
    assert c12["interface"] == "san0" and c12["receive_interface"] == "br0" and c12["marks"] == ["asymmetric"]
    assert c12["rate"]["wire_bps"] > 0 and Path(c12["run_dir"], "run.json").is_file()


def test_a_pair_off_its_link_shows_the_route_the_source_picked(before: Path) -> None:
    code, out, _ = run_cli("matrix", str(before), "--format", "json")
    for cell in json.loads(out)["cells"]:
        assert "route" in cell
    _, text, _ = run_cli("matrix", str(before))
    failed = [ln for ln in text.splitlines() if ": FAIL" in ln.upper() and " -> " in ln]
    routes = [ln for ln in text.splitlines() if "; route " in ln]
    assert all("; route " not in ln for ln in text.splitlines() if "PASS" in ln.upper() and " -> " in ln)
    assert len(routes) <= len(failed)


def test_every_format_renders(before: Path) -> None:
    m = build.build([before])
    assert set(render.RENDERERS) == set(Format)
    for fmt in Format:
        assert render.render(m, fmt).strip()
    page = render.render(m, Format.HTML)
    assert 'name="viewport"' in page and "table-layout: fixed" in page
    assert page.count('class="pass"') == 5 and page.count('class="fail"') == 2  # five cells, one cell + heading
    assert "http" not in page.replace("http-equiv", "") and "<script" not in page
    suite = ET.fromstring(render.render(m, Format.JUNIT))
    cases = suite.findall(".//testcase")
    assert len(cases) == 6 and suite.get("tests") == "6" and suite.get("failures") == "1"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["node3 -> node1"]
    md = render.render(m, Format.MARKDOWN)
    assert "| **node1** |" in md


def test_verdict_order_is_pass_observed_then_fail_then_inconclusive(tmp_path: Path) -> None:
    assert rank("pass") == rank("observed") < rank("fail") < rank("inconclusive")
    reports = [*cluster(), replace(send("node2", "node3"), verdict="inconclusive", started_at=samples.T0 + 900)]
    m = build.build_from(reports)
    assert m.verdict == "inconclusive" and m.exit_code == 3


def test_a_missing_pair_is_inconclusive_unless_partial(tmp_path: Path) -> None:
    reports = [r for r in cluster() if (r.source, r.destination) != ("node2", "node3")]
    top = store_all(reports, tmp_path / "m")
    code, out, _ = run_cli("matrix", str(top), "--format", "json")
    assert code == 3 and json.loads(out)["missing"] == [["node2", "node3"]]
    code, out, _ = run_cli("matrix", str(top), "--partial")
    assert code == 1 and "missing (a partial run: not counted): node2 -> node3" in out


def test_short_names_unreadable_records_and_unmatched_watches(tmp_path: Path) -> None:
    reports = cluster()
    reports[0] = replace(reports[0], source="NODE1.example.com")  # libvirt's FQDN, the operator's short name
    reports.append(replace(watch("node2", "node1", "san0"), started_at=samples.T0 + 5000))
    top = store_all(reports, tmp_path / "m")
    (top / "node1" / "broken").mkdir()
    (top / "node1" / "broken" / "run.json").write_text("{")
    m = build.build([top])
    assert m.hosts == ("node1", "node2", "node3") and len(m.cells) == 6
    assert any("not valid JSON" in p for p in m.problems)
    assert any("matched no migration" in p for p in m.problems)


def test_a_watch_that_also_saw_the_return_leg_names_the_received_path_whole() -> None:
    # node2 -> node1 arrived over node1's LAN (br0 and its port eth0); the probe's return leg left
    # over san0 within the same watch window and is the observed path. The receive side is br0
    # with eth0 under it, as when the return leg took the LAN too.
    seen = watch("node1", "node2", "br0")
    interfaces = tuple(replace(i, bytes_tx=110_000_000, bytes_rx=0) if i.name == "san0" else i for i in seen.interfaces)
    mixed = replace(seen, interfaces=interfaces, observed_interface="san0", observed_path=("san0",))
    side = build.receive_side_of_watch(mixed)
    assert (side.interface, side.path) == ("br0", ("br0", "eth0"))
    assert build.receive_side_of_watch(replace(seen, observed_interface="br0", observed_path=("br0", "eth0"))) == (
        build.send_side(replace(seen, observed_interface="br0", observed_path=("br0", "eth0")))
    )


def test_a_watch_from_another_client_is_not_this_pairs_receive_side() -> None:
    stray = replace(watch("node2", "node1", "br0"), stream=replace(samples.observed().stream, endpoints=()))
    other = replace(stray, stream=replace(stray.stream, endpoints=("198.18.0.13:1 -> 198.18.0.12:49152",)))
    s12 = send("node1", "node2")
    assert build.matching_watch(s12, [other]) is None
    assert build.matching_watch(s12, [stray]) is stray  # no address recorded: name and time decide
    assert build.matching_watch(s12, [replace(stray, source="node3")]) is None
    # Lab nodes share the machine's hostname: the connection's addresses are what pair them.
    same = replace(watch("node2", "node1", "br0"), source="labhost")
    assert build.matching_watch(s12, [same]) is same


def test_two_matrices_list_exactly_the_two_pairs_that_changed(before: Path, tmp_path: Path) -> None:
    after = store_all(cluster(flipped=True), tmp_path / "matrix-after")
    result = compare.compare(build.build([before]), build.build([after]))
    assert [(p.source, p.destination) for p in result.changed] == [("node1", "node3"), ("node3", "node1")]
    broken, fixed = result.changed
    assert "link san0 => br0 -> eth0" in broken.changes and "verdict pass => fail" in broken.changes
    assert broken.worse and not fixed.worse and "-outlier" in fixed.changes
    assert "received on san0 => br0 -> eth0" in broken.changes and "now outlier" in broken.worse
    assert result.unchanged == 4 and result.exit_code == 1
    code, out, _ = run_cli("compare", str(before), str(after))
    assert code == 1 and out.startswith("2 of 6 pairs changed")
    assert "WORSE node1 -> node3" in out
    code, out, _ = run_cli("compare", str(after), str(before))
    assert code == 1  # node3 -> node1 broke going that way round
    code, out, _ = run_cli("compare", str(before), str(before))
    assert code == 0 and out.startswith("no pair changed (6 pairs)")


def test_compare_refuses_a_run_against_a_matrix(before: Path) -> None:
    one_run = next(before.rglob("run.json")).parent
    code, _, err = run_cli("compare", str(one_run), str(before))
    assert code == 2 and "two runs or two directories of runs" in err
    code, _, err = run_cli("compare", str(before), str(before), "--chart", "x.png")
    assert code == 2 and "--chart" in err


def test_no_runs_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run_cli("matrix", str(tmp_path))
    assert code == 2 and "no run.json under" in err
    code, _, err = run_cli("matrix", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli("matrix", str(tmp_path), "--network", "nonsense")
    assert code == 2 and "--network" in err


def _filters() -> Any:
    """The playbook's Jinja filters (ansible/filter_plugins), loaded without Ansible."""
    path = Path(__file__).resolve().parent.parent / "ansible" / "filter_plugins" / "verify_path.py"
    spec = importlib.util.spec_from_file_location("verify_path_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("hosts", [3, 4, 5])
def test_the_playbook_runs_every_pair_once_and_no_host_twice_in_a_round(hosts: int) -> None:
    f = _filters()
    names = [f"node{i}" for i in range(1, hosts + 1)]
    pairs = f.all_pairs(names)
    assert len(pairs) == hosts * (hosts - 1)
    rounds = f.rounds(pairs)
    flat = [(p["source"], p["dest"]) for r in rounds for p in r]
    assert sorted(flat) == sorted((p["source"], p["dest"]) for p in pairs)
    for r in rounds:
        used = [h for p in r for h in (p["source"], p["dest"])]
        assert len(used) == len(set(used))
    assert all(len(r) == 1 for r in f.rounds(pairs, 1))


def test_the_playbook_accepts_a_pairs_list_in_several_spellings() -> None:
    f = _filters()
    rounds = f.rounds([["node1", "node2"], "node2:node1", "node3->node1", {"source": "node2", "dest": "node3"}])
    assert rounds == [
        [{"source": "node1", "dest": "node2"}],
        [{"source": "node2", "dest": "node1"}],
        [{"source": "node3", "dest": "node1"}],
        [{"source": "node2", "dest": "node3"}],
    ]
    with pytest.raises(ValueError, match="two different hosts"):
        f.rounds([["node1", "node1"]])
