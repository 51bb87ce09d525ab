"""The ``fleet-emulator serve`` command as a user runs it: options, environment variables, scenarios, stop.

Each test starts its own process because each needs other options: ``--help``, the port from the
environment, a custom ``--scenario`` written to a temporary folder, a broken scenario that must stop
``serve`` with a message naming the file and the field, and SIGTERM/SIGINT that must stop it gracefully.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.harness import (
    GRPCURL_STATUS_EXIT_BASE,
    call,
    clean_env,
    free_port,
    grpcurl,
    health_status,
    parse_error,
    serve_command,
    serving,
    start,
)

pytestmark = pytest.mark.e2e

OPTIONS = {  # option -> the environment variable README.md documents for it
    "--host": "FLEET_EMULATOR_HOST",
    "--port": "FLEET_EMULATOR_PORT",
    "--backend": "FLEET_EMULATOR_BACKEND",
    "--scenario": "FLEET_EMULATOR_SCENARIO",
    "--log-level": "FLEET_EMULATOR_LOG_LEVEL",
    "--redis-url": "FLEET_EMULATOR_REDIS_URL",
    "--redis-wait-replicas": "FLEET_EMULATOR_REDIS_WAIT_REPLICAS",
    "--retention": "FLEET_EMULATOR_RETENTION",
}
SMALL_SCENARIO = """\
name: small
seed: 7
fleets:
  - id: testville
    display_name: Test Ville
    city: Testville
    area: {latitude: 50.0, longitude: 8.0, radius_km: 2}
    generate: {count: 3}
"""
V1 = "moia.fleet.state.v1.FleetStateService"


def help_text() -> str:
    result = subprocess.run(
        serve_command("--help"), capture_output=True, text=True, timeout=30, check=False, env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # undo click's line wrapping


def test_help_mentions_every_option_with_an_environment_variable() -> None:
    text = help_text()

    for option in OPTIONS:
        entry = re.search(rf"{option} .*?\[(?P<extra>[^\]]*env var: [^\]]*)\]", text)
        assert entry, f"{option} or its [env var: ...] missing from:\n{text}"
        assert "FLEET_EMULATOR_" in entry["extra"]


def test_help_names_the_documented_environment_variables() -> None:
    text = help_text()

    missing = [name for name in OPTIONS.values() if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"{missing} not in:\n{text}"


def test_port_from_the_environment_is_served(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(FLEET_EMULATOR_PORT=str(port))

    with serving(serve_command("--host", "127.0.0.1"), port, tmp_path / "serve.log", env) as emulator:
        result = grpcurl("-plaintext", emulator.address, "list")
        assert result.returncode == 0, result.stderr


def test_custom_scenario_is_served_instead_of_the_demo(tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL_SCENARIO)
    port = free_port()
    command = serve_command("--host", "127.0.0.1", "--port", str(port), "--scenario", str(scenario))

    with serving(command, port, tmp_path / "serve.log") as emulator:
        fleets = call(emulator.address, f"{V1}/ListFleets", {})
        vehicles = call(emulator.address, f"{V1}/ListVehicles", {"fleet_id": "testville", "page_size": 10})
        demo = grpcurl("-plaintext", "-d", '{"fleet_id": "hamburg"}', emulator.address, f"{V1}/GetFleet")

    assert [(f["id"], f["vehicle_count"]) for f in fleets["fleets"]] == [("testville", 3)]
    assert len(vehicles["vehicles"]) == 3
    assert sorted(v["label"] for v in vehicles["vehicles"]) == ["1", "2", "3"]
    assert demo.returncode == GRPCURL_STATUS_EXIT_BASE + 5, demo.stdout
    assert parse_error(demo.stderr).code == "NotFound"


@pytest.mark.parametrize(
    ("fleet", "field", "problem"),
    [
        pytest.param(
            "vehicles: [{id: 94d36e21-ca69-4a5b-b2b7-8068122e7362, connectivity: SLEEPY}]",
            "fleets[0].vehicles[0].connectivity",
            "SLEEPY",
            id="unknown-connectivity",
        ),
        pytest.param("vehicles: [{id: not-a-uuid}]", "fleets[0].vehicles[0].id", "not-a-uuid", id="bad-uuid"),
        pytest.param(
            "generate: {count: three}",
            "fleets[0].generate",
            "count",
            id="count-not-a-number",
        ),
    ],
)
def test_broken_scenario_stops_serve_naming_the_file_and_the_field(
    tmp_path: Path, fleet: str, field: str, problem: str
) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(f"name: broken\nfleets:\n  - id: testville\n    {fleet}\n")
    command = serve_command("--host", "127.0.0.1", "--port", str(free_port()), "--scenario", str(scenario))

    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=clean_env())

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert str(scenario) in result.stderr
    assert field in result.stderr
    assert problem in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_serve_gracefully_and_frees_the_port(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    emulator = start(serve_command("--host", "127.0.0.1", "--port", str(port)), port, tmp_path / "serve.log")
    try:
        emulator.wait_ready()
        call(emulator.address, f"{V1}/GetFleet", {"fleet_id": "hamburg"})
    finally:
        began = time.monotonic()
        code = emulator.terminate(sig)
    took = time.monotonic() - began

    assert code == 0, f"exit code {code} after {sig.name} (None: killed after 5 s):\n{emulator.output()}"
    assert took < 3.0, f"no call was in flight, yet the stop took {took:.1f} s"
    assert "stopping" in emulator.output()
    assert health_status(emulator.address, timeout=0.5) is None, "still answering after it exited"


def test_a_port_in_use_stops_serve_with_a_clear_message(tmp_path: Path) -> None:
    """Also when another emulator holds it: grpc's SO_REUSEPORT is off, so two cannot share a port."""
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        command = serve_command("--host", "127.0.0.1", "--port", str(port))
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False, env=clean_env()
        )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    first = start(serve_command("--host", "127.0.0.1", "--port", str(port)), port, tmp_path / "first.log")
    try:
        first.wait_ready()
        second = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False, env=clean_env()
        )
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        assert first.terminate() == 0


