"""A thin ctypes layer over libbpf's stable C API: open and load an object, attach with tcx links,
read and write maps. Nothing is pinned: every program, map and link lives only as long as its
file descriptor, so closing them (or the process dying) removes all of it.

Why ctypes and not a binding from PyPI: the only one (pylibbpf 0.0.7) is young and builds
against libbpf at install time; the calls needed here are few and part of libbpf's stable ABI
(libbpf.so.1, Debian's libbpf1). libbpf 1.1 (Debian 12) predates bpf_program__attach_tcx
(libbpf 1.3), so tcx links are made with bpf_link_create(BPF_TCX_INGRESS/EGRESS), which passes
the attach type through to the kernel (tcx needs kernel 6.6).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

BPF_TCX_INGRESS = 46  # enum bpf_attach_type, include/uapi/linux/bpf.h (kernel 6.6+)
BPF_TCX_EGRESS = 47
BPF_ANY = 0
_LOG_LIMIT = 8000  # keep the end of libbpf's log (the verifier's verdict) for error messages
_LIBBPF_DEBUG = 2  # enum libbpf_print_level: WARN 0, INFO 1, DEBUG 2

_lib: ctypes.CDLL | None = None
_log: list[str] = []
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_RB_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class BpfError(OSError):
    """A libbpf or bpf(2) call failed; the message carries libbpf's log where there is one."""


@_PRINT_FN
def _print(level: int, fmt: bytes | None, args: int | None) -> int:
    # Debug lines (about 360 per load, none of them a reason for failing) are not formatted: a
    # load's failure comes as warnings, the verifier's log included.
    if level >= _LIBBPF_DEBUG:
        return 0
    # libbpf hands a va_list; on x86_64 and arm64 Linux it is passed as a pointer, so libc's
    # vsnprintf formats it. The text is kept for the error message instead of going to stderr.
    # One warning can be the verifier's whole log, its verdict at the end: room for all of it.
    buf = ctypes.create_string_buffer(1 << 20)
    _libc.vsnprintf(buf, len(buf), fmt, ctypes.c_void_p(args))
    _log.append(buf.value.decode(errors="replace"))
    if len(_log) > 64 and sum(len(line) for line in _log) > 4 * _LOG_LIMIT:
        del _log[: len(_log) // 2]
    return 0


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]


