"""The probe guest offline: its XML, its name, its data file, and a lifecycle that never leaves it.

A fake host records every libvirt call the probe makes and can fail at each step; whatever fails,
the probe is destroyed on both ends and its private directory is gone afterwards.
"""

from __future__ import annotations

import dataclasses
import io
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import sample_reports as samples

from verifier import probe
from verifier.cli import main
from verifier.cli import probe as cli_probe
from verifier.errors import EnvironmentProblem
from verifier.hypervisor.probes import domain_types, security_labels
from verifier.jobs import Backends, Finished, JobOptions
from verifier.model import JobProgress, MigrationRequest, MigrationResult, MigrationStatus
from verifier.store import Stored

CAPS = """<capabilities>
  <host><uuid>x</uuid>
    <secmodel><model>apparmor</model><doi>0</doi></secmodel>
    <secmodel><model>dac</model><doi>0</doi>
      <baselabel type='kvm'>+64055:+994</baselabel><baselabel type='qemu'>+64055:+995</baselabel>
    </secmodel>
  </host>
  <guest><os_type>hvm</os_type>
    <arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
  <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>
</capabilities>"""


class FakeHost:
    """ProbeHost that records calls; FAIL_AT names the call that raises."""

    def __init__(self, fail_at: str = "", left: tuple[str, ...] = (), kvm: bool = True) -> None:
        self.calls: list[str] = []
        self.fail_at, self.left, self.kvm = fail_at, left, kvm
        self.xml = ""
        self.data_seen: dict[str, Any] = {}

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_at == name:
            raise KeyboardInterrupt if name == "interrupt" else EnvironmentProblem(f"{name} failed")

    def source_hostname(self) -> str:
        return "node1.example.com"

    def domain_types(self) -> tuple[frozenset[str], frozenset[str]]:
        return frozenset({"qemu", "kvm"}), frozenset({"qemu", "kvm"} if self.kvm else {"qemu"})

    def security_labels(self, virt_type: str) -> tuple[tuple[str, str], ...]:
        return security_labels(CAPS, virt_type)

    def create_transient(self, xml: str) -> None:
        self.xml = xml
        data = Path(re.search(r"file=([^,]+),", xml).group(1))  # type: ignore[union-attr]
        self.data_seen = {
            "path": data,
            "mode": stat.S_IMODE(data.stat().st_mode),
            "dir_mode": stat.S_IMODE(data.parent.stat().st_mode),
            "size": data.stat().st_size,
        }
        self._step("create")

    def migratable_xml(self, name: str) -> str:
        self._step("migratable_xml")
        return self.xml.replace("<domain ", "<domain id='7' ")

    def destroy_everywhere(self, name: str) -> tuple[str, ...]:
        self.calls.append(f"destroy {name}")
        if self.fail_at == "destroy":
            raise RuntimeError("libvirt went away")
        return self.left


class FakeHypervisor:
    def __init__(self, source_uri: str, dest_uri: str) -> None:
        self.requests: list[MigrationRequest] = []

    def __enter__(self) -> FakeHypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check_domain(self, vm: str) -> None:
        pass

    def destination_hostname(self) -> str:
        return "node2"

    def source_hostname(self) -> str:
        return "node1"

    def migrate(self, req: MigrationRequest, progress: Any) -> MigrationResult:
        self.requests.append(req)
        progress(JobProgress())
        return MigrationResult(MigrationStatus.COMPLETED, None)

    def memory_bytes(self, vm: str) -> int | None:
        return 352 << 20

    def dirty_rate(self, vm: str, seconds: int = 1) -> float | None:
        return 0.0


def backends() -> Backends:
    return Backends(
        topology=lambda: samples.TOPO,
        routes=None,  # type: ignore[arg-type]
        hypervisor=FakeHypervisor,
        capture=None,  # type: ignore[arg-type]
        dest_config=None,  # type: ignore[arg-type]
    )


