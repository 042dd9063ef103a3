"""bond-hash: the command's output, --flows round trip, JSON keys and usage errors.

Expected values are worked out by hand (tests/test_bonds.py shows the same flows per generation):
  3.0.101 layer3+4 of 10.0.0.1:50000 -> 10.0.0.2:49153 = (50000 ^ 49153) ^ (0x0a000001 ^ 0x0a000002) & 0xffff
                                                        = 0x0351 ^ 0x0003 = 0x0352 = 850
  the port-independent parts never depend on the host's byte order before 3.13, so these hold anywhere.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from verifier import bondhash
from verifier.errors import UsageError

SMAC, DMAC = "52:54:00:0b:00:01", "52:54:00:0c:00:02"
BASE = ["--policy", "layer3+4", "--kernel", "3.0.101-63-default"]
FLOW = ["--slaves", "2", "--src-mac", SMAC, "--dst-mac", DMAC, "--src", "10.0.0.1:50000", "--dst", "10.0.0.2:49153"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verify-path bond-hash")
    bondhash.add_arguments(p)
    return p


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = bondhash.run(parser().parse_args(argv), out)
    return code, out.getvalue()


def test_text_names_member_hash_and_generation() -> None:
    code, text = run(BASE + FLOW)
    assert code == 0
    # 850 % 2 = 0
    assert "member 0 of 2 (0-based, enslave order), hash 850 (0x00000352)" in text
    assert "kernel generation pre-3.7 assumed from '3.0.101-63-default'" in text


def test_json_keys_and_values() -> None:
    code, text = run(BASE + FLOW + ["--slaves", "3", "--json"])
    assert code == 0
    got = json.loads(text)
    assert set(got) == {"member_index", "hash", "kernel_generation"}
    # 850 = 3*283 + 1
    assert got == {"member_index": 1, "hash": 850, "kernel_generation": "pre-3.7"}


def test_fragment_hashes_ports_zero() -> None:
    # 3.0: a fragment skips the ports: h = 0x0003 -> member 1 of 2.
    _, text = run(BASE + FLOW + ["--fragment", "--json"])
    assert json.loads(text) == {"member_index": 1, "hash": 3, "kernel_generation": "pre-3.7"}
    _, udp = run(BASE + FLOW + ["--proto", "udp", "--json"])
    assert json.loads(udp)["hash"] == 850  # UDP ports hash like TCP's


def test_ipv6_brackets_and_generation_name() -> None:
    argv = ["--policy", "layer2+3", "--kernel", "3.7-3.12", "--slaves", "2", "--src-mac", SMAC, "--dst-mac", DMAC]
    argv += ["--src", "[2001:db8::1]:50000", "--dst", "[2001:db8:1::2]:49153", "--json"]
    got = json.loads(run(argv)[1])
    # Words 1-3 of the addresses XOR to 0x00010003 (big) or 0x03000100 (little); folded and ^ MACs 3:
    # 0x00010101 or 0x03030201 (tests/test_bonds.py). Both are odd -> member 1 of 2.
    assert got["member_index"] == 1 and got["kernel_generation"] == "3.7-3.12"
    assert got["hash"] in (0x00010101, 0x03030201)


def test_kernel_defaults_to_the_running_one(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        release = "5.4.0-150-generic"

    monkeypatch.setattr(bondhash.os, "uname", lambda: Uname())
    _, text = run(["--policy", "layer3+4"] + FLOW)
    assert "kernel generation 4.14-5.14 assumed from '5.4.0-150-generic'" in text


FLOWS = (
    "# src_mac\tdst_mac\tsrc_ip\tdst_ip\tproto\tsport\tdport\tslaves\tfragment\n"
    f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\t50000\t49153\t2\n"
    "\n"
    f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\tudp\t50000\t49153\t3\t1\n"
    f"52:54:00:0b:00:07\t52:54:00:0c:00:00\t192.168.1.10\t192.168.2.20\tTCP\t40000\t49152\t4\t0\n"
)
# line 2: 850 % 2 = 0
# line 4: fragment -> 0x0003 = 3; 3 % 3 = 0
# line 5: ports 40000 ^ 49152 = 0x9C40 ^ 0xC000 = 0x5C40; addresses c0a8010a ^ c0a80214 = 0000031e
#         -> & 0xffff = 0x031E; 0x5C40 ^ 0x031E = 0x5F5E = 24414; 24414 % 4 = 2
FLOWS_WANT = [(2, 0, 850), (4, 0, 3), (5, 2, 0x5F5E)]


def test_flows_round_trip_in_input_order(tmp_path: Path) -> None:
    path = tmp_path / "flows.tsv"
    path.write_text(FLOWS)
    code, text = run(BASE + ["--flows", str(path), "--json"])
    assert code == 0
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(d["member_index"], d["hash"]) for d in lines] == [(m, h) for _, m, h in FLOWS_WANT]
    assert {d["kernel_generation"] for d in lines} == {"pre-3.7"}
    _, plain = run(BASE + ["--flows", str(path)])
    rows = plain.splitlines()
    assert len(rows) == 3
    for row, (n, member, h) in zip(rows, FLOWS_WANT, strict=True):
        assert row.startswith(f"line {n}: member {member} of ")
        assert f"hash {h} " in row and row.endswith("kernel generation pre-3.7")


def test_flows_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(FLOWS))
    assert len(run(BASE + ["--flows", "-", "--json"])[1].splitlines()) == 3


def usage(argv: list[str]) -> str:
    with pytest.raises(UsageError) as info:
        run(argv)
    assert info.value.hint
    return info.value.one_line()


@pytest.mark.parametrize(
    ("swap", "words"),
    [
        (("--src-mac", "52:54:00:0b:00"), "is not a MAC address"),
        (("--src", "10.0.0.1"), "is not IP:PORT"),
        (("--src", "2001:db8::1:50000"), "is not IP:PORT"),
        (("--src", "10.0.0.300:5"), "is not an IP address"),
        (("--dst", "10.0.0.2:70000"), "is not a port number"),
        (("--dst", "[2001:db8::2]:49153"), "not the same address family"),
        (("--slaves", "0"), "is not a member count"),
        (("--kernel", "latest"), "is not a kernel release"),
    ],
)
def test_usage_errors(swap: tuple[str, str], words: str) -> None:
    argv = BASE + FLOW
    argv[argv.index(swap[0]) + 1] = swap[1]
    assert words in usage(argv)


def test_missing_options() -> None:
    assert "missing --policy" in usage(FLOW)
    assert "missing --src, --dst" in usage(BASE + ["--slaves", "2", "--src-mac", SMAC, "--dst-mac", DMAC])


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\t1\t2", "7 tab-separated fields, expected 8 or 9"),
        (f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ticmp\t1\t2\t2", "protocol 'icmp' is not tcp or udp"),
        (f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\t1\t2\t2\t2", "fragment '2' is not 0 or 1"),
        (f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\tx\t2\t2", "sport port 'x' is not a port number"),
        (f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\t1\t2\tnone", "slaves 'none' is not a member count"),
        (f"{SMAC} {DMAC} 10.0.0.1 10.0.0.2 tcp 1 2 2", "1 tab-separated fields"),
    ],
)
def test_flows_errors_name_the_line(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "flows.tsv"
    path.write_text(f"{SMAC}\t{DMAC}\t10.0.0.1\t10.0.0.2\ttcp\t1\t2\t2\n{line}\n")
    message = usage(BASE + ["--flows", str(path)])
    assert f"--flows {path} line 2: " in message and words in message


def test_flows_file_problems(tmp_path: Path) -> None:
    assert "cannot read --flows" in usage(BASE + ["--flows", str(tmp_path / "absent.tsv")])
    path = tmp_path / "flows.tsv"
    path.write_text(FLOWS)
    assert "--src, --proto cannot be combined with --flows" in usage(
        BASE + ["--flows", str(path), "--src", "10.0.0.1:1", "--proto", "udp"]
    )
