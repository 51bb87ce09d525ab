"""The ``fleet-emulator`` command line: ``serve`` starts the emulator; options have environment variables.

Built on click, which shows each option's environment variable in ``--help``. A configuration error of
``serve`` is one line naming the setting and the cause, with an exit code per kind of problem: 2 an
option's value (or options that do not fit together), 3 the scenario, 4 the port, 5 Redis; a traceback
only with ``--log-level debug``. The first SIGTERM or SIGINT stops the emulator gracefully, in whatever
phase it is, a second one at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from fleet_emulator.backends.factory import BACKENDS, check_redis_url, safe_url
from fleet_emulator.domain.background import stop_task
from fleet_emulator.domain.namespaces import DEFAULT_LIMITS, NamespaceLimits
from fleet_emulator.domain.policies import AuthMode, Policies
from fleet_emulator.domain.rate_rules import PRESETS, RateRulesError, rules_from
from fleet_emulator.domain.scenario import ScenarioError
from fleet_emulator.domain.streams import MAX_LENGTH
from fleet_emulator.server import ADMIN_OFF, ADMIN_SAME_PORT, Emulator, Settings, StartupError
from fleet_emulator.telemetry import logs
from fleet_emulator.workers import run_workers

F = TypeVar("F", bound=Callable[..., Any])

ENV_PREFIX = "FLEET_EMULATOR"
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?")
SIZE_UNITS = {"B": 1, "KB": 10**3, "KiB": 2**10, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}
MAX_RETENTION = timedelta(days=365)
LONGEST_WAKE_UP = timedelta(hours=1)
MAX_WAIT_REPLICAS = 16
EXIT_SETTING = 2  # an option's value is invalid, or options do not fit together
EXIT_SCENARIO = 3  # the scenario cannot be loaded
log = logging.getLogger("fleet_emulator.cli")


def option(name: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``FLEET_EMULATOR_<NAME>`` and shows it in ``--help``."""
    flag = name.split("/")[0].removeprefix("--")
    envvar = f"{ENV_PREFIX}_{flag.replace('-', '_').upper()}"
    return click.option(name, envvar=envvar, show_envvar=True, **kwargs)


