"""count_files on capture files written by other tools (../shared/external-captures/), against tshark.

The oracle is tshark's TCP tap, the one behind `tshark -z conv,tcp`: conversations and frames per
conversation from `-z conv,tcp` itself, and the exact frame lengths behind its rounded byte columns
from a Lua listener on the same tap. Files tshark cannot read are checked against what the
directory's README documents. These are not lab tests: they skip when the directory is absent.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from verifier.analyze import count_files
from verifier.capture.records import PcapError
from verifier.model import CaptureResult, InterfaceCount

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "external-captures"
# Port 0 is on the wire (rotation-rawip.pcap sends a SYN to it); --ports 1-65535 leaves it out.
ALL_PORTS = ((0, 65535),)
FILES = sorted(p.name for p in EXTERNAL.glob("*.pcap*")) if EXTERNAL.is_dir() else []
REFUSED = {
    "wlanmon-80211.pcap": "link type 105 (IEEE 802.11) is not decoded",
    "pcap-invalid-version-1.pcap": "unsupported pcap version 1.4",
    "shb-option-too-long.pcapng": "block length inconsistent at offset 0",
}

pytestmark = [
    pytest.mark.skipif(not EXTERNAL.is_dir(), reason=f"{EXTERNAL} not present"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]

TAP_LUA = """
local tap = Listener.new("tcp")
function tap.packet(pinfo, tvb, tcph)
  print(string.format("TAP\\t%d\\t%s\\t%d\\t%s\\t%d\\t%d", pinfo.number, tostring(pinfo.src), pinfo.src_port,
                      tostring(pinfo.dst), pinfo.dst_port, pinfo.len))
