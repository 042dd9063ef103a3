"""List the TCP sockets of the current network namespace through netlink sock_diag.

The one netlink back end for sockets: the only module that talks inet_diag, handing the rest of
the code frozen `TcpSocket` values. It sees the namespace it runs in, so the caller enters the
node's namespace first (the lab's `exec` does that).

pyroute2 names the protocol (its netlink and sock_diag constants); the wire formats are small
fixed C structs (linux/inet_diag.h), packed and unpacked with struct, over a plain blocking
netlink socket. pyroute2 0.9's own DiagSocket runs every request through an asyncio event loop
(creating one and a filtered dump of a few sockets cost 4-7 ms of CPU each, most of the ownership
sampler's cost in `make bench`), its message classes took 0.5 ms to encode a request and 53 us to
decode each socket's answer.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from pyroute2.netlink import NETLINK_SOCK_DIAG, NLM_F_MATCH, NLM_F_REQUEST, NLM_F_ROOT, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SOCK_DIAG_BY_FAMILY

from verifier.model.ownership import Endpoints, OwnedFlow, canonical_ip

# Kernel TCP states (include/net/tcp_states.h); idiag_state carries these numbers.
TCP_STATES = dict(
    enumerate(
        ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT")
        + ("LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"),
        start=1,
    )
)
# Bits 0-11: every state ss shows by default. NEW_SYN_RECV (12) is a request, not a socket
# with an inode, so leaving it out loses nothing a process could own.
ALL_STATES = 0xFFF
# The answers, decoded with struct: a netlink header, then per socket the fixed struct
# inet_diag_msg (linux/inet_diag.h; no attributes asked for). pyroute2's MarshalDiag spent 53 us
# per socket (0.27 s of CPU for 5,000 sockets, at every unfiltered dump); a dump now costs 9 us.
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_DIAG_MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")  # family, state, timer, retrans, id, ..., uid, inode
# One connection's socket: struct inet_diag_req_v2 with the connection as its id (family,
# protocol, extensions, pad, states, then sport, dport, src, dst, interface, cookie), sent
# without NLM_F_DUMP: the kernel looks the socket up in its hash (inet_diag_find_one_icsk).
_EXACT_REQ = struct.Struct("=BBBxI2s2s16s16sI8s")
_NOCOOKIE = b"\xff" * 8  # INET_DIAG_NOCOOKIE in both words: any socket with this 4-tuple
# inet_diag bytecode ops (linux/inet_diag.h): port comparisons against the next op's `no` field.
_BC_JMP, _BC_S_GE, _BC_S_LE, _BC_D_GE, _BC_D_LE = 1, 2, 3, 4, 5


# The original TCP request (linux/inet_diag.h, struct inet_diag_req), which the kernel still
# serves (inet_diag_rcv_msg_compat): it dumps IPv4 and IPv6 sockets in one walk of the TCP hash
# tables (family AF_UNSPEC), where SOCK_DIAG_BY_FAMILY takes one request, and one walk of the
# whole table, per family. The walk is most of a dump's cost on a host with much memory (the
# table is sized by it); answers come with the request's type.
TCPDIAG_GETSOCK = 18


# struct inet_diag_req: family, src_len, dst_len, ext, id (sport, dport, src, dst, interface,
# cookie), states, dbs; its one attribute (struct nlattr: length, type), the bytecode filter.
_DUMP_REQ = struct.Struct("=BBBB2s2s16s16sI8sII")
_NLATTR = struct.Struct("=HH")
INET_DIAG_REQ_BYTECODE = 1


@dataclass(frozen=True)
class TcpSocket:
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str
    inode: int  # 0 for sockets no process holds any more (TIME_WAIT)
    uid: int

    @property
    def endpoints(self) -> Endpoints:
        """The connection as this socket holds it: what a capture's announcement names."""
        return self.local, self.local_port, self.remote, self.remote_port

    def owned(self, pid: int | None, owner: str, role: str) -> OwnedFlow:
        """This connection as the ownership samplers report it: its holder and its role."""
        return OwnedFlow(
            self.local, self.local_port, self.remote, self.remote_port, self.state, self.inode, pid, owner, role
        )


