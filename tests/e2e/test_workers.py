"""``serve --workers N``: N real processes on one port and one Redis, started, spread over and stopped as one.

The workers are found through the parent's children in ``/proc`` and through the lines they log; a client
opening many connections is served by all of them alike, an event published on one connection reaches a
stream opened on another, and SIGTERM to the parent stops every worker gracefully. A worker that dies takes
the others down with it, and the memory backend or a port of 0 refuse ``--workers`` in one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from tests.e2e.harness import EmulatorProcess, clean_env, free_port, serve_command, serving, start
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE

pytestmark = pytest.mark.e2e


def workers_command(port: int, redis_url: str, count: int = 2) -> list[str]:
    return serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--backend", "redis", "--redis-url", redis_url,
        "--workers", str(count),
    )  # fmt: skip


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def worker_pids(emulator: EmulatorProcess, count: int) -> set[int]:
    """The pids the workers log, once all ``count`` of them serve."""
    pattern = r"(?s)" + r".*".join([r"fleet emulator serving"] * count)
    emulator.wait_for_line(pattern)
    return {int(pid) for pid in re.findall(r"worker \d+ of \d+: pid (\d+)", emulator.output())}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_workers_share_the_port_and_stop_together(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    with serving(workers_command(port, redis_url), port, tmp_path / "serve.log") as emulator:
        pids = worker_pids(emulator, 2)
        assert len(pids) == 2
        assert children(emulator.process.pid) >= pids
        answered = 0
        for _ in range(20):  # each channel is a connection of its own, which the kernel gives a worker
            with grpc.insecure_channel(emulator.address) as channel:
                api = pb_grpc.FleetStateServiceStub(channel)
                vehicle = api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE), timeout=5).vehicle
                answered += vehicle.id == SEED_VEHICLE
        assert answered == 20
        with (
            grpc.insecure_channel(emulator.address) as listening,
            grpc.insecure_channel(emulator.address) as other,
        ):
            stream: Any = pb_grpc.FleetStateServiceStub(listening).StreamVehicleEvents(
                pb.StreamRequest(event_id=HAMBURG_EVENTS), timeout=10
            )
            next(stream)  # the opening message: the stream is open
            change = pb.MissionProgressed(mission_id="m-w", stage=pb.MISSION_STAGE_ARRIVED_AT_PICKUP)
            event = pb.Event(vehicle_id=SEED_VEHICLE, mission_progressed=change)
            published = admin_pb2_grpc.AdminServiceStub(other).PublishEvent(
                admin_pb2.PublishEventRequest(event=event), timeout=5
            )
            received = next(stream)
            stream.cancel()
        assert received.message_id == published.message_id
    assert emulator.process.returncode == 0
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_dies_stops_the_others(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    emulator = start(workers_command(port, redis_url), port, tmp_path / "serve.log")
    try:
        emulator.wait_ready()
        first, second = sorted(worker_pids(emulator, 2))
        os.kill(first, signal.SIGKILL)
        code = emulator.process.wait(timeout=15)
    finally:
        emulator.terminate()
    assert code == 128 + signal.SIGKILL
    assert not alive(second)
    assert "a worker ended by itself: stopping the others" in emulator.output()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (("--backend", "memory", "--port", "50999"), "--workers: needs --backend redis"),
        (("--backend", "redis", "--port", "0"), "--workers: needs fixed ports"),
    ],
)
def test_workers_refuse_what_cannot_act_as_one(options: tuple[str, ...], problem: str) -> None:
    result = subprocess.run(
        serve_command("--workers", "2", *options), capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fleet-emulator: error: {problem}" + result.stderr.split(problem, 1)[1].strip()
    ]


def test_workers_stop_when_their_parent_is_killed(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    emulator = start(workers_command(port, redis_url), port, tmp_path / "serve.log")
    try:
        emulator.wait_ready()
        pids = worker_pids(emulator, 2)
        emulator.process.kill()
        emulator.process.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        emulator.terminate()
    assert not any(alive(pid) for pid in pids)  # gone, or a zombie that init reaps
    assert emulator.output().count("stopping: finishing in-flight calls") == 2, "each stopped gracefully"
