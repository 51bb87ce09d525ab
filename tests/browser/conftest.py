"""Fixtures of the browser tests: a real ``fleet-emulator serve`` with its web console, and Chromium pages.

The emulator runs as a process on free ports (gRPC and console) with the demo scenario and the simulator
off, so that vehicles keep the state the tests give them; it is ready once gRPC health says SERVING, which
the console precedes. Chromium is Debian's (``chromium`` on the PATH), driven headless by Playwright; the
tests are skipped with the reason when it is missing. Every page fails its test on any console error or
warning and on any uncaught exception, so a page that logs a problem does not pass. Tests that change
state work in a namespace of their own, picked in the console's header as a user would.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, expect, sync_playwright

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from tests.e2e.harness import free_port, serve_command, serving

CHROMIUM = shutil.which("chromium")
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
NAMESPACE_HEADER = "x-emulator-namespace"


@dataclass(frozen=True)
class Console:
    """A running emulator: the console's URL, and gRPC stubs aimed at it in ``namespace``."""

    url: str
    api: v2_grpc.FleetStateServiceStub
    admin: admin_pb2_grpc.AdminServiceStub
    namespace: str = ""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((NAMESPACE_HEADER, self.namespace),) if self.namespace else ()


@contextmanager
def console_serving(log: Path, *options: str) -> Iterator[Console]:
    """``fleet-emulator serve`` with the console on free ports and ``options``, for the ``with`` block."""
    port, console_port = free_port(), free_port()
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--console-port", str(console_port), *options
    )
    with serving(command, port, log) as emulator, grpc.insecure_channel(emulator.address) as channel:
        yield Console(
            f"http://127.0.0.1:{console_port}",
            v2_grpc.FleetStateServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for a module: Playwright's event loop ends with it, before the async
    tests of other modules run theirs."""
    if CHROMIUM is None:
        pytest.skip("no chromium on the PATH: install Debian's chromium package (the Makefile does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shared_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One emulator with its console for the tests of a module, in its default namespace."""
    with console_serving(tmp_path_factory.mktemp("console") / "serve.log") as console:
        yield console


@pytest.fixture
def console(shared_console: Console) -> Console:
    """The module's emulator in the default namespace."""
    return shared_console


@pytest.fixture
def own_namespace(shared_console: Console) -> Console:
    """The module's emulator in a new namespace of this test."""
    return Console(
        shared_console.url, shared_console.api, shared_console.admin, f"browser-{uuid.uuid4().hex[:12]}"
    )


PageOpener = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[PageOpener]:
    """Opens a page of a console (``open_page(console, "#/fleets")``) in a browser context of its own;
    each page fails the test when it logs an error or a warning or throws."""
    problems: list[str] = []
    contexts = []

    def record(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text} at {message.location}")

    def opener(console: Console, route: str = "", viewport: ViewportSize = VIEWPORT) -> Page:
        context = browser.new_context(viewport=viewport, base_url=console.url)
        contexts.append(context)
        page = context.new_page()
        page.on("console", record)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto("/")
        if console.namespace:
            page.get_by_label("Namespace").fill(console.namespace)
            page.get_by_label("Namespace").press("Enter")
        page.goto(f"/{route}")
        expect(page.locator("h1")).to_be_visible()
        return page

    yield opener
    for context in contexts:
        context.close()
    assert not problems, "the console logged problems:\n" + "\n".join(problems)
