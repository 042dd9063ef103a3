"""Socket ownership on real sockets: sock_diag listing, /proc lookups and the sampler thread.

Runs as an ordinary user, without the lab: the "QEMU" is a Python child whose argv[0] and
`-name guest=fakevm,debug-threads=on` arguments look like libvirt's QEMU command line.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from verifier.model.ownership import Endpoints, canonical_ip, flow_key
from verifier.owners import (
    OwnerFinder,
    OwnershipSampler,
    ProcessIndex,
    find_libvirtd_pids,
    find_qemu_pid,
    guest_name,
    owner_of_inode,
    socket_inodes,
)
from verifier.owners.domains import DomainsSampler
from verifier.owners.pacing import FAST_FOR, Pacer
from verifier.sockdiag import TcpSocket, TcpSocketLister, tcp_sockets

LO = "127.0.0.1"
# The child obeys one command per line on stdin and answers on stdout; EOF ends it.
CHILD = """
import socket, sys
held = {}
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "connect":
        s = socket.create_connection(("127.0.0.1", int(arg)))
        held[s.getsockname()[1]] = s
        print(s.getsockname()[1], flush=True)
    elif cmd == "listen":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        held[s.getsockname()[1]] = s
        print(s.getsockname()[1], flush=True)
    elif cmd == "socket":  # created, not yet connected: no dump shows it
        held["pending"] = socket.socket()
        print("ok", flush=True)
    elif cmd == "connect-pending":
        s = held.pop("pending")
        s.connect(("127.0.0.1", int(arg)))
        held[s.getsockname()[1]] = s
        print(s.getsockname()[1], flush=True)
    elif cmd == "close":
        held.pop(int(arg)).close()
        print("closed", flush=True)
    elif cmd == "ping":
        print("pong", flush=True)
    elif cmd == "comm":
        with open("/proc/self/comm", "w") as f:
            f.write(arg)
        print("ok", flush=True)