class Duration(click.ParamType[timedelta, Any]):
    """A duration such as 90s, 15m, 24h or 7d, within ``minimum`` and ``maximum``."""

    name = "duration"

    def __init__(self, minimum: timedelta = timedelta(0), maximum: timedelta = timedelta(days=3650)) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = DURATION.fullmatch(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 24h or 7d", param, ctx)
        try:
            duration = timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
        except OverflowError:
            duration = timedelta.max
        if not self.minimum <= duration <= self.maximum:
            self.fail(
                f"{value!r} is not between {_shown(self.minimum)} and {_shown(self.maximum)}", param, ctx
            )
        return duration


def _shown(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


@click.group(context_settings={"show_default": True})
@click.version_option(package_name="fleet-emulator")
def main() -> None:
    """Local emulator of the fleet-state gRPC API (moia.fleet.state v1beta4, v1, v2)."""


class ServeCommand(click.Command):
    """``serve``: an invalid option value is one line naming the option (exit code 2), not click's usage."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.BadParameter as exc:
            setting = exc.param.opts[0] if exc.param is not None and exc.param.opts else exc.param_hint
            raise SettingError(str(setting), exc.message) from None


class SettingError(click.ClickException):
    """A configuration error: one line naming the setting and the cause, and a distinct exit code."""

    def __init__(self, setting: str, cause: str, exit_code: int = EXIT_SETTING) -> None:
        super().__init__(f"{setting}: {cause}")
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"fleet-emulator: error: {self.format_message()}", err=True)


def _bytes(text: str) -> int:
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size like 16MiB, 512KiB or 1GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2) or "B"])


class ByteSize(click.ParamType[int, Any]):
    """A size such as 16MiB, 512KiB or 1GiB (or a number of bytes)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = _bytes(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


@main.command(cls=ServeCommand)
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
    "--redis-connect-timeout",
    default="30s",
    type=Duration(minimum=timedelta(seconds=0.1)),
    help="How long to wait at start for Redis to answer before giving up.",
)
@option(
    "--redis-wait-replicas",
    default=0,
    type=click.IntRange(0, MAX_WAIT_REPLICAS),
    help="Replicas each write waits for (WAIT) before it is acknowledged; fewer within 1 s is UNAVAILABLE. "
    "0: acknowledged by the master alone, which a fail-over may lose.",
)
@option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scenario YAML to load at start and on reset. [default: the bundled demo fleet]",
)
@option(
    "--retention",
    default="24h",
    type=Duration(minimum=timedelta(seconds=1), maximum=MAX_RETENTION),
    help="How long durable streams keep events (on the emulator's clock), at most 365d.",
)
@option(
    "--max-stream-length",
    default=MAX_LENGTH,
    type=click.IntRange(1, 10_000_000),
    help="Events a durable stream keeps at most, however recent; older ones go as if expired.",
)
@option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    help="Serve the admin service on a port of its own (0 picks a free one). [default: the API port]",
)
@option("--no-admin", is_flag=True, default=False, help="Switch the admin service off.")
@option(
    "--admin-token",
    default="",
    show_default="none",
    help="A secret every admin call must carry as `authorization: Bearer <token>` (needed with --auth jwt "
    "when the admin service is on the API port).",
)
@option(
    "--console-port",
    default=8080,
    type=click.IntRange(0, 65535),
    help="Serve the web console, /metrics and /healthz over HTTP on this port (0 picks a free one).",
)
@option("--no-console", is_flag=True, default=False, help="Switch the web console off.")
@option(
    "--simulate/--no-simulate",
    default=True,
    help="Move the default namespace's vehicles: drive, charge, sleep, missions (on the emulator's clock).",
)
@option(
    "--simulation-rate",
    default=1.0,
    type=click.FloatRange(min=0.01, max=1000),
    help="Simulator steps per second.",
)
@option("--simulation-seed", default=0, type=int, help="The same seed gives the same simulation.")
@option(
    "--auth",
    default="none",
    type=click.Choice([m.name.lower() for m in AuthMode]),
    help="Bearer auth of the API: none, any (any token), or jwt (tokens from `fleet-emulator token`).",
)
@option(
    "--jwt-secret",
    default="",
    show_default="random; on Redis one shared by the replicas",
    help="HS256 secret of the tokens.",
)
@option(
    "--rate-limits",
    default="off",
    help=f"Per-client rate limits: a preset ({', '.join(PRESETS)}) or a YAML file of rules.",
)
@option(
    "--wake-up-delay-min",
    default="10s",
    type=Duration(maximum=LONGEST_WAKE_UP),
    help="Shortest delay before a woken vehicle is online.",
)
@option(
    "--wake-up-delay-max",
    default="60s",
    type=Duration(maximum=LONGEST_WAKE_UP),
    help="Longest delay before a woken vehicle is online.",
)
@option(
    "--unknown-values/--no-unknown-values",
    default=False,
    help="Responses carry enum values and fields that are not in the published protos.",
)
@option(
    "--poll-interval",
    default="5s",
    type=Duration(minimum=timedelta(milliseconds=1), maximum=timedelta(days=1)),
    help="The client report flags faster polling.",
)
@option(
    "--max-namespaces",
    default=DEFAULT_LIMITS.max_namespaces,
    type=click.IntRange(1, 100_000),
    help="Namespaces the emulator holds at most besides the default one.",
)
@option(
    "--namespace-idle-timeout",
    default="1h",
    type=Duration(),
    help="A namespace unused for this long is dropped (0s: never).",
)
@option(
    "--journal-budget",
    default="16MiB",
    type=ByteSize(),
    help="Memory the call journal of one namespace may take; the oldest entries go first.",
)
@option(
    "--journal-total-budget",
    default="64MiB",
    type=ByteSize(),
    help="Memory the call journals of all namespaces may take together.",
)
@option(
    "--health-interval",
    default="1s",
    type=Duration(minimum=timedelta(milliseconds=1), maximum=timedelta(minutes=10)),
    help="How often the backend is checked for gRPC health.",
)
@option(
    "--grace-period",
    default="5s",
    type=Duration(maximum=timedelta(minutes=10)),
    help="How long in-flight calls get to finish on SIGTERM or SIGINT.",
)
@option(
    "--workers",
    default=1,
    type=click.IntRange(1, 64),
    help="Processes serving the port together (SO_REUSEPORT), acting as one emulator through Redis: "
    "--backend redis only. The first runs the simulator and the web console.",
)
@option(
    "--uvloop/--no-uvloop",
    default=True,
    help="Run on uvloop where it is installed (Linux, macOS), else on asyncio's own event loop.",
)
@option(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity.",
)
@option(
    "--log-format",
    default="text",
    type=click.Choice(logs.LOG_FORMATS),
    help="Log lines as text, or as one JSON object per line with the call's flow id, namespace and method.",
)
def serve(**options: Any) -> None:
    """Serve the emulated API until SIGTERM or SIGINT, then stop gracefully."""
    debug = options["log_level"] == "debug"
    logs.configure(options["log_level"], options["log_format"])
    settings = settings_from(options)
    if options["workers"] > 1:
        raise SystemExit(run_workers(functools.partial(_work, options), options["workers"]))
    _run(settings, options["uvloop"], debug)


def _work(options: dict[str, Any], index: int) -> None:
    """Worker ``index`` of ``serve --workers``: the emulator on the shared ports; the first one alone
    runs the simulator and the console."""
    logs.configure(options["log_level"], options["log_format"])
    settings = replace(settings_from(options), reuse_port=True)
    if index > 0:
        settings = replace(settings, simulate=False, console_port=None)
    log.info("worker %d of %d: pid %d", index, options["workers"], os.getpid())
    try:
        _run(settings, options["uvloop"], options["log_level"] == "debug")
    except SettingError as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None


