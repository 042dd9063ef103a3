"""When the ownership samplers look: every `interval`, or, when the capture announces new
connections (the eBPF engine's wake-ups), at once on each announcement, every `interval` for
FAST_FOR seconds after it, and every `idle_interval` otherwise. One thread, woken or stopped
through one event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from verifier.model import Endpoints

# Seconds of looks at `interval` after a wake-up: each connection announces itself (multifd
# channels and NBD too), so this only covers a socket QEMU takes over a moment after its first
# payload (accept() on the destination).
FAST_FOR = 0.5


class Pacer:
    def __init__(self, interval: float, idle_interval: float) -> None:
        self.interval = interval
        self.idle_interval = idle_interval
        self.woken_mode = False
        self._poke = threading.Event()  # wake() or stop(): end the wait between looks
        self._stopping = False
        self._lock = threading.Lock()  # wake() runs in the capture's thread
        self._wake_pending = False
        self._named: list[Endpoints] = []  # the connections wake-ups named since the last look
        self._unnamed = False  # a wake-up named none: the look must dump the socket table

    def wake(self, conns: Sequence[Endpoints] = ()) -> None:
        """New connections on the watched ports (CONNS, when the capture names them): look now."""
        with self._lock:
            self._wake_pending = True
            self._named.extend(conns)
            self._unnamed = self._unnamed or not conns
        self._poke.set()

    def _take(self) -> tuple[bool, tuple[Endpoints, ...]]:
        """(woken since the last look, the connections named, or () when one wake-up named none)."""
        with self._lock:
            woken, named = self._wake_pending, () if self._unnamed else tuple(self._named)
            self._wake_pending, self._named, self._unnamed = False, [], False
        return woken, named

    def stop(self) -> None:
        self._stopping = True
        self._poke.set()

    def run(self, look: Callable[[bool, tuple[Endpoints, ...]], bool | None], finish: Callable[[], None]) -> None:
        """The thread's body: LOOK(woken, named) until stop(), then FINISH() (whatever happened).
        A look that returns True found everything settled: no fast looks after it, even after a
        wake-up."""
        try:
            fast_until = float("-inf")
            while not self._stopping:
                woken, named = self._take()
                settled = look(woken, named)
                now = time.monotonic()
                if settled:
                    fast_until = float("-inf")
                elif woken:
                    fast_until = now + FAST_FOR
                fast = not self.woken_mode or now < fast_until
                self._poke.wait(self.interval if fast else self.idle_interval)
                self._poke.clear()
        finally:
            finish()
