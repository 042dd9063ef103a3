"""Recognise a migration connection by its first payload bytes and its server port.

design.md section 4: QEMU's main stream starts with QEMU_VM_FILE_MAGIC "QEVM" (0x5145564d);
multifd channels with MULTIFD_MAGIC 0x11223344 on the same port; an NBD server greets with
"NBDMAGIC"; TLS records start 0x16 0x03; tunnelled migration rides the libvirtd connection
(16509 tcp, 16514 tls) or ssh (22, "SSH-" banner).
"""

from __future__ import annotations

KINDS = ("qemu-main", "multifd", "nbd", "tls", "libvirtd-tunnel", "ssh-tunnel", "unknown")
LIBVIRTD_PORTS = (16509, 16514)


def classify(server_port: int, to_server: bytes, to_client: bytes = b"") -> str:
    if to_server.startswith(b"QEVM"):
        return "qemu-main"
    if to_server.startswith(b"\x11\x22\x33\x44"):
        return "multifd"
    if to_client.startswith(b"NBDMAGIC") or to_server.startswith(b"NBDMAGIC"):
        return "nbd"
    if server_port == 22 or to_client.startswith(b"SSH-") or to_server.startswith(b"SSH-"):
        return "ssh-tunnel"
    if server_port in LIBVIRTD_PORTS:
        return "libvirtd-tunnel"
    if to_server[:2] == b"\x16\x03" or to_client[:2] == b"\x16\x03":
        return "tls"
    return "unknown"
