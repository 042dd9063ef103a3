"""The CLI in-process: bad input is one line on stderr with the documented exit code, no traceback."""

from __future__ import annotations

import io

import pytest

from verifier.cli import main
from verifier.profiles import parse_ports


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["vm01", "node2", "--ports", "49152-abc"], "--ports"),
        (["vm01", "node2", "--ports", "70000"], "outside 0-65535"),
        (["vm01", "node2", "--ports", "50000-40000"], "reversed"),
        (["vm01", "node2", "--expect-net", "198.18.0.0/33"], "--expect-net"),
        (["vm01", "node2", "--migrate-uri", "http://node2-san"], "not a QEMU migration URI"),
        (["vm01", "node2", "--migrate-uri", "tcp://"], "names no host"),
        (["vm01", "node2", "--via", "san0", "--migrate-uri", "tcp://x"], "not allowed with"),
        (["vm01", "node2", "--bandwidth", "0"], "at least 1"),
        (["vm01", "node2", "--parallel", "many"], "whole number"),
        (["vm01"], "required"),
        (["vm01", "node2", "--no-such-option"], "unrecognized"),
        (["watch", "--duration", "-1"], "positive number of seconds"),
        (["reprot", "captures/x"], "did you mean report?"),
        (["vm01", "node2", "--expect-net", "10.99.0.0/33"], "--expect-net"),
        (["lab", "up", "--guest-data", "9999"], "--guest-data"),
        (["lab", "up", "--migration-host", "node3=node3-san"], "unknown node"),
        (["lab", "up", "--migration-host", "node2"], "NODE=HOST"),
        (["lab", "frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], needle: str) -> None:
    code, out, err = run(*argv)
    assert code == 2, (code, err)
    assert needle in err
    assert err.startswith("verify-path: error: ")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and out == ""


def test_help_lists_exit_codes_and_subcommands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for text in ("exit codes", "130", "inconclusive", "verify-path watch", "verify-path lab", "--via IFACE"):
        assert text in out


def test_no_arguments_is_a_usage_error_with_help() -> None:
    code, out, _ = run()
    assert code == 2 and "usage:" in out


def test_parse_ports_accepts_ranges_and_single_ports() -> None:
    assert parse_ports("49152-49215,8002") == ((49152, 49215), (8002, 8002))
    assert parse_ports(" 60000-60050 ") == ((60000, 60050),)


def test_the_console_script_exits_with_mains_code_and_skips_the_final_collections(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify-path` (cli.run) freezes the garbage collector before exiting: the interpreter's
    final collections over matplotlib's and scapy's objects cost 0.14-0.19 s of time to verdict."""
    import gc

    from verifier import cli

    monkeypatch.setattr("sys.argv", ["verify-path", "lab", "nonsense"])
    try:
        with pytest.raises(SystemExit) as ended:
            cli.run()
        assert ended.value.code == 2  # a usage error, as main() says
        assert "nonsense" in capsys.readouterr().err
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
