"""Inside a fresh mount+UTS namespace: bind the node's libvirt tree, set the hostname, exec libvirtd.

Started by daemon.start through `ip netns exec NODE unshare --mount --uts ...`; every step
execs, so the PID the lab records is libvirtd's own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from verifier.lab import spec


def main(node: str, state_dir: Path) -> None:
    base = spec.node_dir(node, state_dir)
    for sub, target in spec.LIBVIRT_PATHS:
        subprocess.run(["mount", "--bind", str(base / sub), target], check=True)
    socket.sethostname(node)
    pidfile = base / "run" / "libvirtd.pid"
    conf = base / "etc" / "libvirtd.conf"
    os.execvp("libvirtd", ["libvirtd", "--listen", "-p", str(pidfile), "-f", str(conf)])


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
