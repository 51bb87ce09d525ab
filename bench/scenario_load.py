"""Scenario loading: ``AdminService/LoadScenario`` of 10,000 generated vehicles, on memory and on Redis.

The scenario is a small YAML file of four fleets that each ``generate`` a share of the vehicles, so the
request is a few hundred bytes and all the work is the server's. Each backend's emulator (its own spawned
process; Redis on a private, flushed ``redis-server``) loads it ``rounds`` times into a namespace of its
own; the baseline, measured in the same run, is the least any loader has to do: ``yaml.safe_load`` of the
same text and the construction of the same vehicles with the domain's generator (``scenario.generated``)
plus a set-based uniqueness check, in the bench process, without schema validation, storage or gRPC.
So the ratio is (baseline time) / (LoadScenario time). While the loads run, a separate probe process
sends ``GetVehicle`` of a demo vehicle in the default namespace at a fixed pace (open loop, so a stalled
server shows in every call sent while it stalls); the responsiveness row compares the p99 of the calls
sent during a load with the p99 of the calls sent in a quiet window before, on the same server, and its
bar is a p99 at most ``MAX_P99_RATIO`` times the quiet one. Its size is ``Load.scenario`` (``--quick``:
2,000 vehicles, one load); run ``python -m bench.scenario_load --vehicles N`` for this benchmark alone.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType

import grpc
import yaml

from bench.load import SPAWN, START_TIMEOUT_SECONDS, Load, ScenarioLoad, collect, stop_all
from bench.private_redis import flush, private_redis
from bench.report import Comparison, Measurement, format_bars, format_table
from bench.servers import run_emulator, serving
from bench.unary import HAMBURG_VEHICLE_ID
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.domain import models
from fleet_emulator.domain.scenario import generated

BACKENDS = ("memory", "redis")
NAMESPACE = "bench-scenario"
NAMESPACE_HEADER = "x-emulator-namespace"
LOAD_METHOD = "/emulator.admin.v1.AdminService/LoadScenario"
GET_METHOD = "/moia.fleet.state.v2.FleetStateService/GetVehicle"
LOAD_TIMEOUT_SECONDS = 600.0
PROBE_TIMEOUT_SECONDS = 120.0
MAX_P99_RATIO = 10.0  # GetVehicle p99 during a load, at most this many times the quiet p99
MIN_LOAD_RATIO = {"memory": 0.25, "redis": 0.2}  # baseline time / LoadScenario time, at least
BASELINE_LEAST_ROUNDS = 3  # the construction varies by tens of percent from run to run
FLEETS = (  # id, city, latitude, longitude
    ("berlin", "Berlin", 52.52, 13.405),
    ("munich", "Munich", 48.137, 11.575),
    ("cologne", "Cologne", 50.938, 6.96),
    ("leipzig", "Leipzig", 51.34, 12.375),
)
SPEC = {"make": "Volkswagen", "model": "ID. Buzz", "seats": 6, "automation_level": "SAE_2"}


def scenario_yaml(vehicles: int) -> str:
    """The scenario: ``FLEETS``, each generating its share of ``vehicles``."""
    shares = [vehicles // len(FLEETS) + (i < vehicles % len(FLEETS)) for i in range(len(FLEETS))]
    fleets = [
        {
            "id": fleet_id,
            "city": city,
            "area": {"latitude": lat, "longitude": lon, "radius_km": 10},
            "vehicle_spec": {**SPEC, "license_plate": f"{fleet_id[0].upper()}-MO"},
            "generate": {"count": share, "first_label": 1000},
        }
        for (fleet_id, city, lat, lon), share in zip(FLEETS, shares, strict=True)
    ]
    text: str = yaml.safe_dump({"name": f"bench-{vehicles}", "seed": 7, "fleets": fleets}, sort_keys=False)
    return text


def construct(text: str) -> int:
    """The baseline: parse the YAML and build its vehicles as the emulator does, nothing else; their count."""
    data = yaml.safe_load(text)
    now = datetime.now(UTC)
    rng = random.Random(data.get("seed", 0))
    vehicles = []
    for fleet in data["fleets"]:
        raw_spec = fleet.get("vehicle_spec", {})
        spec = models.VehicleSpec(
            **{**raw_spec, "automation_level": models.AutomationLevel[raw_spec["automation_level"]]}
        )
        generate = fleet.get("generate", {})
        first = generate.get("first_label", 1)
        for k in range(generate.get("count", 0)):
            vehicles.append(generated(rng, fleet["id"], str(first + k), spec, fleet.get("area", {}), now))
    if len({vehicle.id for vehicle in vehicles}) != len(vehicles):
        raise RuntimeError("duplicate vehicle ids in the generated scenario")
    return len(vehicles)


def measure_construction(text: str, rounds: int) -> Measurement:
    """The baseline ``rounds`` times: operations are vehicles, latencies the time of each construction."""
    times, vehicles = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        vehicles += construct(text)
        times.append(time.perf_counter() - started)
    return Measurement.from_latencies(times, sum(times), errors=0, operations=vehicles)


Interval = tuple[float, float]  # time.monotonic() at the start and the end, the same clock in every process
Probe = tuple[float, float, str]  # a GetVehicle's monotonic send time, latency in s, and code if it failed


async def _load_rounds(address: str, text: str, rounds: int) -> list[tuple[Interval, bool]]:
    """Create the namespace, then load the scenario into it ``rounds`` times; each load's interval and
    whether it succeeded."""
    metadata = ((NAMESPACE_HEADER, NAMESPACE),)
    request = admin_pb2.LoadScenarioRequest(yaml=text, source="bench.yaml")
    loads: list[tuple[Interval, bool]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        reset = channel.unary_unary(
            "/emulator.admin.v1.AdminService/ResetEmulator",
            admin_pb2.ResetEmulatorRequest.SerializeToString,
            admin_pb2.ResetEmulatorResponse.FromString,
        )
        await reset(admin_pb2.ResetEmulatorRequest(), metadata=metadata, timeout=LOAD_TIMEOUT_SECONDS)
        load = channel.unary_unary(
            LOAD_METHOD,
            admin_pb2.LoadScenarioRequest.SerializeToString,
            admin_pb2.LoadScenarioResponse.FromString,
        )
        for _ in range(rounds):
            started, ok = time.monotonic(), True
            try:
                await load(request, metadata=metadata, timeout=LOAD_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                ok = False
                print(f"LoadScenario failed: {error.code().name}: {error.details()}")
            loads.append(((started, time.monotonic()), ok))
    return loads


def _probe_process(address: str, per_second: float, stop: EventType, results: Queue[object]) -> None:
    asyncio.run(_probe(address, per_second, stop, results))


async def _probe(address: str, per_second: float, stop: EventType, results: Queue[object]) -> None:
    """Report "ready" once connected, then send a GetVehicle every 1/``per_second`` s, not waiting for the
    answers, until ``stop``; then report every call's send time and latency."""
    request = v2.GetVehicleRequest(vehicle_id=HAMBURG_VEHICLE_ID)
    probes: list[Probe] = []
    async with grpc.aio.insecure_channel(address) as channel:
        get = channel.unary_unary(
            GET_METHOD, v2.GetVehicleRequest.SerializeToString, v2.GetVehicleResponse.FromString
        )
        await get(request, timeout=START_TIMEOUT_SECONDS, wait_for_ready=True)

        async def one() -> None:
            sent = time.monotonic()
            try:
                await get(request, timeout=PROBE_TIMEOUT_SECONDS)
                probes.append((sent, time.monotonic() - sent, ""))
            except grpc.aio.AioRpcError as error:
                probes.append((sent, math.nan, error.code().name))

        results.put("ready")
        pending: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while not stop.is_set():
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / per_second - time.monotonic()))
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    results.put(probes)


