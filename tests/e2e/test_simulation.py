"""``fleet-emulator serve`` simulates by default: moving its clock makes the demo fleet drive and report."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import call, free_port, serve_command, serving

pytestmark = pytest.mark.e2e

V2 = "moia.fleet.state.v2.FleetStateService"
ADMIN = "emulator.admin.v1.AdminService"
STREAM = "fleets/hamburg/vehicle-events"


def test_the_simulator_moves_vehicles_when_the_clock_moves(tmp_path: Path) -> None:
    port = free_port()
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--simulation-rate", "20", simulate=True
    )
    with serving(command, port, tmp_path / "serve.log") as emulator:
        position = call(emulator.address, f"{V2}/PollVehicleEvents", {"event_id": STREAM})["message_id"]
        call(emulator.address, f"{ADMIN}/AdvanceClock", {"by": "600s"})
        deadline = time.monotonic() + 15
        kinds: set[str] = set()
        while not {"position_changed", "mission_progressed"} <= kinds:
            assert time.monotonic() < deadline, f"no simulated driving and missions within 15 s: {kinds}"
            polled = call(
                emulator.address, f"{V2}/PollVehicleEvents", {"event_id": STREAM, "last_message_id": position}
            )
            for event in polled.get("events", []):
                kinds |= {k for k in event if k.endswith(("_changed", "_progressed"))}
            position = polled["message_id"]
            time.sleep(0.1)
