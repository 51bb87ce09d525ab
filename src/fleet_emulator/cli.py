"""The ``fleet-emulator`` command line: ``serve`` starts the emulator; options have environment variables.

Built on click, which shows each option's environment variable in ``--help``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from fleet_emulator.backends.factory import BACKENDS
from fleet_emulator.domain.policies import AuthMode, Policies
from fleet_emulator.domain.rate_rules import PRESETS, RateRulesError, rules_from
from fleet_emulator.domain.scenario import ScenarioError
from fleet_emulator.server import (
    ADMIN_OFF,
    ADMIN_SAME_PORT,
    DEFAULT_JWT_SECRET,
    Emulator,
    Settings,
    StartupError,
)

F = TypeVar("F", bound=Callable[..., Any])

ENV_PREFIX = "FLEET_EMULATOR"
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def option(name: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``FLEET_EMULATOR_<NAME>`` and shows it in ``--help``."""
    flag = name.split("/")[0].removeprefix("--")
    envvar = f"{ENV_PREFIX}_{flag.replace('-', '_').upper()}"
    return click.option(name, envvar=envvar, show_envvar=True, **kwargs)


class Duration(click.ParamType[timedelta, Any]):
    """A duration such as 90s, 15m, 24h or 7d."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = DURATION.fullmatch(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 24h or 7d", param, ctx)
        return timedelta(**{UNITS[match.group(2)]: float(match.group(1))})


@click.group(context_settings={"show_default": True})
@click.version_option(package_name="fleet-emulator")
def main() -> None:
    """Local emulator of the fleet-state gRPC API (moia.fleet.state v1beta4, v1, v2)."""


@main.command()
@option("--host", default="0.0.0.0", help="Address to listen on.")
@option(
    "--port",
    default=50051,
    type=click.IntRange(0, 65535),
    help="gRPC port for the API, admin, health and reflection (0 picks a free port).",
)
@option(
    "--backend",
    default="memory",
    type=click.Choice(BACKENDS),
    help="Where state lives: 'memory' (in this process) or 'redis' (shared by replicas, see --redis-url).",
)
@option("--redis-url", default="redis://localhost:6379/0", help="Redis to use with --backend redis.")
@option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scenario YAML to load at start and on reset. [default: the bundled demo fleet]",
)
@option(
    "--retention",
    default="24h",
    type=Duration(),
    help="How long durable streams keep events (on the emulator's clock).",
)
@option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    help="Serve the admin service on a port of its own (0 picks a free one). [default: the API port]",
)
@option("--no-admin", is_flag=True, default=False, help="Switch the admin service off.")
@option(
    "--simulate/--no-simulate",
    default=True,
    help="Move the default namespace's vehicles: drive, charge, sleep, missions (on the emulator's clock).",
)
@option("--simulation-rate", default=1.0, type=click.FloatRange(min=0.01), help="Simulator steps per second.")
@option("--simulation-seed", default=0, type=int, help="The same seed gives the same simulation.")
@option(
    "--auth",
    default="none",
    type=click.Choice([m.name.lower() for m in AuthMode]),
    help="Bearer auth of the API: none, any (any token), or jwt (tokens from `fleet-emulator token`).",
)
@option("--jwt-secret", default=DEFAULT_JWT_SECRET, help="HS256 secret of the tokens (the same on replicas).")
@option(
    "--rate-limits",
    default="off",
    help=f"Per-client rate limits: a preset ({', '.join(PRESETS)}) or a YAML file of rules.",
)
@option(
    "--wake-up-delay-min",
    default="10s",
    type=Duration(),
    help="Shortest delay before a woken vehicle is online.",
)
@option(
    "--wake-up-delay-max",
    default="60s",
    type=Duration(),
    help="Longest delay before a woken vehicle is online.",
)
@option(
    "--unknown-values/--no-unknown-values",
    default=False,
    help="Responses carry enum values and fields that are not in the published protos.",
)
@option("--poll-interval", default="5s", type=Duration(), help="The client report flags faster polling.")
@option(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity.",
)
def serve(
    host: str,
    port: int,
    backend: str,
    redis_url: str,
    scenario: Path | None,
    retention: timedelta,
    admin_port: int | None,
    no_admin: bool,
    simulate: bool,
    simulation_rate: float,
    simulation_seed: int,
    auth: str,
    jwt_secret: str,
    rate_limits: str,
    wake_up_delay_min: timedelta,
    wake_up_delay_max: timedelta,
    unknown_values: bool,
    poll_interval: timedelta,
    log_level: str,
) -> None:
    """Serve the emulated API until SIGTERM or SIGINT, then stop gracefully."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    admin = ADMIN_OFF if no_admin else ADMIN_SAME_PORT if admin_port is None else admin_port
    if wake_up_delay_min > wake_up_delay_max:
        raise click.BadParameter(
            "must not be longer than --wake-up-delay-max", param_hint="--wake-up-delay-min"
        )
    try:
        rules = rules_from(rate_limits)
    except RateRulesError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate-limits") from exc
    policies = Policies(
        auth_mode=AuthMode[auth.upper()],
        rate_limits=rules,
        wake_up_delay_min=wake_up_delay_min,
        wake_up_delay_max=wake_up_delay_max,
        unknown_values=unknown_values,
        poll_interval=poll_interval,
    )
    settings = Settings(
        host=host,
        port=port,
        backend=backend,
        scenario=scenario,
        redis_url=redis_url,
        retention=retention,
        admin_port=admin,
        simulate=simulate,
        simulation_rate=simulation_rate,
        simulation_seed=simulation_seed,
        policies=policies,
        jwt_secret=jwt_secret,
    )
    try:
        asyncio.run(_serve(settings))
    except (ScenarioError, StartupError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Emulator(settings).serve_until(stop)


from fleet_emulator.cli_admin import ADMIN_COMMANDS  # noqa: E402 (it imports option and Duration from here)

for command in ADMIN_COMMANDS:
    main.add_command(command)