def _window(probes: Sequence[Probe], intervals: Sequence[Interval]) -> tuple[Measurement, dict[str, int]]:
    """The probes sent within any of ``intervals``, over their total length, and their failures by code."""
    inside = [probe for probe in probes if any(a <= probe[0] < b for a, b in intervals)]
    latencies = [latency for _, latency, code in inside if not code]
    failures = Counter(code for _, _, code in inside if code)
    seconds = sum(b - a for a, b in intervals)
    measured = Measurement.from_latencies(latencies, seconds, errors=len(inside) - len(latencies))
    return measured, dict(failures)


@dataclass(frozen=True)
class Figures:
    """What one backend's emulator showed: the loads, and the probes during them and in the quiet window."""

    loads: Measurement
    busy: Measurement
    quiet: Measurement
    probe_failures: dict[str, dict[str, int]]


def _measure_backend(address: str, text: str, scenario: ScenarioLoad) -> Figures:
    """Start the probe, let it run through a quiet window, then load the scenario ``rounds`` times."""
    stop = SPAWN.Event()
    results: Queue[object] = SPAWN.Queue()
    probe = SPAWN.Process(target=_probe_process, args=(address, scenario.probe_per_second, stop, results))
    probe.start()
    try:
        [ready] = collect(results, 1, [probe], START_TIMEOUT_SECONDS)
        assert ready == "ready"
        time.sleep(1.0)  # the probe's first calls (connection warm-up) stay out of the quiet window
        quiet = (time.monotonic(), time.monotonic() + scenario.quiet_seconds)
        time.sleep(scenario.quiet_seconds)
        loads = asyncio.run(_load_rounds(address, text, scenario.rounds))
        stop.set()
        [probes] = collect(results, 1, [probe], PROBE_TIMEOUT_SECONDS + 10)
    finally:
        stop.set()
        stop_all([probe])
    assert isinstance(probes, list)
    intervals = [interval for interval, _ in loads]
    times = [b - a for (a, b), ok in loads if ok]
    vehicles = scenario.vehicles * len(times)
    seconds = sum(times) if times else sum(b - a for a, b in intervals)  # nothing loaded: 0 vehicles/s
    loaded = Measurement.from_latencies(times, seconds, len(loads) - len(times), operations=vehicles)
    (busy, busy_failures), (calm, calm_failures) = _window(probes, intervals), _window(probes, [quiet])
    return Figures(loaded, busy, calm, {"during_loads": busy_failures, "quiet": calm_failures})


