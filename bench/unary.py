"""The unary benchmarks: ``GetVehicle`` and ``ListVehicles`` of v1 on the demo fleet "hamburg".

The emulator runs in one process; its real response to each call is captured and handed to the baseline,
a bare server in another process that answers the same method path with exactly those bytes. Each call is
then driven with the same client load against the baseline and the emulator in turns, for a few rounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc

from bench.load import CALL_TIMEOUT_SECONDS, Load, UnaryCall, measure_unary_in_turns
from bench.report import Comparison
from bench.servers import run_baseline, run_emulator, serving
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1

MIN_THROUGHPUT_RATIO = 0.6
V1_SERVICE = "/moia.fleet.state.v1.FleetStateService"
HAMBURG_VEHICLE_ID = "94d36e21-ca69-4a5b-b2b7-8068122e7362"  # one of the demo scenario's explicit vehicles
LIST_PAGE_SIZE = 20

UNARY_CALLS = {
    "GetVehicle v1": UnaryCall(
        f"{V1_SERVICE}/GetVehicle", v1.GetVehicleRequest(vehicle_id=HAMBURG_VEHICLE_ID).SerializeToString()
    ),
    f"ListVehicles v1 (page_size {LIST_PAGE_SIZE})": UnaryCall(
        f"{V1_SERVICE}/ListVehicles",
        v1.ListVehiclesRequest(fleet_id="hamburg", page_size=LIST_PAGE_SIZE).SerializeToString(),
    ),
}


async def capture_responses(address: str, calls: Mapping[str, UnaryCall]) -> dict[str, bytes]:
    """The server's serialized response to each call, keyed by method path (one request per method)."""
    responses: dict[str, bytes] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        for call in calls.values():
            send = channel.unary_unary(call.method, request_serializer=None, response_deserializer=None)
            responses[call.method] = await send(call.request, timeout=CALL_TIMEOUT_SECONDS)
    return responses


def run_unary_benchmarks(load: Load) -> list[Comparison]:
    """One comparison row per call in ``UNARY_CALLS``."""
    rows = []
    with serving(run_emulator) as emulator:
        responses = asyncio.run(capture_responses(emulator, UNARY_CALLS))
        with serving(run_baseline, responses) as baseline:
            for name, call in UNARY_CALLS.items():
                baseline_measurement, emulator_measurement = measure_unary_in_turns(
                    (baseline, emulator), call, load
                )
                rows.append(
                    Comparison(
                        name=name,
                        unit="calls/s",
                        emulator=emulator_measurement,
                        baseline=baseline_measurement,
                        min_throughput_ratio=MIN_THROUGHPUT_RATIO,
                        details={"response_bytes": len(responses[call.method])},
                    )
                )
    return rows
