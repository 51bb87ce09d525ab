"""Where the benchmark's processes run, and the CPU they use, from /proc (Linux; no psutil).

``Placement`` splits the cores: the server side (the server under test and its Redis) on ``server``, the
load (h2load, the stream clients) on ``load``, so that the load never takes the server's core. On 2 cores
that is core 0 against core 1. The bench process pins itself to the load cores, so everything it starts
inherits them; a server re-pins itself (``pin``) before it makes any thread, and commands such as
``redis-server`` start through ``pinned_command``, which sets the affinity and then execs. ``UsageMeter``
samples, around a measuring window, the CPU time of the server's processes (utime + stime of
/proc/<pid>/stat, with their descendants: ``serve --workers`` starts processes), of the load generator,
and of every process that is not the benchmark's (other work on the machine disturbs the figures), and how
busy each core set was (/proc/stat), so that rows report CPU per operation and show whether the load side
was near its limit or the machine was busy with something else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PIN_AND_EXEC = (
    "import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def _affinity() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


AVAILABLE = _affinity()  # the cores this run may use: taken when first imported, before any pinning


def all_cores() -> frozenset[int]:
    return AVAILABLE


@dataclass(frozen=True)
class Placement:
    """The cores of the server side and of the load; the same set for both means no pinning."""

    server: frozenset[int]
    load: frozenset[int]
    root: int = field(default_factory=os.getpid)  # the bench process: what runs below it is the benchmark's

    @property
    def pinned(self) -> bool:
        return not self.server & self.load

    def describe(self) -> str:
        if not self.pinned:
            return f"not pinned: servers, Redis and load share cores {_cores(self.server)}"
        return f"server side (server, Redis) on core {_cores(self.server)}, load on core {_cores(self.load)}"


def _cores(cores: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def placement(server_cores: int = 1) -> Placement:
    """``server_cores`` cores for the server side and the rest for the load; no pinning without a core
    left for the load."""
    cores = sorted(all_cores())
    if len(cores) <= server_cores:
        return Placement(frozenset(cores), frozenset(cores))
    return Placement(frozenset(cores[:server_cores]), frozenset(cores[server_cores:]))


def pin(cores: Iterable[int]) -> None:
    """Pin this process, every thread it has and those it starts from now on, to ``cores``; nothing when
    empty."""
    chosen = set(cores)
    if not chosen or not hasattr(os, "sched_setaffinity"):
        return
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), chosen)
        except OSError:
            continue  # the thread ended meanwhile
    os.sched_setaffinity(0, chosen)


def pinned_command(command: Sequence[str], cores: Iterable[int]) -> list[str]:
    """``command`` started on ``cores`` (the affinity is set before the exec, so every thread has it)."""
    chosen = sorted(cores)
    if not chosen:
        return list(command)
    return [sys.executable, "-c", PIN_AND_EXEC, _cores(chosen), *command]


def _processes() -> dict[int, tuple[int, float]]:
    """Every process: its parent's pid and its CPU seconds (user plus system)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND)
    return table


def _below(pids: Iterable[int], table: Mapping[int, tuple[int, float]]) -> set[int]:
    """``pids`` and every process of ``table`` below them."""
    found = set(pids)
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in table.items() if parent in found and pid not in found}
        found |= below
        grew = bool(below)
    return found


def _core_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot, from /proc/stat."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]  # idle + iowait
            ticks[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return ticks


@dataclass(frozen=True)
class Usage:
    """What a window cost: CPU seconds per named group of server-side processes (and per process), of the
    load generator (when known) and of processes that are not the benchmark's (other work on the machine,
    which disturbs the figures), and how busy the server and the load cores were."""

    cpu_seconds: dict[str, float]
    per_process: dict[int, float]
    load_cpu_seconds: float
    other_cpu_seconds: float
    server_busy: float
    load_busy: float

    @property
    def total_cpu_seconds(self) -> float:
        return sum(self.cpu_seconds.values())


KERNEL_THREADS = 2  # kthreadd: the parent of every kernel thread


class UsageMeter:
    """Samples CPU at ``start`` and ``stop``. ``groups`` names the server-side processes (each with its
    descendants), e.g. {"emulator": [pid], "redis": [pid]}; ``load`` the load generator's processes;
    every other process outside the benchmark's tree (below ``BENCH_ROOT``), kernel threads aside, is
    another's."""

    def __init__(
        self, groups: Mapping[str, Sequence[int]], where: Placement, load: Sequence[int] = ()
    ) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items() if pids}
        self.load = list(load)
        self.where = where
        self._before: dict[int, tuple[int, float]] = {}
        self._ticks: dict[int, tuple[int, int]] = {}

    def start(self) -> None:
        self._before, self._ticks = _processes(), _core_ticks()

    def stop(self) -> Usage:
        after, ticks = _processes(), _core_ticks()

        def spent(pids: Iterable[int]) -> dict[int, float]:
            return {pid: after[pid][1] - self._before.get(pid, (0, 0.0))[1] for pid in pids if pid in after}

        groups = {name: spent(_below(pids, after)) for name, pids in self.groups.items()}
        ours = _below([self.where.root], after) | _below([KERNEL_THREADS], after)
        return Usage(
            cpu_seconds={name: sum(pids.values()) for name, pids in groups.items()},
            per_process={pid: seconds for pids in groups.values() for pid, seconds in pids.items()},
            load_cpu_seconds=sum(spent(_below(self.load, after)).values()) if self.load else float("nan"),
            other_cpu_seconds=sum(spent(set(after) - ours).values()),
            server_busy=self._busy(ticks, self.where.server),
            load_busy=self._busy(ticks, self.where.load),
        )

    def _busy(self, ticks: dict[int, tuple[int, int]], cores: Iterable[int]) -> float:
        busy = total = 0
        for core in cores:
            if core in ticks and core in self._ticks:
                busy += ticks[core][0] - self._ticks[core][0]
                total += ticks[core][1] - self._ticks[core][1]
        return busy / total if total else float("nan")