SPEC = probe.ProbeSpec("verify-path-probe-0badcafe", 2, kvm=False, owner=None, unconfined=("apparmor",))


def run(host: FakeHost, tmp_path: Path, fail: BaseException | None = None) -> tuple[probe.ProbeOutcome, list[Any]]:
    seen: list[Any] = []
    warnings: list[str] = []

    def conduct(opts: JobOptions, b: Backends) -> Finished:
        with b.hypervisor(opts.connect_uri, opts.dest_uri) as hv:
            hv.check_domain(opts.vm)
            seen.append((opts, hv, hv.migrate(MigrationRequest(opts.vm, opts.dest_uri), lambda _p: None)))
            seen.append(hv.memory_bytes(opts.vm))  # not the probe's business: passed through
        if fail is not None:
            raise fail
        return Finished(samples.san_pass(), Stored(None))

    outcome = probe.run(
        JobOptions("node1", "node2", dest_uri="qemu+tcp://node2/system"),
        backends(),
        host,
        SPEC,
        conduct,
        warn=warnings.append,
        tmp_base=tmp_path,
    )
    return outcome, [*seen, warnings]


def test_names_are_unique_and_marked() -> None:
    assert re.fullmatch(r"verify-path-probe-[0-9a-f]{8}", probe.probe_name())
    assert probe.probe_name() != probe.probe_name()
    assert probe.probe_name("abc") == "verify-path-probe-abc"


def test_the_xml_has_no_disk_no_network_and_loads_random_memory(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, mib=256)
    root = ET.fromstring(probe.domain_xml(spec, tmp_path / "a'b&c.bin"))
    assert root.get("type") == "qemu" and root.findtext("name") == "verify-path-probe-0badcafe"
    assert root.find("memory").text == str(64 + 256 + 32)  # type: ignore[union-attr]
    devices = root.find("devices")
    assert devices is not None and {d.tag for d in devices} == {"controller", "memballoon"}
    assert root.find("seclabel").attrib == {"type": "none", "model": "apparmor"}  # type: ignore[union-attr]
    args = [a.get("value") for a in root.iter(f"{{{probe.QEMU_NS}}}arg")]
    assert args == ["-device", f"loader,file={tmp_path}/a'b&c.bin,addr=0x4000000,force-raw=on"]
    kvm = ET.fromstring(probe.domain_xml(dataclasses.replace(spec, kvm=True, unconfined=()), tmp_path / "x"))
    assert kvm.get("type") == "kvm" and kvm.find("seclabel") is None


def test_the_destination_xml_has_no_loader(tmp_path: Path) -> None:
    xml = probe.domain_xml(SPEC, tmp_path / "x.bin")
    out = probe.without_loader(xml)
    assert "loader" not in out and "commandline" not in out
    assert ET.fromstring(out).findtext("name") == SPEC.name


def test_kvm_only_when_the_device_opens_the_cpu_has_it_and_both_hosts_offer_it(tmp_path: Path) -> None:
    dev, cpu = tmp_path / "kvm", tmp_path / "cpuinfo"
    dev.write_text("")
    cpu.write_text("processor\t: 0\nflags\t\t: fpu sse2 vmx\n")
    assert probe.kvm_usable(dev, cpu)
    cpu.write_text("flags\t\t: fpu sse2 hypervisor\n")
    assert not probe.kvm_usable(dev, cpu)
    assert not probe.kvm_usable(tmp_path / "absent", cpu)
    assert probe.plan(FakeHost(), 8, kvm_here=True).kvm
    assert not probe.plan(FakeHost(kvm=False), 8, kvm_here=True).kvm
    tcg = probe.plan(FakeHost(), 8, kvm_here=False)
    assert not tcg.kvm and tcg.owner == (64055, 995) and tcg.unconfined == ("apparmor",)


