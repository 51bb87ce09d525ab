"""The result types every benchmark returns, the plain-text tables and the files written to bench/results/.

A ``Measurement`` is what one window against one server saw: operations and their rate, latency
percentiles, failures, and the CPU seconds of the server side (its processes, Redis included), of the load
generator and of processes that are not the benchmark's, and how busy the server and the load cores were.
A ``Comparison`` is one table row: the emulator's measurement next to the baseline's for the same workload
(the bare server, or for the workers rows one worker), with the ratios and its bar: a least throughput
ratio, a largest p99 ratio, a largest p99 in milliseconds, or every event delivered. Any bar also needs no
failures on either side: a row whose calls failed or whose subscribers missed events misses its bar. A row
without a baseline (raw Redis rates, for context) has no ratios and no bar; figures that do not apply show
as "-". ``format_bars`` lists every row that has a bar with its verdict and the figures behind it;
``format_notes`` the counts behind each row (h2load's, deliveries, replays).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.cpu import Usage

RESULTS_DIR = Path(__file__).parent / "results"
NAN = math.nan


@dataclass(frozen=True)
class Measurement:
    """Operations completed in a measuring window by one server, with their latencies in milliseconds, the
    server side's CPU seconds in the window and the busy fractions of the server and the load cores."""

    operations: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = NAN
    load_cpu_seconds: float = NAN
    other_cpu_seconds: float = NAN
    server_busy: float = NAN
    load_busy: float = NAN

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds > 0 else NAN

    @property
    def cpu_us_per_operation(self) -> float:
        return self.cpu_seconds / self.operations * 1e6 if self.operations else NAN

    @property
    def load_cores(self) -> float:
        """The load generator's CPU in the window, in cores."""
        return self.load_cpu_seconds / self.seconds if self.seconds > 0 else NAN

    @property
    def other_cores(self) -> float:
        """Other processes' CPU (not the benchmark's) in the window, in cores."""
        return self.other_cpu_seconds / self.seconds if self.seconds > 0 else NAN

    @classmethod
    def from_latencies(
        cls,
        latencies_s: Sequence[float],
        seconds: float,
        errors: int,
        operations: int | None = None,
        usage: Usage | None = None,
    ) -> Measurement:
        """Percentiles of ``latencies_s``; ``operations`` defaults to their number (one latency each)."""
        ordered = sorted(latencies_s)
        return cls(
            operations=len(ordered) if operations is None else operations,
            seconds=seconds,
            errors=errors,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            cpu_seconds=NAN if usage is None else usage.total_cpu_seconds,
            load_cpu_seconds=NAN if usage is None else usage.load_cpu_seconds,
            other_cpu_seconds=NAN if usage is None else usage.other_cpu_seconds,
            server_busy=NAN if usage is None else usage.server_busy,
            load_busy=NAN if usage is None else usage.load_busy,
        )


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values; NaN when there are none."""
    if not ordered:
        return NAN
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ratio(emulator: float, baseline: float | None) -> float | None:
    if baseline is None or math.isnan(emulator) or math.isnan(baseline) or baseline == 0:
        return None
    return emulator / baseline


@dataclass(frozen=True)
class Comparison:
    """One workload measured against the emulator and (usually) against a baseline, as one row."""

    name: str
    unit: str
    emulator: Measurement
    baseline: Measurement | None = None
    min_throughput_ratio: float | None = None
    max_p99_ratio: float | None = None
    max_p99_ms: float | None = None
    every_event: bool = False  # the bar: every subscriber received every event (no errors)
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def baseline_per_second(self) -> float | None:
        return None if self.baseline is None else self.baseline.per_second

    @property
    def throughput_ratio(self) -> float | None:
        return _ratio(self.emulator.per_second, self.baseline_per_second)

    @property
    def p50_ratio(self) -> float | None:
        return _ratio(self.emulator.p50_ms, None if self.baseline is None else self.baseline.p50_ms)

    @property
    def p99_ratio(self) -> float | None:
        return _ratio(self.emulator.p99_ms, None if self.baseline is None else self.baseline.p99_ms)

    @property
    def bar(self) -> str:
        """The bar as people read it, or "" when the row has none."""
        bars = []
        if self.min_throughput_ratio is not None:
            bars.append(f"ratio >= {self.min_throughput_ratio:g}")
        if self.max_p99_ratio is not None:
            bars.append(f"p99 <= {self.max_p99_ratio:g}x baseline")
        if self.max_p99_ms is not None:
            bars.append(f"p99 < {self.max_p99_ms:g} ms")
        if self.every_event:
            bars.append("every event to every subscriber")
        return ", ".join(bars)

    @property
    def failures(self) -> int:
        return self.emulator.errors + (0 if self.baseline is None else self.baseline.errors)

    @property
    def meets_bar(self) -> bool | None:
        """None without a bar; a NaN figure (nothing measured) or any failure misses it."""
        if not self.bar:
            return None
        ratio, least = self.throughput_ratio, self.min_throughput_ratio
        ratio_ok = least is None or (ratio is not None and ratio >= least)
        p99_ratio, most = self.p99_ratio, self.max_p99_ratio
        p99_ratio_ok = most is None or (p99_ratio is not None and p99_ratio <= most)
        p99_ok = self.max_p99_ms is None or self.emulator.p99_ms < self.max_p99_ms
        delivered = not self.every_event or self.emulator.operations > 0
        return ratio_ok and p99_ratio_ok and p99_ok and delivered and self.failures == 0

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "emulator_per_second": self.emulator.per_second,
            "baseline_per_second": self.baseline_per_second,
            "emulator_cpu_us_per_operation": self.emulator.cpu_us_per_operation,
            "baseline_cpu_us_per_operation": None
            if self.baseline is None
            else self.baseline.cpu_us_per_operation,
            "throughput_ratio": self.throughput_ratio,
            "p50_ratio": self.p50_ratio,
            "p99_ratio": self.p99_ratio,
            "bar": self.bar,
            "meets_bar": self.meets_bar,
        }


TABLE_HEADERS = (
    "benchmark",
    "emulator",
    "baseline",
    "ratio",
    "p50 ms emu/base",
    "p99 ms emu/base",
    "p99 ratio",
    "CPU us/op emu/base",
    "load cores emu/base",
    "other cores emu/base",
    "errors emu/base",
    "bar",
)
BAR_HEADERS = ("bar", "benchmark", "required", "measured")


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _pair(emulator: float, baseline: float | None, spec: str) -> str:
    return f"{_figure(emulator, spec)} / {_figure(baseline, spec)}"


def _verdict(row: Comparison) -> str:
    return "met" if row.meets_bar else "MISSED"


def _table_cells(row: Comparison) -> tuple[str, ...]:
    emu, base = row.emulator, row.baseline
    return (
        row.name,
        f"{_figure(emu.per_second, ',.0f')} {row.unit}",
        "-" if base is None else f"{_figure(base.per_second, ',.0f')} {row.unit}",
        _figure(row.throughput_ratio, ".3f"),
        _pair(emu.p50_ms, None if base is None else base.p50_ms, ".2f"),
        _pair(emu.p99_ms, None if base is None else base.p99_ms, ".2f"),
        _figure(row.p99_ratio, ".2f"),
        _pair(emu.cpu_us_per_operation, None if base is None else base.cpu_us_per_operation, ".1f"),
        _pair(emu.load_cores, None if base is None else base.load_cores, ".2f"),
        _pair(emu.other_cores, None if base is None else base.other_cores, ".2f"),
        f"{emu.errors} / {'-' if base is None else base.errors}",
        f"{_verdict(row)} ({row.bar})" if row.bar else "-",
    )


def _bar_cells(row: Comparison) -> tuple[str, ...]:
    measured = []
    if row.min_throughput_ratio is not None:
        base = _figure(row.baseline_per_second, ",.0f")
        ratio = _figure(row.throughput_ratio, ".3f")
        measured.append(f"ratio {ratio} ({row.emulator.per_second:,.0f} vs {base} {row.unit})")
    if row.max_p99_ratio is not None or row.max_p99_ms is not None or row.every_event:
        base = "" if row.baseline is None else f" vs {_figure(row.baseline.p99_ms, '.2f')} ms"
        ratio = "" if row.p99_ratio is None else f", ratio {row.p99_ratio:.2f}"
        measured.append(f"p99 {_figure(row.emulator.p99_ms, '.2f')} ms{base}{ratio}")
    if row.every_event:
        measured.append(f"{row.emulator.operations:,} deliveries")
    if row.failures:
        base_errors = "-" if row.baseline is None else str(row.baseline.errors)
        measured.append(f"FAILURES {row.emulator.errors} / {base_errors}")
    return (_verdict(row), row.name, row.bar, ", ".join(measured))


def _render(headers: Sequence[str], body: Sequence[Sequence[str]], texts: int = 1) -> str:
    """A plain aligned table: the first ``texts`` columns left-aligned, the figures after them right."""
    lines = [headers, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]

    def render(cells: Sequence[str]) -> str:
        aligned = (
            cell.ljust(width) if i < texts else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(aligned).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def format_table(rows: Sequence[Comparison]) -> str:
    return _render(TABLE_HEADERS, [_table_cells(row) for row in rows])


def format_bars(rows: Sequence[Comparison]) -> str:
    """One line per row with a bar: met or MISSED, the bar and the figures it was judged on."""
    with_bars = [row for row in rows if row.bar]
    met = sum(bool(row.meets_bar) for row in with_bars)
    table = _render(BAR_HEADERS, [_bar_cells(row) for row in with_bars], texts=len(BAR_HEADERS))
    return f"{table}\n{met} of {len(with_bars)} bars met"


DISTURBED_CORES = 0.1  # other processes' CPU in a window, in cores, beyond which the figures are disturbed


def format_disturbance(rows: Sequence[Comparison]) -> str:
    """A warning when processes that are not the benchmark's used CPU in some window, else ""."""
    others = [
        (m.other_cores, row.name)
        for row in rows
        for m in (row.emulator, row.baseline)
        if m is not None and m.other_cores > DISTURBED_CORES
    ]
    if not others:
        return ""
    cores, name = max(others)
    return (
        f"WARNING: other processes used CPU in {len(others)} windows (up to {cores:.2f} cores, in "
        f'"{name}"): the figures are disturbed; run again on a quiet machine'
    )


