"""The long fuzz profile's switch, its tally of calls, and the histogram printed and written at the end.

The tests under ``tests/fuzz`` carry the ``fuzz`` marker and run only when the environment variable
``FUZZ_CALLS`` gives the number of fuzzed calls (``make fuzz`` sets 100,000; ``make fuzz FUZZ_CALLS=10000``
a shorter run); otherwise, as in ``make test``, they are skipped. One ``Tally`` counts the calls of the
session per backend, status code and ErrorInfo reason and collects the findings; at the end its histogram
is printed and written to ``bench/results/fuzz-histogram.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.fuzzing import Tally

FUZZ_CALLS_ENV = "FUZZ_CALLS"
HISTOGRAM = Path("bench") / "results" / "fuzz-histogram.txt"
TALLY = pytest.StashKey[Tally]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: the long fuzz profile against real processes (make fuzz)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(FUZZ_CALLS_ENV):
        return
    skip = pytest.mark.skip(reason=f"the long fuzz profile runs with `make fuzz` ({FUZZ_CALLS_ENV} is unset)")
    for item in items:
        if item.get_closest_marker("fuzz"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fuzz_calls() -> int:
    """How many fuzzed calls the whole run makes, over both backends."""
    calls = int(os.environ[FUZZ_CALLS_ENV])
    assert calls > 0, f"{FUZZ_CALLS_ENV} must be positive"
    return calls


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    """The session's count of calls and its findings, kept for the summary at the end."""
    made = Tally()
    request.config.stash[TALLY] = made
    return made


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    made = config.stash.get(TALLY, None)
    if made is None or not made.counts:
        return
    text = made.render()
    path = config.rootpath / HISTOGRAM
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    terminalreporter.section("fuzz histogram")
    for line in text.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {path})")