"""


class Child:
    def __init__(self, program: Path, extra: list[str]) -> None:
        self.proc = subprocess.Popen(
            [str(program), "-c", CHILD, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def end(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Spawn = Callable[[str, list[str]], Child]


@pytest.fixture
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawn]:
    """Children run Python through a symlink named like the program they pose as: argv[0] and
    comm then read like the real thing, and Python still finds its standard library."""
    bin_dir = tmp_path_factory.mktemp("bin")
    children: list[Child] = []

    def start(name: str, extra: list[str]) -> Child:
        program = bin_dir / name
        if not program.exists():
            program.symlink_to(sys.executable)
        children.append(Child(program, extra))
        # Wait until the child answers: only then is it certainly the program it poses as in
        # /proc (a check straight after fork could race its exec under load).
        assert children[-1].ask("ping") == "pong"
        return children[-1]

    yield start
    for child in children:
        child.end()


def fake_qemu(spawn: Spawn, guest: str = "fakevm") -> Child:
    return spawn("qemu-system-x86_64", ["-name", f"guest={guest},debug-threads=on", "-machine", "pc"])


@pytest.fixture
def server() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind((LO, 0))
    s.listen()
    yield s
    s.close()


def four(s: TcpSocket) -> tuple[str, int, str, int]:
    return (s.local, s.local_port, s.remote, s.remote_port)


def port(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def pid_file(run_dir: Path, vm: str, pid: int) -> None:
    (run_dir / "qemu").mkdir(exist_ok=True)
    (run_dir / "qemu" / f"{vm}.pid").write_text(f"{pid}\n")


def test_tcp_sockets_lists_this_process_sockets_with_inode_and_uid(server: socket.socket) -> None:
    client = socket.create_connection((LO, port(server)))
    accepted, _ = server.accept()
    with client, accepted:
        by_inode = {s.inode: s for s in tcp_sockets()}
        listener = by_inode[os.fstat(server.fileno()).st_ino]
        assert (four(listener), listener.state, listener.uid) == (
            (LO, port(server), "0.0.0.0", 0),
            "LISTEN",
            os.getuid(),
        )
        mine = by_inode[os.fstat(client.fileno()).st_ino]
        assert four(mine) == (LO, port(client), LO, port(server))
        assert mine.state == "ESTABLISHED"
        theirs = by_inode[os.fstat(accepted.fileno()).st_ino]
        assert four(theirs) == (LO, port(server), LO, port(client))


def test_a_dump_of_many_sockets_equals_what_ss_lists() -> None:
    """Independent oracle: iproute2's ss. 700 IPv4 and 50 IPv6 listeners span several netlink
    reads; every one must come back once, with its inode, and nothing that ss does not list."""
    held: list[socket.socket] = []
    try:
        for family, addr, n in ((socket.AF_INET, LO, 700), (socket.AF_INET6, "::1", 50)):
            for _ in range(n):
                s = socket.socket(family)
                held.append(s)
                s.bind((addr, 0))
                s.listen()
        ours = {(s.local, s.local_port, s.inode) for s in tcp_sockets() if s.state == "LISTEN"}
        out = subprocess.run(["ss", "-tlnHe"], capture_output=True, text=True, check=True).stdout
        theirs = set()
        for line in out.splitlines():
            fields = line.split()
            host, _, lport = fields[3].rpartition(":")
            inode = next(int(f[4:]) for f in fields if f.startswith("ino:"))
            theirs.add((host.strip("[]").split("%")[0], int(lport), inode))
        mine = {(addr, port(s), os.fstat(s.fileno()).st_ino) for s in held for addr in [s.getsockname()[0]]}
        assert mine <= ours
        assert {(canonical(h), p, i) for h, p, i in theirs} == ours
    finally:
        for s in held:
            s.close()


def canonical(host: str) -> str:
    return "0.0.0.0" if host == "*" else host


def test_kernel_port_filter_returns_exactly_the_sockets_in_range(server: socket.socket) -> None:
    other = socket.socket()
    other.bind((LO, 0))
    other.listen()
    p, q = port(server), port(other)
    with other, socket.create_connection((LO, p)) as client, server.accept()[0]:
        c = port(client)
        on_p = {(LO, p, "0.0.0.0", 0), (LO, c, LO, p), (LO, p, LO, c)}
        assert {four(s) for s in tcp_sockets([(p, p)])} == on_p
        # Several ranges; a range matches the local port or the remote one.
        assert {four(s) for s in tcp_sockets([(q, q), (p, p)])} == on_p | {(LO, q, "0.0.0.0", 0)}
        assert {four(s) for s in tcp_sockets([(c, c)])} == {(LO, c, LO, p), (LO, p, LO, c)}
        assert [s for s in tcp_sockets([(p + 1, p + 1), (p - 1, p - 1)]) if p in (s.local_port, s.remote_port)] == []
        assert tcp_sockets([]) == ()
        with TcpSocketLister() as lister:
            assert set(lister([(p, p)])) == {s for s in lister() if p in (s.local_port, s.remote_port)}


def test_a_request_the_kernel_refuses_raises_with_its_errno(server: socket.socket) -> None:
    with TcpSocketLister() as lister:
        assert lister([(1, 2)]) == ()  # encodes and keeps the request for this filter
        bad = lister._requests[((1, 2),)]
        bytecode_at = 16 + 60 + 4  # netlink header, struct inet_diag_req, the attribute's header
        bad[bytecode_at] = 0xFF  # no such bytecode op: the kernel's audit rejects the filter
        with pytest.raises(OSError, match="sock_diag refused the request: EINVAL") as caught:
            lister([(1, 2)])
        assert caught.value.errno == errno.EINVAL
        # The socket is still usable: the next dump works.
        assert os.fstat(server.fileno()).st_ino in {s.inode for s in lister()}


def test_a_lookup_finds_one_connection_s_socket_and_nothing_else(server: socket.socket) -> None:
    """The kernel's hash lookup for one 4-tuple (what a named wake-up asks): the very socket, from
    either end; nothing for a 4-tuple no socket has, though a listener holds its port."""
    p = port(server)
    with socket.create_connection((LO, p)) as client, server.accept()[0] as accepted, TcpSocketLister() as lister:
        c = port(client)
        mine = lister.lookup((LO, c, LO, p))
        theirs = lister.lookup((LO, p, LO, c))
        assert mine is not None and four(mine) == (LO, c, LO, p) and mine.state == "ESTABLISHED"
        assert mine.inode == os.fstat(client.fileno()).st_ino
        assert theirs is not None and theirs.inode == os.fstat(accepted.fileno()).st_ino
        assert lister.lookup((LO, p, LO, c + 1 if c < 65535 else c - 1)) is None  # the listener is not it
        assert lister.lookup(("203.0.113.9", 40000, "203.0.113.10", p)) is None
        # A dual-stack socket's IPv4 connection is found by its IPv4 4-tuple.
        v6 = socket.socket(socket.AF_INET6)
        with v6:
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            v6.bind(("::", 0))
            v6.listen()
            with socket.create_connection((LO, v6.getsockname()[1])) as v4, v6.accept()[0] as mapped:
                found = lister.lookup((LO, v6.getsockname()[1], LO, port(v4)))
                assert found is not None and found.inode == os.fstat(mapped.fileno()).st_ino


def woken_sampler(spawn: Spawn, server: socket.socket, tmp_path: Path) -> tuple[Child, OwnershipSampler]:
    """A fake QEMU and a sampler started as with the eBPF engine, which announces new connections:
    fast looks at 0.01 s, idle ones never within a test, no periodic dump."""
    qemu = fake_qemu(spawn)
    assert qemu.ask("ping") == "pong"  # QEMU's program runs (not a fork of ours before its exec)
    pid_file(tmp_path, "fakevm", qemu.pid)
    ranges = [(port(server), port(server))]
    sampler = OwnershipSampler("fakevm", [tmp_path], interval=0.01, ports=ranges, dump_every=600, idle_interval=60)
    sampler.start(woken=True)
    # The first look (at start) past reading QEMU's descriptors before a test connects: on a loaded
    # machine the thread may start late, and a look that finds QEMU's connection before its
    # wake-up rightly dumps for it.
    assert wait_for(lambda: sampler._last_pid == qemu.pid, timeout=10, interval=0.005)
    return qemu, sampler


def test_a_wake_up_that_names_its_connections_looks_them_up_without_a_dump(
    spawn: Spawn, server: socket.socket, tmp_path: Path
) -> None:
    qemu, sampler = woken_sampler(spawn, server, tmp_path)
    try:
        local = int(qemu.ask(f"connect {port(server)}"))
        with server.accept()[0]:
            sampler.wake([(LO, local, LO, port(server))])  # as the eBPF engine names a new flow
            time.sleep(0.3)
            assert [k[1] for k in sampler._flows] == [local]
            assert sampler._dumps == 0  # QEMU's new socket came with the lookup: no dump for it
            assert sampler._samples == 2  # settled (QEMU's own): no fast looks after the wake-up
            ownership = sampler.stop()
    finally:
        sampler.stop()
    assert ownership.dumps == 1  # the last look's only
    assert [(f.local_port, f.owner) for f in ownership.flows] == [(local, "qemu (fakevm)")]


def test_ipv4_mapped_addresses_come_back_as_ipv4() -> None:
    assert canonical_ip("::ffff:127.0.0.1") == LO
    assert canonical_ip("2001:DB8:0:0::1") == "2001:db8::1"
    try:
        v6 = socket.socket(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 in this kernel")
    with v6:
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        v6.bind(("::ffff:127.0.0.1", 0))
        v6.listen()
        v6_port = v6.getsockname()[1]
        with socket.create_connection((LO, v6_port)) as client, v6.accept()[0] as accepted:
            with TcpSocketLister() as lister:
                by_inode = {s.inode: s for s in lister()}
            assert four(by_inode[os.fstat(v6.fileno()).st_ino]) == (LO, v6_port, "::", 0)
            assert four(by_inode[os.fstat(accepted.fileno()).st_ino]) == (LO, v6_port, LO, port(client))


def test_guest_name_reads_qemu_name_option() -> None:
    assert guest_name(["qemu", "-name", "guest=vm01,debug-threads=on"]) == "vm01"
    assert guest_name(["qemu", "-name", "vm02,process=qemu:vm02"]) == "vm02"
    assert guest_name(["qemu", "-name", "debug-threads=on,guest=a,,b"]) == "a,b"
    assert guest_name(["qemu", "-machine", "guest=vm01"]) is None
    assert guest_name(["qemu", "-name"]) is None


def test_flow_key_ignores_orientation_and_address_spelling() -> None:
    assert flow_key("::ffff:127.0.0.1", 40000, LO, 49152) == flow_key(LO, 49152, LO, 40000)
    assert flow_key(LO, 40000, LO, 49152) != flow_key(LO, 40001, LO, 49152)


def test_find_qemu_pid_by_pid_file_then_by_scan(spawn: Spawn, tmp_path: Path) -> None:
    qemu = fake_qemu(spawn)
    pid_file(tmp_path, "fakevm", qemu.pid)
    assert find_qemu_pid("fakevm", [tmp_path / "absent", tmp_path]) == qemu.pid
    assert find_qemu_pid("fakevm", []) == qemu.pid
    pid_file(tmp_path, "fakevm", os.getpid())  # stale: names a process that is not that QEMU
    assert find_qemu_pid("fakevm", [tmp_path]) == qemu.pid
    assert find_qemu_pid("othervm", [tmp_path]) is None
    # The same -name on a program that is not QEMU does not count.
    spawn("python3", ["-name", "guest=notqemu"]).ask("comm notqemu")
    assert find_qemu_pid("notqemu", []) is None


def test_socket_inodes_are_exactly_the_child_connection(spawn: Spawn, server: socket.socket) -> None:
    qemu = fake_qemu(spawn)
    child_port = int(qemu.ask(f"connect {port(server)}"))
    accepted, _ = server.accept()
    with accepted:
        inodes = socket_inodes(qemu.pid)
        owned = {four(s) for s in tcp_sockets() if s.inode in inodes}
        assert owned == {(LO, child_port, LO, port(server))}
        process = owner_of_inode(next(iter(inodes)))
        assert process is not None and (process.pid, process.owner) == (qemu.pid, "qemu (fakevm)")
    qemu.end()
    assert socket_inodes(qemu.pid) == frozenset()


def test_find_libvirtd_pids_finds_a_daemon_by_name(spawn: Spawn) -> None:
    daemon = spawn("some-helper", [])
    assert daemon.pid not in find_libvirtd_pids()
    assert daemon.ask("comm virtqemud") == "ok"
    assert daemon.pid in find_libvirtd_pids()


def fake_proc(tmp_path: Path, *processes: tuple[str, str, str, bytes]) -> Path:
    """A /proc tree on disk: (pid, comm, network namespace link, cmdline) each, no descriptors yet."""
    proc = tmp_path / "proc"
    for pid, comm, netns, cmdline in processes:
        (proc / pid / "ns").mkdir(parents=True)
        (proc / pid / "fd").mkdir()
        (proc / pid / "comm").write_text(comm + "\n")
        (proc / pid / "cmdline").write_bytes(cmdline)
        (proc / pid / "ns" / "net").symlink_to(netns)
    return proc


def test_process_in_another_network_namespace_is_not_ours(tmp_path: Path) -> None:
    # A /proc tree on disk: pid 100 is the guest's QEMU on the other node (another netns),
    # 200 the one beside us; 300 and 400 are libvirt daemons in ours and in the other.
    qemu_cmdline = b"/usr/bin/qemu-system-x86_64\0-name\0guest=vm01,debug-threads=on\0"
    proc = fake_proc(
        tmp_path,
        ("self", "pytest", "net:[1]", b"pytest\0"),
        ("100", "qemu-system-x86", "net:[2]", qemu_cmdline),
        ("200", "qemu-system-x86", "net:[1]", qemu_cmdline),
        ("300", "virtqemud", "net:[1]", b"/usr/sbin/virtqemud\0"),
        ("400", "libvirtd", "net:[2]", b"/usr/sbin/libvirtd\0"),
    )
    (proc / "200" / "fd" / "3").symlink_to("socket:[555]")
    (proc / "200" / "fd" / "4").symlink_to("/dev/null")
    pid_file(tmp_path, "vm01", 100)
    assert find_qemu_pid("vm01", [tmp_path], proc) == 200
    assert find_libvirtd_pids(proc) == (300,)
    assert socket_inodes(200, proc) == frozenset({555})
    process = ProcessIndex(proc).process(555)
    assert process is not None and (process.pid, process.owner) == (200, "qemu (vm01)")
    assert owner_of_inode(556, proc) is None
    # A migration socket libvirt's daemon connected and is handing to QEMU: both hold it for a
    # moment, and the daemon has the lower pid; the socket is QEMU's.
    (proc / "300" / "fd" / "7").symlink_to("socket:[777]")
    (proc / "200" / "fd" / "9").symlink_to("socket:[777]")
    process = ProcessIndex(proc).process(777)
    assert process is not None and (process.pid, process.owner) == (200, "qemu (vm01)")
    (proc / "200" / "fd" / "9").unlink()
    process = ProcessIndex(proc).process(777)
    assert process is not None and (process.pid, process.owner) == (300, "virtqemud")
    # Restricted to our namespace, the other node's QEMU (pid 100, net:[2]) owns nothing here.
    (proc / "100" / "fd" / "3").symlink_to("socket:[888]")
    assert ProcessIndex(proc).process(888) is not None
    assert ProcessIndex(proc, "net:[1]").process(888) is None
    assert ProcessIndex(proc, "net:[1]").process(777) is not None
    # One sampler's walks read each process's namespace once, then trust what they saw.
    seen: dict[int, str | None] = {}
    assert ProcessIndex(proc, "net:[1]", seen).process(888) is None
    assert (seen[100], seen[200]) == ("net:[2]", "net:[1]")
    (proc / "100" / "ns" / "net").unlink()
    (proc / "100" / "ns" / "net").symlink_to("net:[1]")
    assert ProcessIndex(proc, "net:[1]", seen).process(888) is None  # not read again
    assert ProcessIndex(proc, "net:[1]").process(888) is not None  # a walk of its own reads it


def test_a_known_programs_next_connection_is_found_without_a_walk(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        ("self", "pytest", "net:[1]", b"pytest\0"),
        ("100", "glusterfsd", "net:[1]", b"glusterfsd\0"),
        ("200", "backup-agent", "net:[1]", b"backup-agent\0"),
        ("300", "libvirtd", "net:[1]", b"libvirtd\0"),
    )
    walks: list[int] = []

    def walk(*args: Any) -> ProcessIndex:
        walks.append(1)
        return ProcessIndex(*args)

    finder = OwnerFinder(proc, "net:[1]", walk)
    (proc / "100" / "fd" / "3").symlink_to("socket:[501]")
    found = finder.find(501)
    assert found is not None and (found.pid, found.name, len(walks)) == (100, "glusterfsd", 1)
    # The brick's next client: its descriptors alone, no walk; the same look or a later one.
    (proc / "100" / "fd" / "4").symlink_to("socket:[502]")
    finder.new_look()
    found = finder.find(502)
    assert found is not None and (found.pid, len(walks)) == (100, 1)
    # Another program's: a walk, one per look however many inodes it is asked for.
    (proc / "200" / "fd" / "3").symlink_to("socket:[601]")
    (proc / "200" / "fd" / "4").symlink_to("socket:[602]")
    (proc / "300" / "fd" / "3").symlink_to("socket:[701]")
    finder.new_look()
    assert [finder.find(i).pid for i in (601, 701)] == [200, 300]  # type: ignore[union-attr]
    assert len(walks) == 2
    # A libvirt daemon is never asked first (it hands sockets to QEMU): its next one walks again.
    (proc / "300" / "fd" / "4").symlink_to("socket:[702]")
    finder.new_look()
    assert finder.find(702).pid == 300 and len(walks) == 3  # type: ignore[union-attr]
    # A known program that exited is dropped; an inode nobody holds is nobody's.
    for link in (proc / "100" / "fd").iterdir():
        link.unlink()
    finder.new_look()
    assert finder.find(999) is None and len(walks) == 4
    assert finder.find(998) is None and len(walks) == 4


def test_sampler_keeps_every_owned_connection_and_names_foreign_listeners(
    spawn: Spawn, server: socket.socket, tmp_path: Path
) -> None:
    qemu = fake_qemu(spawn)
    iperf = spawn("some-server", [])
    assert iperf.ask("comm fakeiperf") == "ok"
    iperf_port = int(iperf.ask("listen"))
    qemu_listen_port = int(qemu.ask("listen"))  # like the destination's incoming listener
    pid_file(tmp_path, "fakevm", qemu.pid)
    first = int(qemu.ask(f"connect {port(server)}"))
    held = [server.accept()[0]]
    ranges = [(port(server), port(server)), (iperf_port, iperf_port), (qemu_listen_port, qemu_listen_port)]
    # dump_every far beyond the test: the second connection must be found because QEMU's
    # descriptor table grew, not by a periodic dump.
    sampler = OwnershipSampler("fakevm", [tmp_path], interval=0.01, ports=ranges, dump_every=600)
    sampler.start()
    try:
        assert wait_for(lambda: sampler._flows, timeout=10, interval=0.01)  # the first look's
        # Opened after sampling started and closed before stop(): only the thread can see it.
        second = int(qemu.ask(f"connect {port(server)}"))
        held.append(server.accept()[0])
        assert wait_for(lambda: len(sampler._flows) == 2, timeout=10, interval=0.01)
        assert qemu.ask(f"close {second}") == "closed"
        time.sleep(0.1)
    finally:
        ownership = sampler.stop()
        for conn in held:
            conn.close()
    assert ownership.problem is None
    assert (ownership.owner_pid, ownership.owner) == (qemu.pid, "qemu (fakevm)")
    assert ownership.samples >= 5
    # The socket table is dumped at the first sample, when QEMU's new socket appears, and at the
    # end: not at every sample (a dump costs ~1 ms of kernel walk; a descriptor read ~30 us).
    assert 3 <= ownership.dumps <= 4 < ownership.samples
    assert 0 < ownership.cpu_s < 1
    assert {(f.local, f.local_port, f.remote, f.remote_port) for f in ownership.flows} == {
        (LO, first, LO, port(server)),
        (LO, second, LO, port(server)),
    }
    assert {(f.pid, f.owner, f.role) for f in ownership.flows} == {(qemu.pid, "qemu (fakevm)", "migration")}
    assert ownership.owns(LO, port(server), LO, second)
    assert not ownership.owns(LO, port(server), LO, iperf_port)
    # Our own listener and the "iperf3" one are foreign; the peer ends of QEMU's connections
    # and QEMU's own listener are not.
    assert {(f.local, f.local_port, f.remote, f.remote_port, f.pid) for f in ownership.foreign} == {
        (LO, port(server), "0.0.0.0", 0, os.getpid()),
        (LO, iperf_port, "0.0.0.0", 0, iperf.pid),
    }
    iperf_flow = next(f for f in ownership.foreign if f.pid == iperf.pid)
    assert (iperf_flow.owner, iperf_flow.role, iperf_flow.state) == ("fakeiperf", "foreign", "LISTEN")


def test_the_last_look_and_the_busy_ports_share_one_unfiltered_dump(
    spawn: Spawn, server: socket.socket, tmp_path: Path
) -> None:
    qemu = fake_qemu(spawn)
    pid_file(tmp_path, "fakevm", qemu.pid)
    gluster = spawn("some-server", [])
    assert gluster.ask("comm fakegluster") == "ok"
    brick = int(gluster.ask("listen"))  # another program on the migration ports
    calls: list[Any] = []
    with TcpSocketLister() as real:

        def lister(ports: Any = None) -> Any:
            calls.append(ports)
            return real(ports)

        sampler = OwnershipSampler("fakevm", [tmp_path], list_sockets=lister, ports=[(brick, brick)])
        sampler.sample(dump=True)  # finds the brick: a foreign listener
        ownership = sampler.stop()  # never started: the last look runs here, in this thread
    # The first look asked the kernel for the ports only; the last one dumped everything once, for
    # itself and for the ports in use that a free migration range must avoid.
    assert calls == [((brick, brick),), None]
    assert {brick, port(server)} <= set(ownership.busy_ports)
    assert [(f.local_port, f.owner) for f in ownership.foreign] == [(brick, "fakegluster")]
    assert ownership.dumps == 2


def test_a_qemu_socket_seen_before_it_connects_is_looked_for_again(
    spawn: Spawn, server: socket.socket, tmp_path: Path
) -> None:
    qemu = fake_qemu(spawn)
    pid_file(tmp_path, "fakevm", qemu.pid)
    sampler = OwnershipSampler(
        "fakevm", [tmp_path], interval=0.05, ports=[(port(server), port(server))], dump_every=600
    )
    sampler.start()
    try:
        assert wait_for(lambda: sampler._samples >= 2, timeout=10, interval=0.01)
        # The sampler dumps for the new socket while it is not connected (no dump lists it), and
        # must look again: the connection comes 0.07 s later, and no periodic dump is due.
        assert qemu.ask("socket") == "ok"
        time.sleep(0.07)
        local = int(qemu.ask(f"connect-pending {port(server)}"))
        with server.accept()[0]:
            assert wait_for(lambda: sampler._flows, timeout=10, interval=0.01)
            seen = sampler._flows.copy()  # before stop(), whose last look would find it anyway
            ownership = sampler.stop()
    finally:
        sampler.stop()
    assert [k[1] for k in seen] == [local]
    assert [(f.local_port, f.owner) for f in ownership.flows] == [(local, "qemu (fakevm)")]


def test_a_woken_sampler_looks_rarely_and_at_once_when_woken(
    spawn: Spawn, server: socket.socket, tmp_path: Path
) -> None:
    qemu, sampler = woken_sampler(spawn, server, tmp_path)
    held = []
    try:
        local = int(qemu.ask(f"connect {port(server)}"))  # not accepted yet: in the accept queue
        time.sleep(0.3)
        # Idle: one look at start, none since (at `interval` it would have looked ~30 times).
        assert (sampler._samples, sampler._flows) == (1, {})
        sampler.wake()
        assert wait_for(lambda: sampler._flows, timeout=10, interval=0.01)
        assert [k[1] for k in sampler._flows] == [local]
        # The server's end is nobody's yet (established, no inode, as a migration the incoming
        # QEMU has not accepted): fast looks after the wake-up, for FAST_FOR seconds.
        assert wait_for(lambda: sampler._samples > 5, timeout=FAST_FOR, interval=0.01)
        held.append(server.accept()[0])
        time.sleep(FAST_FOR + 0.2)
        before = sampler._samples
        sampler.wake()
        assert wait_for(lambda: sampler._samples > before, timeout=10, interval=0.01)
        time.sleep(0.3)
        # Now every connection on the ports has its final owner, as the wake-up's dump shows: no
        # fast looks after it (on a busy host most announced connections are another program's).
        assert sampler._samples == before + 1
        ownership = sampler.stop()
    finally:
        sampler.stop()
        for conn in held:
            conn.close()
    assert [(f.local_port, f.owner) for f in ownership.flows] == [(local, "qemu (fakevm)")]


def test_a_woken_sampler_finds_a_qemu_without_pid_file_that_starts_late(spawn: Spawn, tmp_path: Path) -> None:
    # The destination's QEMU appears once the migration starts; without a pid file only the
    # /proc scan finds it, once a second, however rarely a woken sampler dumps sockets (30 s).
    sampler = OwnershipSampler("fakevm", [tmp_path], interval=0.01, idle_interval=0.05)
    sampler.start(woken=True)
    try:
        time.sleep(1.2)
        qemu = fake_qemu(spawn)
        assert wait_for(lambda: sampler._last_pid == qemu.pid, timeout=10, interval=0.05)
    finally:
        sampler.stop()


def test_sampler_follows_a_new_qemu_pid(spawn: Spawn, server: socket.socket, tmp_path: Path) -> None:
    old = fake_qemu(spawn)
    pid_file(tmp_path, "fakevm", old.pid)
    old_port = int(old.ask(f"connect {port(server)}"))
    held = [server.accept()[0]]
    sampler = OwnershipSampler("fakevm", [tmp_path], interval=0.01, ports=[(port(server), port(server))])
    sampler.start()
    try:
        assert wait_for(lambda: sampler._flows, timeout=10, interval=0.01)  # the old QEMU's connection
        old.end()
        new = fake_qemu(spawn)
        pid_file(tmp_path, "fakevm", new.pid)
        new_port = int(new.ask(f"connect {port(server)}"))
        held.append(server.accept()[0])
        time.sleep(0.2)
    finally:
        ownership = sampler.stop()
        for conn in held:
            conn.close()
    assert ownership.owner_pid == new.pid
    assert {(f.local_port, f.pid) for f in ownership.flows} == {(old_port, old.pid), (new_port, new.pid)}


def test_sampler_without_a_qemu_reports_a_problem(server: socket.socket, tmp_path: Path) -> None:
    sampler = OwnershipSampler("no-such-vm", [tmp_path], interval=0.01, ports=[(port(server), port(server))])
    sampler.start()
    assert wait_for(lambda: sampler._samples >= 1, timeout=10, interval=0.01)
    ownership = sampler.stop()
    assert ownership.problem is not None
    assert "no QEMU process for no-such-vm" in ownership.problem
    assert str(tmp_path / "qemu" / "no-such-vm.pid") in ownership.problem
    assert (ownership.flows, ownership.owner_pid) == ((), None)
    assert ownership.samples >= 2
    # Foreign sockets are still described: the caller shows them next to its port-range count.
    assert [(f.local_port, f.pid) for f in ownership.foreign] == [(port(server), os.getpid())]


def test_sampler_turns_a_failing_socket_lister_into_a_problem(spawn: Spawn, tmp_path: Path) -> None:
    qemu = fake_qemu(spawn)
    pid_file(tmp_path, "fakevm", qemu.pid)

    def refused(ports: object) -> tuple[TcpSocket, ...]:
        raise PermissionError(1, "sock_diag refused")

    ownership = OwnershipSampler("fakevm", [tmp_path], list_sockets=refused).stop()
    assert ownership.problem is not None and "sock_diag refused" in ownership.problem
    assert (ownership.samples, ownership.flows) == (1, ())


def test_sampler_without_ports_keeps_all_qemu_connections(spawn: Spawn, server: socket.socket, tmp_path: Path) -> None:
    qemu = fake_qemu(spawn)
    child_port = int(qemu.ask(f"connect {port(server)}"))
    with server.accept()[0]:
        ownership = OwnershipSampler("fakevm", [tmp_path]).stop()  # no pid file: found by scan
    assert [(f.local_port, f.remote_port) for f in ownership.flows] == [(child_port, port(server))]
    assert ownership.foreign == ()


@pytest.mark.parametrize("settled", [True, None])
def test_a_settled_look_skips_the_fast_looks_after_a_wake_up(settled: bool | None) -> None:
    """DomainsSampler: a dump that finds every owner settled needs no fast re-looks (each costs a
    dump); an unsettled one (a socket in libvirtd's hands) gets them for FAST_FOR seconds."""
    looks: list[bool] = []

    def look(woken: bool, named: tuple[Endpoints, ...]) -> bool | None:
        looks.append(woken)
        return settled

    pacer = Pacer(interval=0.01, idle_interval=30.0)
    pacer.woken_mode = True
    thread = threading.Thread(target=pacer.run, args=(look, lambda: None))
    thread.start()
    assert wait_for(lambda: looks, timeout=10, interval=0.005)
    pacer.wake()
    assert wait_for(lambda: len(looks) >= 2, timeout=10, interval=0.005)
    if not settled:
        assert wait_for(lambda: len(looks) > 10, timeout=FAST_FOR, interval=0.01)
    time.sleep(0.3)
    pacer.stop()
    thread.join()
    assert looks[:2] == [False, True]  # the first look, then the wake-up's
    if settled:
        assert len(looks) == 2  # nothing after it until stop()


def test_wake_ups_hand_the_connections_they_name_to_the_next_look() -> None:
    pacer = Pacer(interval=0.01, idle_interval=30.0)
    a, b = (LO, 40000, LO, 49152), (LO, 40001, LO, 49152)
    pacer.wake([a])
    pacer.wake([b])
    assert pacer._take() == (True, (a, b))  # the look asks for these two sockets only
    assert pacer._take() == (False, ())
    pacer.wake([a])
    pacer.wake()  # a capture that names nothing (the ring engine's replay, a test)
    assert pacer._take() == (True, ())  # then the look dumps the socket table


def test_watch_sampler_records_listeners_without_looking_up_their_owner(server: socket.socket, tmp_path: Path) -> None:
    """`watch` orients a connection older than the capture by this host's listening ports
    (attribute.py), so the watch sampler keeps each listener on the ports: as nobody's, because a
    listener carries no bytes and a /proc walk for it would be wasted."""
    client = socket.create_connection((LO, port(server)))
    child, _ = server.accept()
    try:
        sampler = DomainsSampler(((port(server), port(server)),), proc=tmp_path)  # an empty /proc
        flows = sampler.stop()  # never started: one look
    finally:
        child.close()
        client.close()
    listeners = [f for f in flows if f.state == "LISTEN"]
    assert [(f.local_port, f.owner, f.pid, f.role) for f in listeners] == [(port(server), "unknown", None, "foreign")]
    assert {f.state for f in flows} == {"LISTEN", "ESTABLISHED"}  # and the connection's two ends
