"""Record what the offline pipeline tests replay, from inside a lab node (run as root):

    verify-path lab exec node1 -- .venv/bin/python tests/record_lab.py netlink tests/data/lab-node1
    verify-path lab exec node1 -- .venv/bin/python tests/record_lab.py migrate tests/data/lab-node1 [VIA_URI]

`netlink` dumps links, addresses, qdiscs, policy rules and every routing table exactly as pyroute2
returns them (the shapes topology.parse and routing.explain read), with sysfs speeds and the
node's hosts file. `migrate` migrates vm01 to node2 and back with libvirt, polling jobStats()
every 0.5 s as hypervisor.py does, and stores the polls and the completed statistics.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def netlink(out: Path) -> None:
    from pyroute2 import IPRoute

    from verifier.topology import attr, sysfs_speeds

    with IPRoute() as ipr:
        links = [m.dump() for m in ipr.get_links()]
        data = {
            "hostname": socket.gethostname(),
            "links": links,
            "addrs": [m.dump() for m in ipr.get_addr()],
            "qdiscs": [m.dump() for m in ipr.get_qdiscs()],
            "rules": [m.dump() for m in ipr.get_rules(family=2)],
            "routes": [m.dump() for table in (254, 255) for m in ipr.get_routes(family=2, table=table)],
            "neighbours": [m.dump() for m in ipr.get_neighbours(family=2)],
        }
    data["speeds"] = sysfs_speeds([attr(m, "IFLA_IFNAME") for m in links])
    data["hosts"] = Path("/etc/hosts").read_text()
    (out / "netlink.json").write_text(json.dumps(_plain(data), indent=1) + "\n")


def migrate(out: Path, migrate_uri: str | None) -> None:
    import libvirt

    src = libvirt.open("qemu+tcp://node1/system")
    dst = libvirt.open("qemu+tcp://node2/system")
    dom = src.lookupByName("vm01")
    params = {libvirt.VIR_MIGRATE_PARAM_URI: migrate_uri} if migrate_uri else {}
    polls: list[dict[str, Any]] = []
    started = time.time()
    worker = threading.Thread(
        target=dom.migrateToURI3,
        args=("qemu+tcp://node2/system", params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER),
    )
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        try:
            polls.append({"t": round(time.time() - started, 3), **dom.jobStats()})
        except libvirt.libvirtError:
            pass
    done = dst.lookupByName("vm01").jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    back = dst.lookupByName("vm01")
    back.migrateToURI3("qemu+tcp://node1/system", {}, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
    name = "migration-" + ("san0" if migrate_uri else "default") + ".json"
    record = {"migrate_uri": migrate_uri, "polls": polls, "completed": done, "hostname": dst.getHostname()}
    (out / name).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    what, where = sys.argv[1], Path(sys.argv[2])
    where.mkdir(parents=True, exist_ok=True)
    netlink(where) if what == "netlink" else migrate(where, sys.argv[3] if len(sys.argv) > 3 else None)
