"""Where the machine's CPU went during a benchmark phase: some processes (the workers)
against the rest of the machine (the broker, the benchmark's own producer and reader,
anything else) and what stayed idle, in cores (CPU-seconds per second), read from Linux's
``/proc``.

A thread samples the counters a few times a second (``CpuSampler``), so that a window known
only afterwards (the saturated phase: first post received to last post geotagged, from the
events themselves) can be cut out of the samples (``CpuSampler.cores``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Counters:
    """CPU-seconds so far: the processes' (user + system), the machine's busy and total."""

    process: float
    busy: float
    total: float


def read_counters(*pids: int) -> Counters:
    """From each ``/proc/<pid>/stat`` (utime, stime; summed) and ``/proc/stat``'s ``cpu``
    line (idle and iowait are idle, the rest busy). OSError where a process has ended or
    there is no /proc."""
    process = 0.0
    for pid in pids:
        # the command name (field 2) may hold spaces: count the fields after its ')'
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        process += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14, 15
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return Counters(process, (sum(cpu) - idle) / TICKS, sum(cpu) / TICKS)


class CpuSampler:
    """Samples ``read(*pids)`` every ``interval`` seconds on a daemon thread, stamped with
    ``clock`` (wall time, to match the events' timestamps), while in a ``with`` block."""

    def __init__(
        self,
        *pids: int,
        interval: float = 0.25,
        read: Callable[..., Counters] = read_counters,
        clock: Callable[[], float] = time.time,
    ):
        if not pids:
            raise ValueError("CpuSampler needs at least one process id")
        self.pids, self.interval, self.read, self.clock = pids, interval, read, clock
        self.samples: list[tuple[float, Counters]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def sample(self) -> None:
        # a process that has ended (or no /proc): the samples so far stand
        with contextlib.suppress(OSError):
            self.samples.append((self.clock(), self.read(*self.pids)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def cores(self, start: float, end: float) -> dict[str, float] | None:
        """Cores used from ``start`` to ``end`` (wall times), between the last sample at or
        before ``start`` and the first at or after ``end``: ``process`` (the processes
        together), ``rest`` (the machine's busy time less theirs) and ``idle``. None without
        two samples around the window."""
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        if not before or not after:
            return None
        (t0, a), (t1, b) = before[-1], after[0]
        if t1 <= t0:
            return None
        process = (b.process - a.process) / (t1 - t0)
        busy = (b.busy - a.busy) / (t1 - t0)
        return {
            "process": process,
            "rest": max(busy - process, 0.0),
            "idle": (b.total - a.total - (b.busy - a.busy)) / (t1 - t0),
        }
