"""The soak test's memory figures: RSS samples of the server process and the two verdicts drawn from them.

``Sampler`` reads ``VmRSS`` from ``/proc/<pid>/status`` (and, for the Redis backend, Redis's own
``used_memory_rss`` through an optional extra probe) every few seconds and tags each sample with the phase
of the run. ``judge_growth`` looks at the traffic phase after its warm-up (the first ``warmup_fraction`` of
it): RSS *grows* when the least-squares slope over the remaining samples is above ``max_slope`` MiB per
minute *and* the final RSS (median of the last three samples) is more than ``max_rise`` above the RSS at
the end of the warm-up (median of the first three samples after it); either alone is noise (a slope from
a few early steps, or one high sample). ``judge_release`` asks whether, after every stream closed and the
traffic stopped, some sample came down to ``before + margin * (peak - before)``, where ``before`` is the
RSS before any stream was opened and ``peak`` the highest RSS while they were open.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
LEAST_SAMPLES = 5  # after the warm-up, for a slope worth reading


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the sampler started
    phase: str
    rss_mib: float
    extra_mib: float | None = None  # e.g. Redis's used_memory_rss


@dataclass
class Sampler:
    """Samples of one process's RSS, every ``interval`` seconds while a phase runs."""

    pid: int
    interval: float
    extra: Callable[[], float] | None = None
    echo: bool = False  # print each sample as it is taken
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def sample(self, phase: str) -> Sample:
        extra = None if self.extra is None else self.extra()
        taken = Sample(round(time.monotonic() - self.started, 1), phase, rss_mib(self.pid), extra)
        self.samples.append(taken)
        if self.echo:
            shown = "" if extra is None else f", extra {extra:.1f} MiB"
            print(f"{taken.seconds:7.1f} s  {phase:<16} RSS {taken.rss_mib:7.1f} MiB{shown}", flush=True)
        return taken

    def run(self, phase: str, seconds: float, until: Callable[[], bool] | None = None) -> list[Sample]:
        """Sample now and every ``interval`` for ``seconds``, or until ``until()`` (checked every 0.1 s and
        after each sample) is true; the samples of this call."""
        taken = [self.sample(phase)]
        deadline = time.monotonic() + seconds
        next_at = time.monotonic() + self.interval
        while time.monotonic() < deadline:
            if until is not None and until():
                break
            if time.monotonic() >= next_at:
                taken.append(self.sample(phase))
                next_at += self.interval
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return taken

    def phase(self, phase: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase]


def slope_per_minute(samples: Sequence[Sample]) -> float:
    """Least-squares slope of RSS over time, in MiB per minute."""
    times = [s.seconds / 60 for s in samples]
    values = [s.rss_mib for s in samples]
    mean_t, mean_v = statistics.fmean(times), statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


@dataclass(frozen=True)
class Growth:
    warmup_end: float  # seconds, on the sampler's clock
    samples: int
    slope: float  # MiB per minute after the warm-up
    warmup_mib: float
    final_mib: float
    max_slope: float
    max_rise: float

    @property
    def rise(self) -> float:
        return self.final_mib / self.warmup_mib - 1

    @property
    def grows(self) -> bool:
        return self.slope > self.max_slope and self.rise > self.max_rise

    def describe(self) -> str:
        verdict = "GROWS" if self.grows else "bounded"
        return (
            f"growth: {verdict}: after the warm-up (t >= {self.warmup_end:.0f} s, {self.samples} samples) "
            f"slope {self.slope:+.2f} MiB/min (limit {self.max_slope:g}), final {self.final_mib:.1f} MiB "
            f"vs {self.warmup_mib:.1f} MiB at the end of the warm-up ({self.rise:+.1%}, "
            f"limit +{self.max_rise:.0%})"
        )


def judge_growth(
    traffic: Sequence[Sample], warmup_fraction: float, max_slope: float, max_rise: float
) -> Growth:
    """The growth verdict over the traffic phase's samples (see the module docstring)."""
    start, end = traffic[0].seconds, traffic[-1].seconds
    warmup_end = start + warmup_fraction * (end - start)
    after = [s for s in traffic if s.seconds >= warmup_end]
    if len(after) < LEAST_SAMPLES:
        raise ValueError(f"{len(after)} samples after the warm-up, fewer than {LEAST_SAMPLES}: run longer")
    return Growth(
        warmup_end=warmup_end,
        samples=len(after),
        slope=slope_per_minute(after),
        warmup_mib=statistics.median(s.rss_mib for s in after[:3]),
        final_mib=statistics.median(s.rss_mib for s in after[-3:]),
        max_slope=max_slope,
        max_rise=max_rise,
    )


@dataclass(frozen=True)
class Release:
    before_mib: float
    peak_mib: float
    lowest_mib: float  # the lowest sample after the streams closed
    margin: float
    seconds: float  # from the close to the first sample at or below the target, or the whole wait

    @property
    def target_mib(self) -> float:
        return self.before_mib + self.margin * (self.peak_mib - self.before_mib)

    @property
    def released(self) -> bool:
        return self.lowest_mib <= self.target_mib

    def describe(self) -> str:
        verdict = f"released within {self.seconds:.0f} s" if self.released else "NOT released"
        return (
            f"release: {verdict}: lowest {self.lowest_mib:.1f} MiB after closing, target "
            f"{self.target_mib:.1f} MiB = before {self.before_mib:.1f} + {self.margin:.0%} of the growth to "
            f"the peak {self.peak_mib:.1f}"
        )


def judge_release(before: float, peak: float, after_close: Sequence[Sample], margin: float) -> Release:
    """The release verdict: the first sample after the close at or below the target counts."""
    target = before + margin * (peak - before)
    first = after_close[0].seconds
    reached = next((s for s in after_close if s.rss_mib <= target), None)
    seconds = (reached or after_close[-1]).seconds - first
    return Release(before, peak, min(s.rss_mib for s in after_close), margin, seconds)
