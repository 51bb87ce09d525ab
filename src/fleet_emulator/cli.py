"""The ``fleet-emulator`` command line: ``serve`` starts the emulator; options have environment variables.

Built on click, which shows each option's environment variable in ``--help``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from fleet_emulator.backends.factory import BACKENDS
from fleet_emulator.domain.scenario import ScenarioError
from fleet_emulator.server import Emulator, Settings

ENV_PREFIX = "FLEET_EMULATOR"


@click.group(context_settings={"auto_envvar_prefix": ENV_PREFIX, "show_default": True})
@click.version_option(package_name="fleet-emulator")
def main() -> None:
    """Local emulator of the fleet-state gRPC API (moia.fleet.state v1beta4, v1, v2)."""


@main.command()
@click.option("--host", default="0.0.0.0", show_envvar=True, help="Address to listen on.")
@click.option(
    "--port",
    default=50051,
    type=click.IntRange(0, 65535),
    show_envvar=True,
    help="gRPC port for the API, health and reflection (0 picks a free port).",
)
@click.option(
    "--backend",
    default="memory",
    type=click.Choice(BACKENDS),
    show_envvar=True,
    help="Where state lives: 'memory' (in this process) or 'redis' (shared by replicas, see --redis-url).",
)
@click.option(
    "--redis-url",
    default="redis://localhost:6379/0",
    show_envvar=True,
    help="Redis to use with --backend redis.",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    show_envvar=True,
    help="Scenario YAML to load at start and on reset. [default: the bundled demo fleet]",
)
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    show_envvar=True,
    help="Log verbosity.",
)
def serve(host: str, port: int, backend: str, redis_url: str, scenario: Path | None, log_level: str) -> None:
    """Serve the emulated API until SIGTERM or SIGINT, then stop gracefully."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(host=host, port=port, backend=backend, scenario=scenario, redis_url=redis_url)
    try:
        asyncio.run(_serve(settings))
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Emulator(settings).serve_until(stop)