# What the samplers take: TCP sockets, all of them or (with port ranges) those on the ports.
ListSockets = Callable[[Sequence[tuple[int, int]] | None], Sequence[TcpSocket]]


def port_filter(ranges: Sequence[tuple[int, int]]) -> bytes:
    """inet_diag bytecode passing a socket whose local or remote port is in one of `ranges`.

    The kernel then sends only those: pyroute2 spends ~0.1 ms decoding each socket, so listing
    a busy host's every socket 20 times a second would cost more than the sampling is worth.
    """
    terms = [(_BC_S_GE, _BC_S_LE, lo, hi) for lo, hi in ranges] + [(_BC_D_GE, _BC_D_LE, lo, hi) for lo, hi in ranges]
    # Each term is GE, LE (8 bytes each: op, then the port in the next op's `no`) and a JMP to
    # the end on success (4 bytes); the last term needs no JMP. A failed comparison jumps to
    # the next term; in the last term, to 4 bytes past the end, which the kernel reads as reject.
    total = 20 * len(terms) - 4
    code = b""
    for i, (ge, le, lo, hi) in enumerate(terms):
        at = len(code)
        fail = total + 4 if i == len(terms) - 1 else at + 20
        code += struct.pack("=BBHBBH", ge, 8, fail - at, 0, 0, lo)
        code += struct.pack("=BBHBBH", le, 8, fail - at - 8, 0, 0, hi)
        if i < len(terms) - 1:
            code += struct.pack("=BBH", _BC_JMP, 4, total - at - 16)
    return code


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return canonical_ip(socket.inet_ntop(socket.AF_INET6, raw))  # a dual-stack socket's v4 peer too


def _to_socket(payload: bytes | memoryview) -> TcpSocket:
    family, number, _timer, _retrans, sport, dport, src, dst, _if, _cookie, _exp, _rq, _wq, uid, inode = (
        _DIAG_MSG.unpack_from(payload)
    )
    return TcpSocket(
        local=_address(family, src),
        local_port=int.from_bytes(sport, "big"),
        remote=_address(family, dst),
        remote_port=int.from_bytes(dport, "big"),
        state=TCP_STATES.get(number, f"STATE_{number}"),
        inode=inode,
        uid=uid,
    )


def _error(payload: memoryview) -> int:
    (code,) = struct.unpack_from("=i", payload)  # nlmsgerr.error, negative
    return int(code)


def _raise_refused(kind: int, payload: memoryview) -> None:
    if kind == NLMSG_ERROR:
        code = -_error(payload)
        raise OSError(code, f"sock_diag refused the request: {errno.errorcode.get(code, code)}")


