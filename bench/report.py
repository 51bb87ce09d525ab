"""The result types every benchmark returns, the plain-text table and the files written to bench/results/.

A ``Measurement`` is what one load run against one server saw (operations per second and latency
percentiles); a ``Comparison`` is one table row, the emulator's measurement next to the baseline's for the
same workload, with the ratios and whether the throughput bar is met. New benchmarks (streaming, ...)
return ``Comparison`` rows and get the table and the JSON for free.
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
    def from_latencies(cls, latencies_s: Sequence[float], seconds: float, errors: int) -> Measurement:
        ordered = sorted(latencies_s)
        return cls(
            operations=len(ordered),
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


@dataclass(frozen=True)
class Comparison:
    """One workload measured against the emulator and against the bare baseline, as one table row."""

    name: str
    unit: str
    emulator: Measurement
    baseline: Measurement
    min_throughput_ratio: float
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def throughput_ratio(self) -> float:
        return self.emulator.per_second / self.baseline.per_second

    @property
    def p50_ratio(self) -> float:
        return self.emulator.p50_ms / self.baseline.p50_ms

    @property
    def p99_ratio(self) -> float:
        return self.emulator.p99_ms / self.baseline.p99_ms

    @property
    def meets_bar(self) -> bool:
        return self.throughput_ratio >= self.min_throughput_ratio

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "emulator_per_second": self.emulator.per_second,
            "baseline_per_second": self.baseline.per_second,
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


def _table_cells(row: Comparison) -> tuple[str, ...]:
    emu, base = row.emulator, row.baseline
    verdict = "met" if row.meets_bar else "MISSED"
    return (
        row.name,
        f"{emu.per_second:,.0f} {row.unit}",
        f"{base.per_second:,.0f} {row.unit}",
        f"{row.throughput_ratio:.3f}",
        f"{emu.p50_ms:.2f} / {base.p50_ms:.2f}",
        f"{row.p50_ratio:.2f}",
        f"{emu.p99_ms:.2f} / {base.p99_ms:.2f}",
        f"{row.p99_ratio:.2f}",
        f"{emu.errors} / {base.errors}",
        f"{verdict} (>= {row.min_throughput_ratio:.2f})",
    )


def format_table(rows: Sequence[Comparison]) -> str:
    """Rows as a plain aligned table: the first column left-aligned, the figures right-aligned."""
    lines = [TABLE_HEADERS, *(_table_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADERS))]

    def render(cells: Sequence[str]) -> str:
        first, *rest = cells
        figures = (cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True))
        return "  ".join([first.ljust(widths[0]), *figures])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def write_results(rows: Sequence[Comparison], settings: Mapping[str, object]) -> tuple[Path, Path]:
    """Write the rows as JSON and the table as text to bench/results/, named by the UTC time."""
    RESULTS_DIR.mkdir(exist_ok=True)
    now = datetime.now(UTC)
    stem = RESULTS_DIR / now.strftime("%Y%m%dT%H%M%SZ")
    table = format_table(rows)
    document = {
        "time": now.isoformat(),
        "settings": dict(settings),
        "rows": [row.as_json() for row in rows],
        "table": table,
    }
    json_path, table_path = stem.with_suffix(".json"), stem.with_suffix(".txt")
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    table_path.write_text(table + "\n")
    return json_path, table_path