def _run(settings: Settings, use_uvloop: bool, debug: bool) -> None:
    """Serve with ``settings`` until signalled; ``SettingError`` for a problem at start."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory(use_uvloop)) as runner:
            runner.run(_serve(settings))
    except StartupError as exc:
        raise SettingError(exc.setting, str(exc), exc.exit_code) from None
    except Exception as exc:
        log.debug("the emulator failed", exc_info=True)
        if debug:
            raise
        raise SettingError("serve", f"failed: {exc!r} (--log-level debug shows where)", 1) from None


def settings_from(options: dict[str, Any]) -> Settings:
    """The emulator's settings from the options of ``serve``; ``SettingError`` for values that do not
    fit together or cannot be used."""
    backend, url = options["backend"], options["redis_url"]
    if backend == "redis" and (problem := check_redis_url(url)):
        raise SettingError("--redis-url", f"{safe_url(url)!r} {problem}")
    if backend != "redis" and options["redis_wait_replicas"]:
        raise SettingError(
            "--redis-wait-replicas", "needs --backend redis: the memory backend has no replicas"
        )
    if options["workers"] > 1:
        _check_workers(options)
    if options["wake_up_delay_min"] > options["wake_up_delay_max"]:
        raise SettingError("--wake-up-delay-min", "must not be longer than --wake-up-delay-max")
    no_admin, admin_port, admin_token = options["no_admin"], options["admin_port"], options["admin_token"]
    admin = ADMIN_OFF if no_admin else ADMIN_SAME_PORT if admin_port is None else admin_port
    if options["auth"] == "jwt" and admin == ADMIN_SAME_PORT and not admin_token:
        raise SettingError(
            "--auth",
            "jwt with the admin service on the API port lets any client issue itself tokens: set "
            "--admin-token, or move the admin service to --admin-port, or switch it off with --no-admin",
        )
    try:
        rules = rules_from(options["rate_limits"])
    except RateRulesError as exc:
        raise SettingError("--rate-limits", str(exc)) from None
    policies = Policies(
        auth_mode=AuthMode[options["auth"].upper()],
        rate_limits=rules,
        wake_up_delay_min=options["wake_up_delay_min"],
        wake_up_delay_max=options["wake_up_delay_max"],
        unknown_values=options["unknown_values"],
        poll_interval=options["poll_interval"],
    )
    limits = NamespaceLimits(
        max_namespaces=options["max_namespaces"],
        idle_timeout=options["namespace_idle_timeout"],
        journal_bytes=options["journal_budget"],
        journal_total_bytes=max(options["journal_total_budget"], options["journal_budget"]),
    )
    return Settings(
        host=options["host"],
        port=options["port"],
        backend=backend,
        scenario=options["scenario"],
        redis_url=url,
        redis_connect_timeout=options["redis_connect_timeout"],
        redis_wait_replicas=options["redis_wait_replicas"],
        retention=options["retention"],
        max_stream_length=options["max_stream_length"],
        admin_port=admin,
        admin_token=admin_token,
        simulate=options["simulate"],
        simulation_rate=options["simulation_rate"],
        simulation_seed=options["simulation_seed"],
        health_interval_s=options["health_interval"].total_seconds(),
        policies=policies,
        jwt_secret=options["jwt_secret"],
        grace_seconds=options["grace_period"].total_seconds(),
        limits=limits,
        console_port=None if options["no_console"] else options["console_port"],
    )


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for and installed; None for asyncio's own."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _check_workers(options: dict[str, Any]) -> None:
    if options["backend"] != "redis":
        raise SettingError(
            "--workers",
            "needs --backend redis: on the memory backend each worker would be an emulator of its own",
        )
    if options["port"] == 0 or options["admin_port"] == 0:
        raise SettingError(
            "--workers", "needs fixed ports: with port 0 each worker would pick one of its own"
        )


async def _serve(settings: Settings) -> None:
    """Serve until the first SIGTERM or SIGINT; a second one ends the process at once."""
    try:
        emulator = Emulator(settings)
    except ScenarioError as exc:
        raise StartupError("--scenario", "; ".join(str(exc).splitlines()), EXIT_SCENARIO) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: stopping now", sig.name)
            logging.shutdown()
            os._exit(128 + sig.value)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await emulator.serve_until(stop)
    finally:
        await _stop_leftovers()


async def _stop_leftovers() -> None:
    """Stop tasks still running (asyncio.run would wait for each, forever if one swallows its
    cancellation); if one will not stop, end the process here."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    stopped = await asyncio.gather(*(stop_task(t) for t in others))
    if not all(stopped):
        log.warning("exiting with tasks that would not stop")
        logging.shutdown()
        os._exit(0)


from fleet_emulator.cli_admin import ADMIN_COMMANDS  # noqa: E402 (it imports option and Duration from here)

for command in ADMIN_COMMANDS:
    main.add_command(command)