def run_briefly(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=clean_env())


@pytest.mark.parametrize(("flags", "loop"), [((), "uvloop"), (("--no-uvloop",), "asyncio")])
def test_serve_runs_on_uvloop_unless_told_not_to(tmp_path: Path, flags: tuple[str, ...], loop: str) -> None:
    port = free_port()
    command = serve_command("--host", "127.0.0.1", "--port", str(port), *flags)
    with serving(command, port, tmp_path / "serve.log") as emulator:
        line = emulator.wait_for_line(r"fleet emulator serving .*")[0]
        listed = grpcurl("-plaintext", emulator.address, "list")
    assert line.endswith(f"event loop {loop})")
    assert listed.returncode == 0, listed.stderr


def test_serve_prints_the_console_url_and_serves_it(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    command = serve_command("--host", "127.0.0.1", "--port", str(port), "--console-port", str(console_port))
    with serving(command, port, tmp_path / "serve.log") as emulator:
        url = emulator.wait_for_line(r"web console on (\S+)")[1]
        with urllib.request.urlopen(f"{url}healthz", timeout=5) as response:
            health = json.load(response)
        with urllib.request.urlopen(url, timeout=5) as response:
            page = response.read().decode()
    assert url == f"http://127.0.0.1:{console_port}/"
    assert health == {"status": "SERVING"}
    assert "<nav" in page


def test_no_console_serves_no_console(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    command = serve_command("--host", "127.0.0.1", "--port", str(port), "--no-console")
    env = clean_env(FLEET_EMULATOR_CONSOLE_PORT=str(console_port))
    with serving(command, port, tmp_path / "serve.log", env) as emulator:
        emulator.wait_for_line(r"fleet emulator serving")
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{console_port}/healthz", timeout=5)
        output = emulator.output()
    assert "web console" not in output