def test_capabilities_parsing() -> None:
    assert domain_types(CAPS) == {"qemu", "kvm"} and domain_types(CAPS, "i686") == {"qemu"}
    assert security_labels(CAPS, "kvm") == (("apparmor", ""), ("dac", "+64055:+994"))
    assert probe.dac_owner("+64055:+994") == (64055, 994)
    assert probe.dac_owner("") is None and probe.dac_owner("root:root") is None


def test_a_successful_probe_is_destroyed_and_its_file_removed(tmp_path: Path) -> None:
    host = FakeHost()
    outcome, (first, memory, warnings) = run(host, tmp_path)
    assert host.calls == ["create", "migratable_xml", f"destroy {SPEC.name}"]
    assert host.data_seen["mode"] == 0o600 and host.data_seen["dir_mode"] == 0o700
    assert host.data_seen["size"] == 2 << 20
    assert not host.data_seen["path"].parent.exists() and list(tmp_path.iterdir()) == []
    opts, hv, _result = first
    assert opts.vm == SPEC.name and memory == 352 << 20
    if "dest_xml" in {f.name for f in dataclasses.fields(MigrationRequest)}:
        sent = hv.inner.requests[0]
        assert "loader" not in sent.dest_xml and SPEC.name in sent.dest_xml
    if "probe" in {f.name for f in dataclasses.fields(JobOptions)}:
        assert opts.probe is True
    assert outcome.left_behind == () and warnings == []
    assert outcome.finished.report.verdict == "pass"


@pytest.mark.parametrize("step", ["create", "migratable_xml"])
def test_a_failing_step_still_destroys_on_both_ends(step: str, tmp_path: Path) -> None:
    host = FakeHost(fail_at=step)
    with pytest.raises(EnvironmentProblem, match=f"{step} failed"):
        run(host, tmp_path)
    assert host.calls[-1] == f"destroy {SPEC.name}" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [EnvironmentProblem("the job failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_job_still_destroys_the_probe(error: BaseException, tmp_path: Path) -> None:
    host = FakeHost()
    with pytest.raises(type(error)):
        run(host, tmp_path, fail=error)
    assert host.calls == ["create", "migratable_xml", f"destroy {SPEC.name}"]
    assert list(tmp_path.iterdir()) == []


def test_a_probe_that_cannot_be_destroyed_is_named(tmp_path: Path) -> None:
    host = FakeHost(left=(f"{SPEC.name} on the destination qemu+tcp://node2/system: timed out",))
    outcome, (*_, warnings) = run(host, tmp_path)
    assert outcome.left_behind == host.left
    assert warnings == [
        f"verify-path: probe left behind: {host.left[0]}; remove it with `virsh destroy {SPEC.name}` there"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_destroy_that_raises_does_not_mask_the_jobs_error(tmp_path: Path) -> None:
    host = FakeHost(fail_at="destroy")
    with pytest.raises(EnvironmentProblem, match="the job failed"):
        run(host, tmp_path, fail=EnvironmentProblem("the job failed"))
    assert list(tmp_path.iterdir()) == []


def test_the_node_must_be_this_host() -> None:
    probe.check_node("node1", "node1.example.com")
    probe.check_node("NODE1.example.com", "node1")
    with pytest.raises(Exception, match="a probe migrates from the host it runs on"):
        probe.check_node("node2", "node1")


def test_the_cli_shares_the_jobs_options_and_refuses_bad_values() -> None:
    help_text = cli_probe.parser({}).format_help()
    assert help_text.startswith("usage: verify-path probe")
    assert "NODE_OR_URI" in help_text and "--memory" in help_text
    for option in ("--via", "--bandwidth", "--round-trip", "--expect", "--captures-dir"):
        assert option in help_text
    for argv, message in (
        (["probe", "node1", "node2", "--dry-run"], "no dry run"),
        (["probe", "node1", "node2", "--memory", "0"], "--memory must be"),
        (["probe", "node1"], "probe:"),
    ):
        err = io.StringIO()
        assert main(argv, env={}, stdout=io.StringIO(), stderr=err) == 2, argv
        assert message in err.getvalue()