def format_notes(rows: Sequence[Comparison]) -> str:
    """Each row's notes (h2load's counts, deliveries, replays), one per line under the row's name."""
    lines = []
    for row in rows:
        notes = row.details.get("notes")
        if isinstance(notes, list | tuple) and notes:
            lines.append(f"{row.name}:")
            lines += [f"    {note}" for note in notes]
    return "\n".join(lines)


def _finite(value: object) -> object:
    """``value`` with every NaN replaced by None, so that the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_results(
    rows: Sequence[Comparison], settings: Mapping[str, object], preamble: str = ""
) -> tuple[Path, Path]:
    """Write the rows as JSON and the tables as text to bench/results/, named by the UTC time."""
    RESULTS_DIR.mkdir(exist_ok=True)
    now = datetime.now(UTC)
    stem = RESULTS_DIR / now.strftime("%Y%m%dT%H%M%SZ")
    warning = format_disturbance(rows)
    tables = "\n\n".join(
        part
        for part in (f"{preamble}{format_table(rows)}", format_bars(rows), warning, format_notes(rows))
        if part
    )
    document = {
        "time": now.isoformat(),
        "settings": dict(settings),
        "rows": [row.as_json() for row in rows],
        "table": tables,
    }
    json_path, table_path = stem.with_suffix(".json"), stem.with_suffix(".txt")
    json_path.write_text(json.dumps(_finite(document), indent=2, allow_nan=False) + "\n")
    table_path.write_text(tables + "\n")
    return json_path, table_path
