"""One sshd per lab node, so `qemu+ssh://nodeN/system` and Ansible reach the nodes by name.

Keys and configs live under the lab's state directory: a host key per node, one client key for
root, a known_hosts naming every node by all its lab names and addresses. Inside a node, /etc/ssh
is /etc/netns/NODE/ssh (`ip netns exec` bind-mounts what is there), holding only an ssh_config that
points the client at the lab's key and known_hosts; the host's /etc/ssh and ~/.ssh stay untouched.

sshd runs in its node's libvirtd's network, mount and UTS namespaces (nsenter): a session then sees
the node's /run/libvirt, so `qemu:///system` and libvirt's ssh transport (which talks to the
remote's unix socket) reach that node's libvirtd, and `hostname` says the node's name.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from verifier.errors import EnvironmentProblem
from verifier.lab import daemon, spec
from verifier.lab.system import run

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd refuses to start without it
NETNS_ETC = Path("/etc/netns")


def client_dir(state_dir: Path) -> Path:
    return state_dir / "ssh"


def client_key(state_dir: Path) -> Path:
    return client_dir(state_dir) / "id_ed25519"


def known_hosts(state_dir: Path) -> Path:
    return client_dir(state_dir) / "known_hosts"


def node_ssh_dir(node: str, state_dir: Path) -> Path:
    return spec.node_dir(node, state_dir) / "ssh"


def names(node: str) -> list[str]:
    """Every name and address NODE answers to inside the lab (the hosts file's, in that order)."""
    out: list[str] = []
    for link in spec.LINKS:
        out += [f"{node}{suffix}" for suffix in link.host_names]
    return out + [link.address(node) for link in spec.LINKS]


def _keygen(path: Path, comment: str) -> str:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


def write_config(nodes: tuple[str, ...], state_dir: Path) -> None:
    """Keys, sshd_config per node, known_hosts, authorized_keys and each node's ssh_config."""
    cdir = client_dir(state_dir)
    cdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (cdir / "authorized_keys").write_text(_keygen(client_key(state_dir), "verify-path-lab") + "\n")
    lines = []
    for node in nodes:
        ndir = node_ssh_dir(node, state_dir)
        ndir.mkdir(mode=0o700, parents=True, exist_ok=True)
        host_pub = _keygen(ndir / "ssh_host_ed25519_key", node)
        key_type, key = host_pub.split()[:2]
        lines.append(f"{','.join(names(node))} {key_type} {key}")
        (ndir / "sshd_config").write_text(sshd_config(node, state_dir))
        etc = NETNS_ETC / node / "ssh"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "ssh_config").write_text(ssh_config(state_dir))
    known_hosts(state_dir).write_text("\n".join(lines) + "\n")


def sshd_config(node: str, state_dir: Path) -> str:
    ndir = node_ssh_dir(node, state_dir)
    return (
        "Port 22\n"
        f"HostKey {ndir / 'ssh_host_ed25519_key'}\n"
        f"PidFile {ndir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {client_dir(state_dir) / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        # Ansible multiplexes many sessions over one connection and opens several at once.
        "MaxSessions 64\n"
        "MaxStartups 64\n"
        "Subsystem sftp internal-sftp\n"
    )


def ssh_config(state_dir: Path) -> str:
    return (
        "Host *\n"
        "    User root\n"
        f"    IdentityFile {client_key(state_dir)}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts(state_dir)}\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
        "    ConnectTimeout 10\n"
    )


def start(node: str, state_dir: Path, libvirtd_pid: int) -> int:
    """sshd -D in libvirtd's namespaces; return its PID (nsenter execs, so it is sshd's)."""
    conf = node_ssh_dir(node, state_dir) / "sshd_config"
    log = (spec.node_dir(node, state_dir) / "sshd.log").open("ab")
    argv = ["nsenter", "-t", str(libvirtd_pid), "-m", "-u", "-n", "--", SSHD, "-D", "-e", "-f", str(conf)]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc.pid


def wait_ready(node: str, state_dir: Path, pid: int, timeout: float = 20.0) -> None:
    """Until `ssh NODE true` works from inside NODE: key, known_hosts and sshd all in place."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not daemon.alive(pid):
            raise EnvironmentProblem(f"sshd on {node} exited: {_tail(spec.node_dir(node, state_dir) / 'sshd.log')}")
        proc = run(["ip", "netns", "exec", node, "ssh", node, "true"], check=False, timeout=15)
        if proc.returncode == 0:
            return
        last = " ".join(proc.stderr.split())
        time.sleep(0.2)
    raise EnvironmentProblem(f"sshd on {node} did not accept the lab key within {timeout:.0f}s: {last}")


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
