"""The result types every benchmark returns, the plain-text tables and the files written to bench/results/.

A ``Measurement`` is what one run against one server saw (operations per second and latency percentiles);
a ``Comparison`` is one table row: the emulator's measurement next to the baseline's for the same workload,
with the ratios and its bar, either a least throughput ratio to the baseline or a largest p99 latency. A row
without a baseline (raw Redis rates, for context) has no ratios and no bar; figures that do not apply show
as "-". ``format_bars`` lists every row that has a bar with its verdict and the figures behind it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Measurement:
    """Operations completed in a measuring window by one server, with their latencies in milliseconds."""

    operations: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    @classmethod
    def from_latencies(
        cls, latencies_s: Sequence[float], seconds: float, errors: int, operations: int | None = None
    ) -> Measurement:
        """Percentiles of ``latencies_s``; ``operations`` defaults to their number (one latency each)."""
        ordered = sorted(latencies_s)
        return cls(
            operations=len(ordered) if operations is None else operations,
            seconds=seconds,
            errors=errors,
            p50_ms=_percentile(ordered, 0.50) * 1000,
            p99_ms=_percentile(ordered, 0.99) * 1000,
        )


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values; NaN when there are none."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ratio(emulator: float, baseline: float | None) -> float | None:
    return None if baseline is None or math.isnan(emulator) or math.isnan(baseline) else emulator / baseline


@dataclass(frozen=True)
class Comparison:
    """One workload measured against the emulator and (usually) against the bare baseline, as one row."""

    name: str
    unit: str
    emulator: Measurement
    baseline: Measurement | None = None
    min_throughput_ratio: float | None = None
    max_p99_ms: float | None = None
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
            bars.append(f">= {self.min_throughput_ratio:.2f}")
        if self.max_p99_ms is not None:
            bars.append(f"p99 < {self.max_p99_ms:g} ms")
        return ", ".join(bars)

    @property
    def meets_bar(self) -> bool | None:
        """None without a bar; a NaN figure (nothing measured) misses it."""
        if not self.bar:
            return None
        ratio, least = self.throughput_ratio, self.min_throughput_ratio
        ratio_ok = least is None or (ratio is not None and ratio >= least)
        return ratio_ok and (self.max_p99_ms is None or self.emulator.p99_ms < self.max_p99_ms)

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "emulator_per_second": self.emulator.per_second,
            "baseline_per_second": self.baseline_per_second,
            "throughput_ratio": self.throughput_ratio,
            "p50_ratio": self.p50_ratio,
            "p99_ratio": self.p99_ratio,
            "meets_bar": self.meets_bar,
        }


TABLE_HEADERS = (
    "benchmark",
    "emulator",
    "baseline",
    "ratio",
    "p50 ms emu/base",
    "p50 ratio",
    "p99 ms emu/base",
    "p99 ratio",
    "errors emu/base",
    "bar",
)
BAR_HEADERS = ("bar", "benchmark", "required", "measured")


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _verdict(row: Comparison) -> str:
    return "met" if row.meets_bar else "MISSED"


def _table_cells(row: Comparison) -> tuple[str, ...]:
    emu, base = row.emulator, row.baseline
    base_p50, base_p99 = (math.nan, math.nan) if base is None else (base.p50_ms, base.p99_ms)
    return (
        row.name,
        f"{emu.per_second:,.0f} {row.unit}",
        "-" if base is None else f"{base.per_second:,.0f} {row.unit}",
        _figure(row.throughput_ratio, ".3f"),
        f"{_figure(emu.p50_ms, '.2f')} / {_figure(base_p50, '.2f')}",
        _figure(row.p50_ratio, ".2f"),
        f"{_figure(emu.p99_ms, '.2f')} / {_figure(base_p99, '.2f')}",
        _figure(row.p99_ratio, ".2f"),
        f"{emu.errors} / {'-' if base is None else base.errors}",
        f"{_verdict(row)} ({row.bar})" if row.bar else "-",
    )


def _bar_cells(row: Comparison) -> tuple[str, ...]:
    measured = []
    if row.min_throughput_ratio is not None:
        base = _figure(row.baseline_per_second, ",.0f")
        ratio = _figure(row.throughput_ratio, ".3f")
        measured.append(f"ratio {ratio} ({row.emulator.per_second:,.0f} vs {base} {row.unit})")
    if row.max_p99_ms is not None:
        base = "" if row.baseline is None else f" (baseline {_figure(row.baseline.p99_ms, '.2f')} ms)"
        measured.append(f"p99 {_figure(row.emulator.p99_ms, '.2f')} ms{base}")
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
    return _render(BAR_HEADERS, [_bar_cells(row) for row in rows if row.bar], texts=len(BAR_HEADERS))


def _finite(value: object) -> object:
    """``value`` with every NaN replaced by None, so that the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_results(rows: Sequence[Comparison], settings: Mapping[str, object]) -> tuple[Path, Path]:
    """Write the rows as JSON and the tables as text to bench/results/, named by the UTC time."""
    RESULTS_DIR.mkdir(exist_ok=True)
    now = datetime.now(UTC)
    stem = RESULTS_DIR / now.strftime("%Y%m%dT%H%M%SZ")
    tables = f"{format_table(rows)}\n\n{format_bars(rows)}"
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