def libbpf() -> ctypes.CDLL:
    """libbpf.so.1 with the prototypes used here; raises OSError when it is not installed."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        vp, ci, cu = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint
        protos: dict[str, tuple[list[type], type | None]] = {
            "bpf_object__open_file": ([ctypes.c_char_p, vp], vp),
            "bpf_object__load": ([vp], ci),
            "bpf_object__close": ([vp], None),
            "bpf_object__find_program_by_name": ([vp, ctypes.c_char_p], vp),
            "bpf_object__find_map_fd_by_name": ([vp, ctypes.c_char_p], ci),
            "bpf_object__next_program": ([vp, vp], vp),
            "bpf_program__set_autoload": ([vp, ctypes.c_bool], ci),
            "bpf_program__name": ([vp], ctypes.c_char_p),
            "bpf_program__fd": ([vp], ci),
            "bpf_link_create": ([ci, ci, cu, vp], ci),
            "bpf_map_update_elem": ([ci, vp, vp, ctypes.c_uint64], ci),
            "bpf_map_lookup_elem": ([ci, vp, vp], ci),
            "bpf_map_get_next_key": ([ci, vp, vp], ci),
            "libbpf_num_possible_cpus": ([], ci),
            "libbpf_set_print": ([_PRINT_FN], vp),
            "ring_buffer__new": ([ci, _RB_SAMPLE_FN, vp, vp], vp),
            "ring_buffer__consume": ([vp], ci),
            "ring_buffer__free": ([vp], None),
        }
        for name, (args, res) in protos.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        lib.libbpf_set_print(_print)
        _lib = lib
    return _lib


def _check(ret: int, what: str) -> int:
    if ret < 0:
        # libbpf 1.x returns -errno; errno is set as well.
        code = -ret if ret < -1 else ctypes.get_errno() or errno.EINVAL
        tail = "".join(_log)[-_LOG_LIMIT:].strip()
        raise BpfError(code, f"{what}: {os.strerror(code)}" + (f"\n{tail}" if tail else ""))
    return ret


class BpfObject:
    """One loaded object file: only PROGRAMS are loaded (the others are left out), all its maps."""

    def __init__(self, path: Path, programs: list[str]) -> None:
        lib = libbpf()
        _log.clear()
        ptr = lib.bpf_object__open_file(str(path).encode(), None)
        if not ptr:
            _check(-(ctypes.get_errno() or errno.ENOENT), f"opening {path}")
        self._obj: int | None = ptr
        try:
            prog = lib.bpf_object__next_program(ptr, None)
            while prog:
                lib.bpf_program__set_autoload(prog, lib.bpf_program__name(prog).decode() in programs)
                prog = lib.bpf_object__next_program(ptr, prog)
            _check(lib.bpf_object__load(ptr), f"loading {path.name}")
            self.progs = {name: self._prog_fd(name) for name in programs}
        except BaseException:
            self.close()
            raise

    def _prog_fd(self, name: str) -> int:
        prog = libbpf().bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise BpfError(errno.ENOENT, f"no program {name} in the object")
        return _check(libbpf().bpf_program__fd(prog), f"program {name}")

    def map_fd(self, name: str) -> int:
        return _check(libbpf().bpf_object__find_map_fd_by_name(self._obj, name.encode()), f"map {name}")

    def close(self) -> None:
        """Closes every program and map descriptor of the object (links are closed by their owner)."""
        if self._obj:
            libbpf().bpf_object__close(self._obj)
            self._obj = None


def attach_tcx(prog_fd: int, ifindex: int, ingress: bool) -> int:
    """A tcx link (kernel 6.6+) of PROG_FD on IFINDEX; closing the returned fd detaches it."""
    kind = BPF_TCX_INGRESS if ingress else BPF_TCX_EGRESS
    where = "ingress" if ingress else "egress"
    return _check(libbpf().bpf_link_create(prog_fd, ifindex, kind, None), f"tcx {where} link on ifindex {ifindex}")


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    _check(libbpf().bpf_map_update_elem(fd, k, v, flags), "map update")


def map_items(fd: int, key_size: int, value_size: int) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a hash map; VALUE_SIZE is the whole lookup buffer (per-CPU: all CPUs)."""
    lib = libbpf()
    prev = ctypes.create_string_buffer(key_size)
    key = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size)
    first = True
    while lib.bpf_map_get_next_key(fd, None if first else prev, key) == 0:
        first = False
        if lib.bpf_map_lookup_elem(fd, key, value) == 0:  # a key deleted meanwhile is skipped
            yield key.raw, value.raw
        ctypes.memmove(prev, key, key_size)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value_size)
    return v.raw if libbpf().bpf_map_lookup_elem(fd, k, v) == 0 else None


class RingBuffer:
    """A BPF ring buffer map read through libbpf; its map fd polls readable when events wait.
    HANDLER, if given, gets each record's bytes (copied) as it is consumed."""

    def __init__(self, map_fd: int, handler: Callable[[bytes], None] | None = None) -> None:
        self.fd = map_fd
        self.events = 0
        self._handler = handler
        # Kept on the instance: libbpf calls it for as long as the ring buffer lives.
        self._cb = _RB_SAMPLE_FN(self._sample)
        ptr = libbpf().ring_buffer__new(map_fd, self._cb, None, None)
        if not ptr:
            _check(-(ctypes.get_errno() or errno.EINVAL), "ring buffer")
        self._rb: int | None = ptr

    def _sample(self, _ctx: int | None, data: int | None, size: int) -> int:
        self.events += 1
        if self._handler is not None and data:
            self._handler(ctypes.string_at(data, size))
        return 0

    def consume(self) -> int:
        """Consume every waiting event without blocking; how many there were."""
        if not self._rb:
            return 0
        return _check(libbpf().ring_buffer__consume(self._rb), "ring buffer consume")

    def close(self) -> None:
        if self._rb:
            libbpf().ring_buffer__free(self._rb)
            self._rb = None


def possible_cpus() -> int:
    """Per-CPU maps hold one value per possible CPU, each rounded up to 8 bytes."""
    return _check(libbpf().libbpf_num_possible_cpus(), "counting possible CPUs")


def prog_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program; non-zero only while kernel.bpf_stats_enabled=1."""
    fields = {}
    for line in Path(f"/proc/self/fdinfo/{prog_fd}").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return int(fields.get("run_time_ns", 0)), int(fields.get("run_cnt", 0))
