"""Who owns which TCP connection: the migration's own sockets versus everyone else's
(processes: /proc; sampler: one domain during a job; domains: every QEMU, for `watch`)."""

from verifier.model import flow_key
from verifier.owners.processes import (
    PROC,
    OwnerFinder,
    Process,
    ProcessIndex,
    find_libvirtd_pids,
    find_qemu_pid,
    guest_name,
    owner_of_inode,
    socket_inodes,
)
from verifier.owners.sampler import OwnershipSampler

__all__ = [
    "PROC",
    "OwnerFinder",
    "OwnershipSampler",
    "Process",
    "ProcessIndex",
    "find_libvirtd_pids",
    "find_qemu_pid",
    "flow_key",
    "guest_name",
    "owner_of_inode",
    "socket_inodes",
]
