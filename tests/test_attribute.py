"""The attribute stage on hand-built captures: which end of a connection the capture guessed to be
the server, and this host's sockets putting it right."""

from __future__ import annotations

from verifier.attribute import attribute
from verifier.model import CaptureResult, Connection, InterfaceCount, OwnedFlow, Ownership

PORTS = ((49152, 49215),)
HERE, PEER = "198.18.0.11", "198.18.0.12"


def _captured(*conns: Connection) -> CaptureResult:
    return CaptureResult((InterfaceCount("san0"),), conns, PORTS, 0.0, 1.0, 128, "tcp")


def _conn(client: str, cport: int, server: str, sport: int, *, by_syn: bool) -> Connection:
    per = (InterfaceCount("san0", bytes_tx=3000, bytes_rx=1000, payload_tx=2000, payload_rx=500),)
    return Connection(client, cport, server, sport, 2000, 500, 40, ("san0",), per_interface=per, by_syn=by_syn)


def _ownership(*foreign: OwnedFlow) -> Ownership:
    qemu = OwnedFlow(HERE, 40000, PEER, 49153, "ESTABLISHED", 1, 100, "qemu (vm01)", "migration")
    return Ownership(100, "qemu (vm01)", (qemu,), foreign, None, 5)


def test_a_local_client_from_a_port_in_the_range_is_not_a_server_on_it() -> None:
    """Our libvirt connection to the peer's 16509, opened before the capture from ephemeral port
    49202: without its SYN the capture called 49202 the server. Nothing listens on 49202 here, so
    it is the client, and no program is said to sit on the migration ports."""
    guessed = _conn(PEER, 16509, HERE, 49202, by_syn=False)
    sock = OwnedFlow(HERE, 49202, PEER, 16509, "ESTABLISHED", 7, 42, "verify-path", "foreign")
    out = attribute(_captured(guessed), _ownership(sock), "vm01")
    (flow,) = out.foreign
    assert (flow.client, flow.client_port, flow.server, flow.server_port) == (HERE, 49202, PEER, 16509)
    assert flow.owner == "verify-path" and flow.pid == 42
    assert flow.kind == "libvirtd-tunnel"  # named again for its real server port, 16509
    assert not [f for f in out.findings if f.code == "port-range-shared"]


def test_a_local_server_on_the_range_stays_the_server() -> None:
    """A GlusterFS brick listening on 49152 with a client connected before the capture (from a
    privileged port, as gluster clients do): the guess was right, and the brick is named."""
    guessed = _conn(PEER, 1015, HERE, 49152, by_syn=False)
    sock = OwnedFlow(HERE, 49152, PEER, 1015, "ESTABLISHED", 8, 77, "glusterfsd", "foreign")
    listener = OwnedFlow("0.0.0.0", 49152, "0.0.0.0", 0, "LISTEN", 9, 77, "glusterfsd", "foreign")
    out = attribute(_captured(guessed), _ownership(sock, listener), "vm01")
    (flow,) = out.foreign
    assert (flow.server, flow.server_port) == (HERE, 49152)
    (shared,) = [f for f in out.findings if f.code == "port-range-shared"]
    assert "49152" in shared.message and "glusterfsd (pid 77)" in shared.message


def test_a_connection_whose_syn_was_seen_keeps_its_orientation() -> None:
    """Seen connecting: its listener may have closed since (a one-shot server), the SYN decides."""
    seen = _conn(PEER, 40100, HERE, 49160, by_syn=True)
    sock = OwnedFlow(HERE, 49160, PEER, 40100, "ESTABLISHED", 10, 55, "iperf3", "foreign")
    (flow,) = attribute(_captured(seen), _ownership(sock), "vm01").foreign
    assert (flow.server, flow.server_port) == (HERE, 49160)