class TcpSocketLister:
    """A sock_diag socket kept open across calls: a sampler lists sockets many times a second.

    Use it from one thread at a time; `tcp_sockets()` is the one-shot form.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        try:
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._requests: dict[tuple[tuple[int, int], ...] | None, bytearray] = {}  # encoded once per filter

    def __call__(self, ports: Sequence[tuple[int, int]] | None = None) -> tuple[TcpSocket, ...]:
        """Every TCP socket, or with `ports` only those with a local or remote port in a range."""
        if ports is not None and not ports:
            return ()
        return tuple(_to_socket(payload) for payload in self._dump(ports))

    def _request(self, ports: Sequence[tuple[int, int]] | None) -> bytearray:
        """The dump request for PORTS, encoded once and kept (each use sets its sequence number)."""
        key = tuple(ports) if ports is not None else None
        if key not in self._requests:
            # Family AF_UNSPEC: both families, one walk. All states; no extensions.
            body = _DUMP_REQ.pack(socket.AF_UNSPEC, 0, 0, 0, b"", b"", b"", b"", 0, b"", ALL_STATES, 0)
            if ports is not None:
                code = port_filter(ports)  # whole 4- and 8-byte ops: no padding needed
                body += _NLATTR.pack(_NLATTR.size + len(code), INET_DIAG_REQ_BYTECODE) + code
            header = _NLMSGHDR.pack(
                _NLMSGHDR.size + len(body), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH, 0, 0
            )
            self._requests[key] = bytearray(header + body)
        return self._requests[key]

    def lookup(self, conn: Endpoints) -> TcpSocket | None:
        """The socket of one connection (CONN as this host holds it), found by the kernel's hash
        lookup (about 30 us, where a dump walks the whole TCP table); None when this namespace has
        none (a forwarded flow's, or closed)."""
        local, local_port, remote, remote_port = conn
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        body = _EXACT_REQ.pack(
            family,
            socket.IPPROTO_TCP,
            0,  # no extensions
            ALL_STATES,
            local_port.to_bytes(2, "big"),
            remote_port.to_bytes(2, "big"),
            socket.inet_pton(family, local).ljust(16, b"\0"),
            socket.inet_pton(family, remote).ljust(16, b"\0"),
            0,  # any interface
            _NOCOOKIE,
        )
        self._seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._seq, 0)
        self._sock.send(header + body)
        for kind, payload in self._replies():
            if kind == NLMSG_ERROR and _error(payload) == -errno.ENOENT:
                return None
            _raise_refused(kind, payload)
            if kind != SOCK_DIAG_BY_FAMILY or len(payload) < _DIAG_MSG.size:
                raise OSError(errno.EPROTO, f"sock_diag answered a lookup with a message of type {kind}")
            found = _to_socket(payload)
            # Without a socket for the 4-tuple the kernel's lookup falls back to a listener on the
            # port: that is not this connection's socket.
            return found if found.endpoints == conn else None
        raise AssertionError("unreachable: _replies() never ends")

    def _dump(self, ports: Sequence[tuple[int, int]] | None) -> Iterator[memoryview]:
        """Each socket's inet_diag_msg, as the kernel sends them, until the dump's end."""
        self._seq += 1
        request = self._request(ports)
        struct.pack_into("=I", request, 8, self._seq)  # nlmsghdr.nlmsg_seq
        self._sock.send(request)
        for kind, payload in self._replies():
            if kind == NLMSG_DONE:
                return
            _raise_refused(kind, payload)
            if kind == TCPDIAG_GETSOCK and len(payload) >= _DIAG_MSG.size:
                yield payload

    def _replies(self) -> Iterator[tuple[int, memoryview]]:
        """(type, payload) of each message answering the latest request, as they come; endless."""
        while True:
            data = memoryview(self._sock.recv(1 << 16))
            at = 0
            while at + _NLMSGHDR.size <= len(data):
                length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, at)
                if length < _NLMSGHDR.size:
                    raise OSError(errno.EPROTO, f"sock_diag sent a netlink message of length {length}")
                payload = data[at + _NLMSGHDR.size : at + length]
                at += (length + 3) & ~3  # NLMSG_ALIGN
                if seq == self._seq:  # else an earlier request's tail, left by an exception
                    yield kind, payload

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TcpSocketLister:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ThreadLister:
    """A sampler's lister: the GIVEN one (tests pass fakes), used as is and never closed, or a
    TcpSocketLister of its own, opened at the first call in the sampler's thread (one thread at a
    time uses it) and closed by close(), so each call costs one dump, not a socket."""

    def __init__(self, given: ListSockets | None = None) -> None:
        self._given = given
        self._own: TcpSocketLister | None = None

    def __call__(self, ports: Sequence[tuple[int, int]] | None = None) -> Sequence[TcpSocket]:
        if self._given is not None:
            return self._given(ports)
        return self._lister()(ports)

    def lookup(self, conns: Sequence[Endpoints]) -> Sequence[TcpSocket]:
        """The sockets this namespace holds for CONNS, one hash lookup each (a GIVEN lister's
        answer instead: its dump of every socket, filtered)."""
        if self._given is not None:
            wanted = set(conns)
            return tuple(s for s in self._given(None) if s.endpoints in wanted)
        lister = self._lister()
        return tuple(s for s in map(lister.lookup, dict.fromkeys(conns)) if s is not None)

    def _lister(self) -> TcpSocketLister:
        if self._own is None:
            self._own = TcpSocketLister()
        return self._own

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


def tcp_sockets(ports: Sequence[tuple[int, int]] | None = None) -> tuple[TcpSocket, ...]:
    """TCP sockets (all states, IPv4 and IPv6) in the current network namespace, filtered by the
    kernel to those with a local or remote port in `ports` when given."""
    with TcpSocketLister() as lister:
        return lister(ports)
