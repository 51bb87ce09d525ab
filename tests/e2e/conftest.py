"""Fixtures of the end-to-end tests: one ``fleet-emulator serve`` process with the demo scenario, shared.

The tests that need no options of their own share it, which keeps the suite fast. It listens on a free port
of 127.0.0.1, is ready once its gRPC health check says SERVING, and is stopped with SIGTERM at the end of
the session; the fixture fails unless it then exits with code 0 within a few seconds (a graceful stop).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import EmulatorProcess, free_port, serve_command, serving


@pytest.fixture(scope="session")
def demo_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """``fleet-emulator serve`` with the bundled demo scenario, SERVING on a free port of 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "serve.log"
    with serving(serve_command("--host", "127.0.0.1", "--port", str(port)), port, log) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def address(demo_emulator: EmulatorProcess) -> str:
    """``127.0.0.1:<port>`` of the shared demo emulator."""
    return demo_emulator.address
