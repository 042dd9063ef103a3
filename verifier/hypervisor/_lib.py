"""The one place libvirt is imported: every other module of the hypervisor stage asks here.

libvirt prints every error to stderr by default; ours are reported once, as one line, so the
handler is replaced at first use.
"""

from __future__ import annotations

from typing import Any

from verifier.errors import EnvironmentProblem


def libvirt() -> Any:
    import libvirt as lv

    lv.registerErrorHandler(lambda _ctx, _err: None, None)
    return lv


def open_connection(uri: str, role: str) -> Any:
    lv = libvirt()
    try:
        return lv.open(uri)
    except lv.libvirtError as exc:
        raise EnvironmentProblem(
            f"cannot reach the {role} libvirtd at {uri}: {exc.get_error_message()}",
            hint="check that libvirtd runs and listens there, or pass --connect/--dest-uri",
        ) from None


def to_int(value: Any) -> int | None:
    return int(value) if value is not None else None
