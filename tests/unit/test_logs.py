"""Log lines as text (the format ``serve`` always had) and as JSON, one object per line with the call's
fields: formatted by the handlers of ``telemetry/logs.py`` here, and by a real ``fleet-emulator serve
--log-format json`` process, whose line for a call carries the flow id the client sent.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.namespaces import current_namespace
from fleet_emulator.telemetry.logs import LogFormat, current_method, handler_for
from tests.e2e.harness import free_port, serve_command, serving
from tests.steering import SEED_VEHICLE

METHOD = "/moia.fleet.state.v2.FleetStateService/GetVehicle"
RFC_3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING tests\.logs: careful, 3 left")


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose lines go to a string in the format the test is parametrized with."""
    fmt: LogFormat = request.param
    out = io.StringIO()
    logger = logging.getLogger("tests.logs")
    handler = handler_for(fmt, out)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)
    logger.propagate = True


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def in_a_call(flow_id: str, namespace: str, log: Any) -> None:
    """Run ``log`` as the call scope runs a call's code: with its method, flow id and namespace set."""

    def call() -> None:
        current_method.set(METHOD)
        current_flow_id.set(flow_id)
        current_namespace.set(namespace)
        log()

    contextvars.copy_context().run(call)


@pytest.mark.parametrize("logged", ["text"], indirect=True)
def test_text_lines_are_as_they_always_were(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    in_a_call("flow-1", "team-a", lambda: logger.warning("careful, %d left", 3))
    assert TEXT_LINE.fullmatch(out.getvalue().rstrip("\n")), out.getvalue()


@pytest.mark.parametrize("logged", ["json"], indirect=True)
def test_a_json_line_outside_a_call_has_time_level_logger_and_message(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    logger.info("serving on port %d", 50051)
    [line] = lines_of(out)
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "tests.logs", "serving on port 50051")
    assert RFC_3339_UTC.fullmatch(line["time"]), line["time"]
    assert abs(datetime.fromisoformat(line["time"]) - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("logged", ["json"], indirect=True)
def test_a_json_line_inside_a_call_has_its_flow_id_namespace_method_and_code(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    in_a_call("flow-7", "team-a", lambda: logger.debug("finished", extra={"code": "NOT_FOUND"}))
    in_a_call("flow-8", "", lambda: logger.debug("in the default namespace"))
    first, second = lines_of(out)
    assert {k: first[k] for k in ("flow_id", "namespace", "method", "code", "message")} == {
        "flow_id": "flow-7",
        "namespace": "team-a",
        "method": METHOD,
        "code": "NOT_FOUND",
        "message": "finished",
    }
    assert (second["flow_id"], second["namespace"], "code" in second) == ("flow-8", "", False)


@pytest.mark.parametrize("logged", ["json"], indirect=True)
def test_a_traceback_is_on_the_same_json_line(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("bug while serving a call")
    [line] = lines_of(out)
    assert line["message"] == "bug while serving a call"
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].endswith("ValueError: boom")


@pytest.mark.e2e
def test_serve_logs_json_lines_with_the_flow_id_of_a_call(tmp_path: Path) -> None:
    port, flow_id, namespace = free_port(), f"log-test-{uuid.uuid4().hex[:8]}", "logs"
    options = ("--no-console", "--log-format", "json", "--log-level", "debug")
    command = serve_command("--host", "127.0.0.1", "--port", str(port), *options)
    with serving(command, port, tmp_path / "serve.log") as emulator:
        with grpc.insecure_channel(emulator.address) as channel:
            api = pb_grpc.FleetStateServiceStub(channel)
            headers = (("x-flow-id", flow_id), ("x-emulator-namespace", namespace))
            api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=headers)
        output = emulator.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == len(output.splitlines()), f"not every line is JSON:\n{output}"
    serving_line = next(line for line in lines if line["message"].startswith("fleet emulator serving"))
    assert "flow_id" not in serving_line
    finished = [line for line in lines if line.get("flow_id") == flow_id]
    assert [(line["method"], line["namespace"], line.get("code")) for line in finished] == [
        (METHOD, namespace, "OK")
    ], output
    assert finished[0]["level"] == "DEBUG"
    assert RFC_3339_UTC.fullmatch(finished[0]["time"])
