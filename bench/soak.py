"""``python -m bench.soak`` (``make soak``): does a long-running ``fleet-emulator serve`` bound its memory?

It starts a real ``fleet-emulator serve --host 127.0.0.1 --port <free> --no-simulate --retention 2m
--namespace-idle-timeout 1m`` (the memory backend, or ``--backend redis`` on a private ``redis-server`` of its
own, never another Redis), samples the server's RSS every few seconds and goes through these phases: *warm-up*
(one call of each kind, the streams and traffic for a minute, all closed, the journal cleared: what the
process allocates once is not judged), *before* (idle: the reference), *open* (holder processes open 1,000
streams, half ``StreamVehicleEvents`` and half ``SubscribeToVehicleStates`` over the demo fleets ``hamburg``
and ``hanover``), *idle* (all open, no traffic: RSS per open idle stream), *traffic* (for ``--minutes``: a
steady pace of admin ``PublishEvent``/``UpdateVehicle``, ``GetVehicle``/``ListVehicles``, streams closed and
reopened with resume, and a fresh namespace every few seconds, see ``soak_clients``), *closing*, *closed* and
*release* (every stream closed, the traffic stopped, then the journal cleared and the default namespace reset,
since they keep what their bounds allow by design: up to ``--release-seconds`` for RSS to come down). It fails
(exit code 1) when RSS grows after the warm-up or is not released (criteria in ``soak_memory``), or when
streams could not be opened; it prints the series and the verdict and writes them to
``bench/results/soak-<backend>.txt`` (the server's log beside it). Retention and the idle timeout of
namespaces are short so that retained events and abandoned namespaces reach a steady state early in the run;
the journal keeps its default byte budgets; ``--serve-option`` passes further options to ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import grpc
import redis
from tests.e2e.harness import FLEET_EMULATOR, EmulatorProcess, clean_env, free_port, start

from bench.load import SPAWN, stop_all
from bench.private_redis import private_redis
from bench.report import RESULTS_DIR
from bench.soak_clients import (
    CHANNEL_OPTIONS,
    Control,
    HolderReport,
    TrafficPlan,
    TrafficReport,
    holder_process,
    traffic_process,
)
from bench.soak_memory import Growth, Release, Sample, Sampler, judge_growth, judge_release
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2

OPEN_TIMEOUT_SECONDS = 180.0
CLOSE_TIMEOUT_SECONDS = 60.0
DIAGNOSTIC_SECONDS = 10.0
BEFORE_SECONDS = 35.0
WARM_UP_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 30.0
HAMBURG_VEHICLE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"


@dataclass(frozen=True)
class Options:
    minutes: float = 10.0
    backend: str = "memory"
    streams: int = 1000
    holders: int = 2
    rate: float = 10.0
    unary_rate: float = 4.0
    reopen_rate: float = 2.0
    namespace_every: float = 10.0
    namespace_lifetime: float = 20.0
    delete_namespaces: bool = False
    retention: str = "2m"
    namespace_idle_timeout: str = "1m"
    sample_seconds: float = 5.0
    settle_seconds: float = 10.0
    release_seconds: float = 60.0
    warmup_fraction: float = 0.3
    max_slope: float = 1.0
    max_rise: float = 0.10
    # CPython keeps an arena while any object in it lives, so a heap that grew under load never shrinks
    # all the way; memory that is not given back at all, or that grows with time, is what a leak looks like
    release_margin: float = 0.5
    serve_option: tuple[str, ...] = ()
    serve_env: tuple[str, ...] = ()


HELP = {
    "minutes": "minutes of traffic",
    "backend": "memory or redis (a private redis-server)",
    "streams": "streams held open",
    "holders": "client processes holding the streams",
    "rate": "PublishEvent + UpdateVehicle per second",
    "unary_rate": "GetVehicle + ListVehicles per second",
    "reopen_rate": "streams closed and reopened per second",
    "namespace_every": "seconds between fresh namespaces (0: none)",
    "namespace_lifetime": "seconds each namespace is used",
    "delete_namespaces": "delete each namespace after use (DeleteNamespace)",
    "retention": "serve --retention",
    "namespace_idle_timeout": "serve --namespace-idle-timeout",
    "sample_seconds": "seconds between RSS samples",
    "settle_seconds": "seconds of idle sampling before and after opening the streams",
    "release_seconds": "seconds allowed for RSS to come down after the close",
    "warmup_fraction": "share of the traffic phase not judged for growth",
    "max_slope": "MiB per minute after the warm-up that count as growth",
    "max_rise": "rise of the final RSS over the warm-up's that counts as growth",
    "release_margin": "share of the peak growth allowed to remain after the close",
    "serve_option": "one more option for serve, e.g. --serve-option=--journal-budget=4MiB (repeatable)",
    "serve_env": "one more NAME=VALUE in serve's environment, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
}


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    defaults = Options()
    for name, value in asdict(defaults).items():
        option = "--" + name.replace("_", "-")
        text = f"{HELP[name]} (default {value})"
        if isinstance(value, bool):
            parser.add_argument(option, action="store_true", help=HELP[name])
        elif isinstance(value, tuple):
            parser.add_argument(option, action="append", default=[], help=HELP[name])
        elif name == "backend":
            parser.add_argument(option, choices=("memory", "redis"), default=value, help=text)
        else:
            parser.add_argument(option, type=type(value), default=value, help=text)
    values = vars(parser.parse_args(argv))
    options = Options(**{**values, **{name: tuple(values[name]) for name in ("serve_option", "serve_env")}})
    if any("=" not in assignment for assignment in options.serve_env):
        parser.error("--serve-env takes NAME=VALUE")
    judged = options.minutes * 60 * (1 - options.warmup_fraction) / options.sample_seconds
    if judged < 5:
        parser.error("too few samples after the warm-up: raise --minutes or lower --sample-seconds")
    return options


# ------------------------------------------------------------------------------------------ the server


def serve_command(options: Options, port: int, redis_url: str | None) -> list[str]:
    command = [str(FLEET_EMULATOR), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-simulate"]
    command += ["--retention", options.retention, "--namespace-idle-timeout", options.namespace_idle_timeout]
    command += ["--log-level", "warning", "--backend", options.backend]
    if redis_url is not None:
        command += ["--redis-url", redis_url]
    return command + list(options.serve_option)


@contextmanager
def serving(command: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[EmulatorProcess]:
    """The server for the block; SIGTERM at the end (its exit code is in ``process.returncode``)."""
    server = start(command, port, log, clean_env(**env))
    try:
        server.wait_ready(READY_TIMEOUT_SECONDS)
        yield server
    finally:
        server.terminate()


def redis_memory(url: str) -> Callable[[], float]:
    client = redis.Redis.from_url(url)

    def used() -> float:
        info: Any = client.info("memory")  # redis-py types replies loosely
        return float(info["used_memory"]) / 1024 / 1024

    return used


def prime(address: str) -> None:
    """One call of each kind the soak makes, so that lazy set-up is in the reference RSS, not the growth."""
    asyncio.run(_prime(address))


async def _prime(address: str) -> None:
    v2_path, admin = "/moia.fleet.state.v2.FleetStateService", "/emulator.admin.v1.AdminService"
    change = v2.LockChanged(lock_state=v2.LOCK_STATE_LOCKED)
    update = admin_pb2.UpdateVehicleRequest(
        vehicle=v2.Vehicle(id=HAMBURG_VEHICLE, battery=v2.Battery(state_of_charge_percent=50))
    )
    update.update_mask.paths.append("battery.state_of_charge_percent")
    unary: list[tuple[str, Any]] = [
        (f"{v2_path}/ListVehicles", v2.ListVehiclesRequest(fleet_id="hamburg")),
        (f"{v2_path}/ListVehicles", v2.ListVehiclesRequest(fleet_id="hanover")),
        (f"{v2_path}/GetVehicle", v2.GetVehicleRequest(vehicle_id=HAMBURG_VEHICLE)),
        (
            f"{admin}/PublishEvent",
            admin_pb2.PublishEventRequest(event=v2.Event(vehicle_id=HAMBURG_VEHICLE, lock_changed=change)),
        ),
        (f"{admin}/UpdateVehicle", update),
    ]
    streams: list[tuple[str, Any]] = [
        (f"{v2_path}/StreamVehicleEvents", v2.StreamRequest(event_id="fleets/hamburg/vehicle-events")),
        (f"{v2_path}/SubscribeToVehicleStates", v2.SubscribeToVehicleStatesRequest(fleet_id="hamburg")),
    ]
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        for method, request in unary:
            send = channel.unary_unary(method, type(request).SerializeToString, None)
            await send(request, timeout=CALL_TIMEOUT_SECONDS)
        for method, request in streams:
            call = channel.unary_stream(method, type(request).SerializeToString, None)(
                request, timeout=CALL_TIMEOUT_SECONDS
            )
            await call.read()
            call.cancel()


def admin_call(address: str, method: str, request: Any) -> None:
    """One admin call in the default namespace."""

    async def send() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            path = f"/emulator.admin.v1.AdminService/{method}"
            await channel.unary_unary(path, type(request).SerializeToString, None)(
                request, timeout=CALL_TIMEOUT_SECONDS
            )

    asyncio.run(send())


# ----------------------------------------------------------------------------------------- the clients


@dataclass
class Clients:
    """The client processes and what they reported so far."""

    control: Control
    holders: Sequence[BaseProcess]
    traffic: BaseProcess
    inbox: Queue[Any]
    messages: list[Any] = field(default_factory=list)

    def drain(self) -> None:
        while True:
            try:
                self.messages.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        failed = [p.name for p in (*self.holders, self.traffic) if p.exitcode not in (None, 0)]
        if failed:
            raise RuntimeError(f"client process {', '.join(failed)} failed (see above)")

    def of(self, kind: type | str) -> list[Any]:
        if isinstance(kind, str):
            return [m for m in self.messages if isinstance(m, tuple) and m[0] == kind]
        return [m for m in self.messages if isinstance(m, kind)]

    def opened(self) -> bool:
        self.drain()
        return len(self.of("opened")) == len(self.holders) and len(self.of("ready")) == 1

    def reported(self) -> bool:
        self.drain()
        return len(self.of(HolderReport)) == len(self.holders) and len(self.of(TrafficReport)) == 1


@contextmanager
def clients(address: str, options: Options) -> Iterator[Clients]:
    control = Control(SPAWN.Event(), SPAWN.Event())
    inbox: Queue[Any] = SPAWN.Queue()
    shares = [
        options.streams // options.holders + (i < options.streams % options.holders)
        for i in range(options.holders)
    ]
    firsts = [sum(shares[:i]) for i in range(len(shares))]
    holders = [
        SPAWN.Process(
            target=holder_process,
            args=(address, (i, firsts[i], shares[i]), options.reopen_rate / options.holders, control, inbox),
            name=f"holder-{i}",
        )
        for i in range(options.holders)
    ]
    plan = TrafficPlan(
        options.rate,
        options.unary_rate,
        options.namespace_every,
        options.namespace_lifetime,
        options.delete_namespaces,
    )
    traffic = SPAWN.Process(target=traffic_process, args=(address, plan, control, inbox), name="traffic")
    for process in (*holders, traffic):
        process.start()
    try:
        yield Clients(control, holders, traffic, inbox)
    finally:
        control.stop.set()
        stop_all([*holders, traffic])


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    options: Options
    command: list[str]
    samples: list[Sample]
    before: float
    idle_open: float
    opened: int
    growth: Growth | None
    release: Release | None
    holders: list[HolderReport]
    traffic: TrafficReport | None
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def per_stream_kib(self) -> float:
        return (self.idle_open - self.before) * 1024 / max(1, self.opened)

    @property
    def passed(self) -> bool:
        grew = self.growth is None or self.growth.grows
        kept = self.release is None or not self.release.released
        return not (grew or kept or self.problems)


def median_of(samples: Sequence[Sample]) -> float:
    return statistics.median(s.rss_mib for s in samples)


def warm_up(options: Options, address: str, sampler: Sampler) -> None:
    """The streams and the traffic once, for ``WARM_UP_SECONDS``, then closed, and the journal cleared of
    them: what the process allocates once and keeps (gRPC's and protobuf's pools, conversion plans, the
    heap it grew into, which CPython's allocator keeps partly in use) is not what the soak is about; what
    more it keeps at the end is."""
    with clients(address, options) as running:
        sampler.run("warm-up", OPEN_TIMEOUT_SECONDS, until=running.opened)
        running.control.traffic.set()
        sampler.run("warm-up", WARM_UP_SECONDS)
        running.control.stop.set()
        sampler.run("warm-up", CLOSE_TIMEOUT_SECONDS, until=running.reported)
    admin_call(address, "ClearJournal", admin_pb2.ClearJournalRequest())


def soak(options: Options, address: str, sampler: Sampler) -> Outcome:
    prime(address)
    warm_up(options, address, sampler)
    # long enough for the emulator to give freed memory back (it does every 30 s): the last sample counts
    before = sampler.run("before", max(options.settle_seconds, BEFORE_SECONDS))[-1].rss_mib
    outcome = Outcome(options, [], sampler.samples, before, before, 0, None, None, [], None)
    with clients(address, options) as running:
        sampler.run("open", OPEN_TIMEOUT_SECONDS, until=running.opened)
        if not running.opened():
            raise RuntimeError(f"the streams did not open within {OPEN_TIMEOUT_SECONDS:.0f} s")
        outcome.opened = sum(count for _, _, count in running.of("opened"))
        if outcome.opened < options.streams:
            outcome.problems.append(f"only {outcome.opened} of {options.streams} streams opened")
        outcome.idle_open = median_of(sampler.run("idle", options.settle_seconds))
        running.control.traffic.set()
        traffic = sampler.run("traffic", options.minutes * 60)
        running.control.stop.set()
        sampler.run("closing", CLOSE_TIMEOUT_SECONDS, until=running.reported)
        peak = max(s.rss_mib for s in sampler.samples)
        if not running.reported():
            outcome.problems.append(f"the clients did not stop within {CLOSE_TIMEOUT_SECONDS:.0f} s")
        outcome.holders = sorted(running.of(HolderReport), key=lambda r: r.index)
        outcome.traffic = next(iter(running.of(TrafficReport)), None)
    outcome.growth = judge_growth(traffic, options.warmup_fraction, options.max_slope, options.max_rise)
    sampler.run("closed", DIAGNOSTIC_SECONDS)
    # What the emulator keeps by design, within its bounds, goes: the journal (its byte budget) and the
    # retained events and state (retention, the scenario), as between two tests.
    admin_call(address, "ClearJournal", admin_pb2.ClearJournalRequest())
    admin_call(address, "ResetEmulator", admin_pb2.ResetEmulatorRequest())
    target = before + options.release_margin * (peak - before)
    after = sampler.run(
        "release", options.release_seconds, until=lambda: sampler.samples[-1].rss_mib <= target
    )
    outcome.release = judge_release(before, peak, after, options.release_margin)
    return outcome


def run(options: Options) -> Outcome:
    RESULTS_DIR.mkdir(exist_ok=True)
    log = RESULTS_DIR / f"soak-{options.backend}.log"
    with ExitStack() as stack:
        redis_url = stack.enter_context(private_redis()) if options.backend == "redis" else None
        port = free_port()
        command = serve_command(options, port, redis_url)
        env = dict(assignment.split("=", 1) for assignment in options.serve_env)
        server = stack.enter_context(serving(command, port, log, env))
        extra = None if redis_url is None else redis_memory(redis_url)
        sampler = Sampler(server.process.pid, options.sample_seconds, extra, echo=True)
        outcome = soak(options, server.address, sampler)
        outcome.command = command
    outcome.exit_code = server.process.returncode
    if outcome.exit_code != 0:
        outcome.problems.append(f"serve exited with {outcome.exit_code} after SIGTERM (None: killed)")
    return outcome


# ---------------------------------------------------------------------------------------- the report


def format_outcome(outcome: Outcome) -> str:
    options = outcome.options
    redis_column = options.backend == "redis"
    lines = [
        f"soak of fleet-emulator serve, {options.backend} backend: {options.streams} streams, "
        f"{options.minutes:g} min of traffic",
        "command: " + " ".join([*options.serve_env, "fleet-emulator", *outcome.command[1:]]),
        "options: " + json.dumps(asdict(options)),
        "",
        f"{'t s':>7}  {'phase':<16}{'RSS MiB':>9}" + ("  redis used MiB" if redis_column else ""),
    ]
    for s in outcome.samples:
        extra = f"  {s.extra_mib:>15.1f}" if redis_column and s.extra_mib is not None else ""
        lines.append(f"{s.seconds:>7.1f}  {s.phase:<16}{s.rss_mib:>9.1f}{extra}")
    lines += [
        "",
        f"before the streams: {outcome.before:.1f} MiB; {outcome.opened} streams open and idle: "
        f"{outcome.idle_open:.1f} MiB, {outcome.per_stream_kib:.1f} KiB per open idle stream",
    ]
    for phase in ("closed",):
        taken = [s for s in outcome.samples if s.phase == phase]
        if taken and outcome.release is not None:
            rss, target = taken[-1].rss_mib, outcome.release.target_mib
            within = "within" if rss <= target else "above"
            lines.append(
                f"then {phase} (information only): {rss:.1f} MiB, {within} the release target {target:.1f}"
            )
    for report in outcome.holders:
        lines.append(
            f"holder {report.index}: {report.streams} streams, {report.received:,} messages, "
            f"{report.reopened} reopened ({report.resumed} resumed), errors {report.errors or 'none'}"
        )
    received = sum(report.received for report in outcome.holders)
    events, states = (options.streams + 1) // 2, options.streams // 2
    expected = options.rate * events / 2 + options.rate / 2 * states / 2
    lines.append(
        f"messages received: {received / (options.minutes * 60):,.0f}/s over the traffic phase, "
        f"about {expected:,.0f}/s expected from the pace"
    )
    if outcome.traffic is not None:
        lines.append(f"traffic: {outcome.traffic.namespaces} namespaces used, "
                     f"{outcome.traffic.namespace_stream_messages:,} messages on their streams")  # fmt: skip
        for name, calls in outcome.traffic.calls.items():
            lines.append(f"  {name}: {json.dumps(calls)}")
    lines.append("")
    for verdict in (outcome.growth, outcome.release):
        if verdict is not None:
            lines.append(verdict.describe())
    lines += [f"problem: {problem}" for problem in outcome.problems]
    lines.append(f"verdict: {'PASS' if outcome.passed else 'FAIL'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.monotonic()
    outcome = run(options)
    text = format_outcome(outcome) + f"\nran for {time.monotonic() - started:.0f} s\n"
    print(text)
    path = RESULTS_DIR / f"soak-{options.backend}.txt"
    path.write_text(text)
    print(f"wrote {path}")
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
