"""Property-based robustness: any input to the readers and the argument parsing ends in a clear
error or a valid result, never a crash or a hang."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from verifier.capture import readers
from verifier.capture.records import PcapError
from verifier.cli import main
from verifier.errors import UsageError
from verifier.expect import parse_networks
from verifier.profiles import parse_ports

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text(max_size=40))
def test_ports_parse_or_usage_error(text: str) -> None:
    try:
        ranges = parse_ports(text)
    except UsageError as exc:
        assert "--ports" in exc.message
        return
    assert ranges and all(0 <= lo <= hi <= 65535 for lo, hi in ranges)


@FAST
@given(st.lists(st.text(max_size=30), max_size=3))
def test_networks_parse_or_usage_error(values: list[str]) -> None:
    try:
        nets = parse_networks(values)
    except UsageError as exc:
        assert "--expect-net" in exc.message
        return
    assert all("/" in n for n in nets)


# Options that never reach a hypervisor: every argv built from these fails validation, prints help
# or runs a usage error path; none may raise or print a traceback.
OPTS = [
    "--ports",
    "--expect-net",
    "--migrate-uri",
    "--bandwidth",
    "--parallel",
    "--role",
    "--profile",
    "--via",
    "--frobnicate",
    "--help",
    "--version",
    "lab",
    "watch",
    "predict",
    "--duration",
    "--until-idle",
]


@FAST
@given(st.lists(st.one_of(st.sampled_from(OPTS), st.text(max_size=12)), max_size=6))
def test_argument_parsing_never_crashes(argv: list[str]) -> None:
    # Make every argv unusable for a real run: an unknown option forces a usage error after parsing
    # the rest, so no migration is ever attempted.
    assume("exec" not in argv)  # `lab exec` replaces the process by design
    argv = [*argv, "--no-such-option-xyz"]
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(argv, env={}, stdout=out, stderr=err)
    except SystemExit as exc:  # --help / --version exit through argparse
        code = int(exc.code or 0)
    assert code in (0, 2), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 2 and err.getvalue():
        assert err.getvalue().startswith("verify-path: error: ")


HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 128, 1)


@FAST
@given(st.binary(max_size=600), st.booleans())
def test_pcap_reader_gives_records_or_a_located_error(
    tmp_path_factory: pytest.TempPathFactory, blob: bytes, with_header: bool
) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "f.pcap"
    path.write_bytes((HEADER if with_header else b"") + blob)
    try:
        _linktype, frames = readers.read_pcap(path)
        for ts, data, orig in frames:
            assert isinstance(ts, float) and len(data) <= 262144 and orig >= 0
    except PcapError as exc:
        assert str(path) in exc.message and "offset" in exc.message


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@FAST
@given(
    st.one_of(
        JSONISH,
        st.fixed_dictionaries(
            {"schema_version": st.integers(-2, 5)},
            optional={"verdict": st.text(max_size=8), "interfaces": JSONISH, "migration": JSONISH, "vm": JSONISH},
        ),
    )
)
def test_run_json_loader_gives_a_report_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, data: object
) -> None:
    import json

    from verifier import runs
    from verifier.model import Report

    run = Path(tmp_path_factory.mktemp("run"))
    (run / "run.json").write_text(json.dumps(data))
    try:
        report = runs.load(run)
    except UsageError as exc:
        assert "run.json" in exc.one_line()
        return
    assert isinstance(report, Report)


@FAST
@given(st.binary(max_size=300))
def test_run_json_loader_on_bytes(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    from verifier import runs

    run = Path(tmp_path_factory.mktemp("run"))
    (run / "run.json").write_bytes(blob)
    with pytest.raises(UsageError):
        runs.load(run)