def run_scenario_benchmarks(load: Load) -> list[Comparison]:
    """Per backend: the LoadScenario row against the bare construction, and the responsiveness row."""
    scenario = load.scenario
    text = scenario_yaml(scenario.vehicles)
    if construct(text) != scenario.vehicles:
        raise RuntimeError("the generated scenario does not have the vehicles asked for")
    baseline = measure_construction(text, max(scenario.rounds, BASELINE_LEAST_ROUNDS))
    details = {"vehicles": scenario.vehicles, "fleets": len(FLEETS), "yaml_bytes": len(text.encode())}
    rows = []
    with private_redis() as redis_url:
        for backend in BACKENDS:
            flush(redis_url)
            with serving(run_emulator, backend, redis_url) as address:
                figures = _measure_backend(address, text, scenario)
            rows.append(
                Comparison(
                    f"LoadScenario {scenario.vehicles:,} vehicles, {backend}",
                    "vehicles/s",
                    figures.loads,
                    baseline,
                    min_throughput_ratio=MIN_LOAD_RATIO[backend],
                    details={**details, "baseline": "yaml.safe_load + scenario.generated, in the bench"},
                )
            )
            rows.append(
                Comparison(
                    f"GetVehicle during LoadScenario, {backend}",
                    "calls/s",
                    figures.busy,
                    figures.quiet,
                    max_p99_ms=round(MAX_P99_RATIO * figures.quiet.p99_ms, 1),
                    details={
                        **details,
                        "probe_per_second": scenario.probe_per_second,
                        "baseline": "the same probe in a quiet window before the loads",
                        "max_p99_ratio": MAX_P99_RATIO,
                        "probe_failures": figures.probe_failures,
                    },
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scenario_load", description=__doc__)
    defaults = ScenarioLoad()
    parser.add_argument("--vehicles", type=int, default=defaults.vehicles, help="vehicles in the scenario")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="loads per backend")
    args = parser.parse_args()
    rows = run_scenario_benchmarks(Load(scenario=ScenarioLoad(vehicles=args.vehicles, rounds=args.rounds)))
    print(format_table(rows))
    print()
    print(format_bars(rows))


if __name__ == "__main__":
    main()
