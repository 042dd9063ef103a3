"""How each watched device sends a GSO packet: as it is (TCP segmentation offload) or cut by the
stack into the segments the wire and tcpdump see. The counter's egress program runs before that
cut (tc egress), so it counts a GSO packet as its segments where the stack will cut it; this
module tells it where, once at start, through the counter's config (decode.config).

Why from user space: the kernel's own answer (dev->features and gso_max_segs, read from the
program through bpf_cast_to_kern_ctx) needs the kernel's BTF at every load: loading the object
cost 0.026-0.034 s of CPU with it (libbpf's parse of /sys/kernel/btf/vmlinux, the CO-RE and kfunc
resolution), 0.007-0.010 without, and reading the offloads here 0.0002. What the kernel decides
(netif_skb_features): the device's active tx-tcp-segmentation / tx-tcp6-segmentation feature,
and gso_max_segs. Not visible from user space: a device's vlan_features, which the kernel uses
instead for a VLAN-tagged frame; they are taken to be its features (true of veth, bridges,
bonds and the NICs whose drivers set them alike).
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_GETLINK

SIOCETHTOOL = 0x8946
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GFEATURES = 0x3A
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
TSO4, TSO6 = "tx-tcp-segmentation", "tx-tcp6-segmentation"
GSO_MAX_SEGS = 65535  # the kernel's default, where netlink does not say
IFLA_GSO_MAX_SEGS = 40  # include/uapi/linux/if_link.h
_NLMSG = struct.Struct("=IHHII")  # struct nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg
_RTA = struct.Struct("=HH")  # struct rtattr


@dataclass(frozen=True)
class Segmentation:
    """TSO for IPv4 and IPv6 active on the device, and the most segments one GSO packet may hold."""

    tso4: bool
    tso6: bool
    gso_max_segs: int = GSO_MAX_SEGS


def _ethtool(sock: socket.socket, name: str, buf: ctypes.Array[ctypes.c_char]) -> None:
    # struct ifreq: the name, then a pointer to the ethtool command (which the kernel fills in).
    ifr = struct.pack("16sP16x", name.encode(), ctypes.addressof(buf))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr)


def _feature_names(sock: socket.socket, name: str) -> list[str]:
    info = ctypes.create_string_buffer(struct.pack("=IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    _ethtool(sock, name, info)
    count = struct.unpack_from("=I", info.raw, 16)[0]
    head = struct.pack("=III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
    strings = ctypes.create_string_buffer(head, len(head) + ETH_GSTRING_LEN * count)
    _ethtool(sock, name, strings)
    raw = strings.raw[len(head) :]
    return [raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0")[0].decode() for i in range(count)]


def _active(sock: socket.socket, name: str, names: list[str], wanted: Sequence[str]) -> dict[str, bool]:
    blocks = (len(names) + 31) // 32
    buf = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_GFEATURES, blocks), 8 + 16 * blocks)
    _ethtool(sock, name, buf)
    found = {}
    for feature in wanted:
        if feature in names:
            index = names.index(feature)
            active = struct.unpack_from("=I", buf.raw, 8 + 16 * (index // 32) + 8)[0]
            found[feature] = bool(active >> (index % 32) & 1)
    return found


def gso_max_segs(ifindex: int) -> int:
    """The device's gso_max_segs (IFLA_GSO_MAX_SEGS of one RTM_GETLINK). One request on a raw
    netlink socket: pyroute2's IPRoute costs 1-2 ms of CPU for the same, at every start."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.send(_NLMSG.pack(_NLMSG.size + len(body), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + body)
        reply = nl.recv(65536)
    length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(reply)
    if kind == NLMSG_ERROR:
        errno = -struct.unpack_from("=i", reply, _NLMSG.size)[0]
        raise OSError(errno, f"RTM_GETLINK for ifindex {ifindex}")
    at = _NLMSG.size + _IFINFO.size
    while at + _RTA.size <= length:
        size, attr = _RTA.unpack_from(reply, at)
        if size < _RTA.size:
            break
        if attr == IFLA_GSO_MAX_SEGS:
            return int(struct.unpack_from("=I", reply, at + _RTA.size)[0])
        at += (size + 3) & ~3
    return GSO_MAX_SEGS


def read(names: Sequence[str]) -> dict[str, Segmentation]:
    """NAMES' segmentation as the kernel will decide it now; OSError when a device cannot say."""
    found = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            active = _active(sock, name, _feature_names(sock, name), (TSO4, TSO6))
            segs = gso_max_segs(socket.if_nametoindex(name))
            found[name] = Segmentation(active.get(TSO4, False), active.get(TSO6, False), segs)
    return found


def at_start(names: Sequence[str]) -> tuple[dict[str, Segmentation], str | None]:
    """NAMES' segmentation, and None; where a device cannot say, every device taken to send GSO
    packets whole (TSO on), and why, for the result's problems."""
    try:
        return read(names), None
    except OSError as exc:
        why = (
            f"cannot read the interfaces' offloads ({exc.strerror or exc}): GSO packets counted as one"
            " frame each, without the headers the stack repeats per segment where it segments them"
        )
        return {name: Segmentation(True, True) for name in names}, why


def changed(before: Mapping[str, Segmentation]) -> tuple[str, ...]:
    """The devices whose segmentation is no longer what BEFORE (at start) says: the counter
    counted their GSO packets by the offloads at start."""
    try:
        now = read(list(before))
    except OSError:
        return ()  # a device gone by now: its counters say so already
    return tuple(
        f"offloads of {name} changed during the capture ({before[name]} -> {now[name]}): its GSO packets"
        " were counted as the segments the offloads at start gave"
        for name in before
        if now[name] != before[name]
    )