end
"""
CONV_ROW = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+) [\d,.]+ \w+\s+(\d+) [\d,.]+ \w+\s+(\d+) ")

Endpoint = tuple[str, int]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=120)


def conversations(path: Path) -> dict[frozenset[Endpoint], int]:
    """`tshark -z conv,tcp`: frames per conversation (its byte columns are rounded to 4 digits)."""
    out = _run("-r", str(path), "-q", "-z", "conv,tcp").stdout
    convs = {}
    for line in out.splitlines():
        m = CONV_ROW.match(line)
        if m:
            convs[frozenset({(m[1], int(m[2])), (m[3], int(m[4]))})] = int(m[7])
    return convs


def tapped(path: Path, tmp_path: Path) -> dict[int, tuple[Endpoint, Endpoint, int]]:
    """Every frame the TCP tap saw: number -> (source, destination, frame length on the wire)."""
    script = tmp_path / "tap.lua"
    script.write_text(TAP_LUA)
    out = _run("-q", "-r", str(path), "-X", f"lua_script:{script}").stdout
    frames = {}
    for line in out.splitlines():
        if line.startswith("TAP\t"):
            _, number, src, sport, dst, dport, length = line.split("\t")
            frames[int(number)] = ((src, int(sport)), (dst, int(dport)), int(length))
    return frames


def recorded_direction(path: Path) -> dict[int, bool]:
    """Frames whose direction the file records: epb_flags (1 in, 2 out), else the cooked packet type."""
    out = _run("-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "frame.packet_flags_direction")
    out2 = _run("-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "sll.pkttype")
    flags = dict(line.split("\t") for line in out.stdout.splitlines())
    pkttype = dict(line.split("\t") for line in out2.stdout.splitlines())
    known = {}
    for number, flag in flags.items():
        if flag in ("1", "2"):
            known[int(number)] = flag == "2"
        elif pkttype.get(number, ""):
            known[int(number)] = pkttype[number] == "4"
    return known


def assert_counts_like_tshark(res: CaptureResult, path: Path, tmp_path: Path) -> None:
    convs = conversations(path)
    frames = tapped(path, tmp_path)
    assert sum(convs.values()) == len(frames)  # the Lua listener sees what conv,tcp counts
    ours = {frozenset({(c.client, c.client_port), (c.server, c.server_port)}): c for c in res.connections}
    assert {k: c.packets for k, c in ours.items()} == convs
    # Bytes on the wire, exactly, per direction: what the file records, else client -> server is outgoing.
    direction = recorded_direction(path)
    clients = {frozenset({c.client_ep, c.server_ep}): c.client_ep for c in _endpoints(res)}
    tx = rx = tx_frames = 0
    for number, (src, dst, length) in frames.items():
        out = direction.get(number, clients[frozenset({src, dst})] == src)
        tx, rx = (tx + length, rx) if out else (tx, rx + length)
        tx_frames += out
    assert sum(i.bytes_tx for i in res.interfaces) == tx
    assert sum(i.bytes_rx for i in res.interfaces) == rx
    assert sum(i.packets_tx for i in res.interfaces) == tx_frames
    assert sum(i.packets for i in res.interfaces) == len(frames)


def _counts(res: CaptureResult) -> list[InterfaceCount]:
    """The interface counts without the file each came from."""
    return [dataclasses.replace(i, pcap=None) for i in res.interfaces]


class _Ends:
    def __init__(self, client: Endpoint, server: Endpoint) -> None:
        self.client_ep, self.server_ep = client, server


def _endpoints(res: CaptureResult) -> list[_Ends]:
    return [_Ends((c.client, c.client_port), (c.server, c.server_port)) for c in res.connections]


@pytest.mark.parametrize("name", [f for f in FILES if f not in REFUSED])
def test_counts_what_tshark_counts(name: str, tmp_path: Path) -> None:
    path = EXTERNAL / name
    res = count_files([(path, path.stem)], ALL_PORTS)
    assert_counts_like_tshark(res, path, tmp_path)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_a_message_naming_the_problem(name: str) -> None:
    path = EXTERNAL / name
    # tshark refuses the broken ones too; it reads 802.11 but has no TCP to count there either.
    assert _run("-r", str(path)).returncode != 0 or not conversations(path)
    with pytest.raises(PcapError) as err:
        count_files([(path, "x")], ALL_PORTS)
    assert str(path) in err.value.message and REFUSED[name] in err.value.message
    assert err.value.hint and "\n" not in err.value.one_line()


def test_80211_refusal_names_what_is_decoded() -> None:
    with pytest.raises(PcapError) as err:
        count_files([(EXTERNAL / "wlanmon-80211.pcap", "wlan0")], ALL_PORTS)
    assert "Ethernet" in (err.value.hint or "") and "no-stream" not in err.value.one_line()


def test_cut_short_counts_the_complete_records_and_warns(tmp_path: Path) -> None:
    cut = EXTERNAL / "ftp_bruteforce-cut.pcap"
    proc = _run("-r", str(cut), "-q")
    assert "cut short in the middle of a packet" in proc.stderr
    res = count_files([(cut, "eth0")], ALL_PORTS)
    assert_counts_like_tshark(res, cut, tmp_path)
    (problem,) = res.problems
    assert str(cut) in problem and "offset 36353" in problem and "cut short in the middle of a packet" in problem
    assert "399 complete records" in problem
    # The same as the whole file's first 399 frames.
    head = tmp_path / "head.pcap"
    subprocess.run(["editcap", "-r", str(EXTERNAL / "ftp_bruteforce.pcap"), str(head), "1-399"], check=True)
    first = count_files([(head, "eth0")], ALL_PORTS)
    assert _counts(first) == _counts(res) and not first.problems


def test_gzipped_files_are_read_directly(tmp_path: Path) -> None:
    for name in ("ftp_bruteforce.pcap", "ldap_modify-request.pcapng", "ftp_bruteforce-cut.pcap"):
        gz = tmp_path / (name + ".gz")
        gz.write_bytes(gzip.compress((EXTERNAL / name).read_bytes()))
        plain = count_files([(EXTERNAL / name, "eth0")], ALL_PORTS)
        res = count_files([(gz, "eth0")], ALL_PORTS)
        assert _counts(res) == _counts(plain) and res.connections == plain.connections
        assert len(res.problems) == len(plain.problems)
        assert_counts_like_tshark(res, gz, tmp_path)  # tshark reads gzip too


def test_raw_ip_port_zero_is_outside_1_65535() -> None:
    # The frame "lost" on rotation-rawip.pcap: a SYN to port 0, which --ports 1-65535 does not watch.
    path = EXTERNAL / "rotation-rawip.pcap"
    res = count_files([(path, "raw")], ((1, 65535),))
    raw = res.get("raw")
    assert raw is not None and raw.packets == 19 and raw.other_bytes == 40
    assert count_files([(path, "raw")], ALL_PORTS).interfaces[0].packets == 20


def test_the_same_file_twice_on_one_interface_counts_once(tmp_path: Path) -> None:
    path = EXTERNAL / "ftp_bruteforce.pcap"
    once = count_files([(path, "eth0")], ALL_PORTS)
    copy = tmp_path / "copy.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(copy)], check=True)
    twice = count_files([(path, "eth0"), (copy, "eth0")], ALL_PORTS)
    assert _counts(twice) == _counts(once) and twice.connections == once.connections
    # Two interfaces (a bridge and its port): each counts every frame; each connection counts once.
    both = count_files([(path, "br0"), (copy, "eth0")], ALL_PORTS)
    br0, eth0 = both.get("br0"), both.get("eth0")
    assert br0 is not None and eth0 is not None and br0.packets == eth0.packets == once.interfaces[0].packets
    assert [c.packets for c in both.connections] == [c.packets for c in once.connections]


def test_multi_section_pcapng_keeps_interface_names() -> None:
    path = EXTERNAL / "pcapng-test202-be.pcapng"
    res = count_files([(path, "test202")], ALL_PORTS)
    # eth0 in all three sections is one interface; null1 (BSD loopback) is not decoded, and says so.
    assert {i.name for i in res.interfaces} == {"eth0", "silly ethernet interface 2"}
    assert res.problems and all("link type 0 (BSD loopback)" in p and "null1" in p for p in res.problems)
