"""A ``fleet-emulator serve`` that cannot start says why in one line and exits with a code per kind of cause.

Each test runs the real command and reads its exit code and output: exactly one line on stderr,
``fleet-emulator: error: <setting>: <cause>`` naming the option, no traceback, and nothing else for an
invalid option or environment variable or options that conflict (2), a scenario that cannot be loaded (3)
and a port in use (4); for Redis problems at start (5), earlier log lines are allowed but the last line is
the error: a Redis that refuses connections or hangs is given up after ``--redis-connect-timeout`` (not
before, and a Redis that comes up within it is used), while a port that answers but is not Redis (a plain
TCP service, an HTTP server) and a database index Redis refuses end the start at once. The JWT options
that keep the admin service safe (``--admin-token``, ``--admin-port``, ``--no-admin``) do start.
"""

from __future__ import annotations

import re
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.harness import (
    POLL_INTERVAL_S,
    clean_env,
    free_port,
    health_status,
    serve_command,
    serving,
    start,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

EXIT_SETTING, EXIT_SCENARIO, EXIT_LISTEN, EXIT_REDIS = 2, 3, 4, 5
ERROR_LINE = re.compile(r"fleet-emulator: error: (?P<setting>--[a-z][a-z-]*): (?P<cause>\S.*)")
RUN_TIMEOUT_S = 20.0  # a command that should fail but serves instead is killed after this
STARTUP_S = 3.0  # the interpreter's start and imports, on a loaded machine
SLACK_S = 2.0
PROMPT_S = STARTUP_S + SLACK_S  # "at once": far below the --redis-connect-timeout these tests give
CONNECT_TIMEOUT = "1.5s"
CONNECT_TIMEOUT_S = 1.5
LONG_CONNECT_TIMEOUT = "30s"
WAITING_DEADLINE_S = 5.0
NOT_REDIS_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"  # what a port of another service may say


@dataclass(frozen=True)
class Finished:
    code: int | None  # None: still running after RUN_TIMEOUT_S, killed
    stdout: str
    stderr: str
    seconds: float

    def report(self) -> str:
        took = f"exit code {self.code} after {self.seconds:.1f} s"
        return f"{took}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_serve(*args: str, env: Mapping[str, str] | None = None) -> Finished:
    """``fleet-emulator serve`` on 127.0.0.1 with ``args`` (a free ``--port`` unless given), to its end."""
    port = [] if "--port" in args else ["--port", str(free_port())]
    command = serve_command("--host", "127.0.0.1", *port, *args)
    began = time.monotonic()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
            env=env or clean_env(),
        )
    except subprocess.TimeoutExpired as still_running:
        took = time.monotonic() - began
        return Finished(None, text(still_running.stdout), text(still_running.stderr), took)
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def assert_one_line(finished: Finished, code: int, setting: str) -> str:
    """Exit ``code`` and, as the whole output, one error line naming ``setting``; returns its cause."""
    lines = finished.stderr.splitlines()
    assert finished.code == code and finished.stdout == "" and len(lines) == 1, finished.report()
    return assert_error_line(lines[0], setting, finished)


def assert_last_line(finished: Finished, code: int, setting: str) -> str:
    """Exit ``code``, no traceback, and last an error line naming ``setting``; returns its cause."""
    lines = finished.stderr.strip().splitlines()
    assert finished.code == code and lines, finished.report()
    assert "Traceback" not in finished.stdout + finished.stderr, finished.report()
    return assert_error_line(lines[-1], setting, finished)


def assert_error_line(line: str, setting: str, finished: Finished) -> str:
    error = ERROR_LINE.fullmatch(line)
    assert error and error["setting"] == setting, f"not an error line naming {setting}:\n{finished.report()}"
    return error["cause"]


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        pytest.param(
            ["--backend", "redis", "--redis-url", "localhost:6379"],
            {},
            "--redis-url",
            id="redis-url-no-scheme",
        ),
        pytest.param(
            ["--backend", "redis"],
            {"FLEET_EMULATOR_REDIS_URL": "localhost:6379"},
            "--redis-url",
            id="redis-url-no-scheme-from-env",
        ),
        pytest.param(
            ["--backend", "redis", "--redis-url", "redis+cluster://127.0.0.1:7000/1"],
            {},
            "--redis-url",
            id="redis-cluster-url-database-1",
        ),
        pytest.param(
            ["--backend", "redis", "--redis-wait-replicas", "-1"],
            {},
            "--redis-wait-replicas",
            id="negative-redis-wait-replicas",
        ),
        pytest.param(
            ["--backend", "redis"],
            {"FLEET_EMULATOR_REDIS_WAIT_REPLICAS": "all"},
            "--redis-wait-replicas",
            id="garbled-redis-wait-replicas-from-env",
        ),
        pytest.param(
            ["--redis-wait-replicas", "1"],
            {},
            "--redis-wait-replicas",
            id="redis-wait-replicas-without-redis",
        ),
        pytest.param(["--grace-period", "-1s"], {}, "--grace-period", id="negative-grace-period"),
        pytest.param(["--health-interval", "soon"], {}, "--health-interval", id="garbled-health-interval"),
        pytest.param(
            ["--backend", "redis", "--redis-connect-timeout", "-5s"],
            {},
            "--redis-connect-timeout",
            id="negative-redis-connect-timeout",
        ),
        pytest.param(
            [],
            {"FLEET_EMULATOR_GRACE_PERIOD": "5 parsecs"},
            "--grace-period",
            id="garbled-grace-period-from-env",
        ),
        pytest.param(["--port", "70000"], {}, "--port", id="port-out-of-range"),
        pytest.param(["--backend", "mongodb"], {}, "--backend", id="unknown-backend"),
        pytest.param(
            ["--wake-up-delay-min", "90s", "--wake-up-delay-max", "10s"],
            {},
            "--wake-up-delay-min",
            id="wake-up-delays-conflict",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_and_exit_code_2(
    args: list[str], env: dict[str, str], setting: str
) -> None:
    finished = run_serve(*args, env=clean_env(**env))

    assert_one_line(finished, EXIT_SETTING, setting)


def test_jwt_auth_with_the_admin_service_open_on_the_api_port_is_refused() -> None:
    finished = run_serve("--auth", "jwt")

    cause = assert_one_line(finished, EXIT_SETTING, "--auth")
    assert "--admin-token" in cause, finished.report()


@pytest.mark.parametrize(
    "admin",
    [["--admin-token", "an-admin-secret"], ["--admin-port", "0"], ["--no-admin"]],
    ids=["admin-token", "admin-port", "no-admin"],
)
def test_jwt_auth_starts_with_the_admin_service_protected_elsewhere_or_off(
    tmp_path: Path, admin: list[str]
) -> None:
    port = free_port()
    command = serve_command("--host", "127.0.0.1", "--port", str(port), "--auth", "jwt", *admin)

    with serving(command, port, tmp_path / "serve.log") as emulator:
        assert health_status(emulator.address) == "SERVING"


def test_a_scenario_with_schema_errors_is_one_line_with_every_problem_and_exit_code_3(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(
        "name: broken\nfleets:\n  - id: testville\n    vehicles:\n"
        "      - {id: 94d36e21-ca69-4a5b-b2b7-8068122e7362, connectivity: SLEEPY}\n"
        "      - {id: not-a-uuid}\n"
    )

    finished = run_serve("--scenario", str(scenario))

    cause = assert_one_line(finished, EXIT_SCENARIO, "--scenario")
    problems = cause.split("; ")
    assert len(problems) >= 2, finished.report()
    assert any("SLEEPY" in p for p in problems), finished.report()
    assert any("not-a-uuid" in p for p in problems), finished.report()
    assert str(scenario) in cause, finished.report()


def test_a_scenario_that_is_not_yaml_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    scenario = tmp_path / "not-yaml.yaml"
    scenario.write_text("name: broken\nfleets: [\n  - id: {unclosed\n")  # the parser's message spans lines

    finished = run_serve("--scenario", str(scenario))

    cause = assert_one_line(finished, EXIT_SCENARIO, "--scenario")
    assert str(scenario) in cause, finished.report()


def test_a_missing_scenario_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"

    finished = run_serve("--scenario", str(missing))

    assert finished.code in (EXIT_SETTING, EXIT_SCENARIO), finished.report()
    cause = assert_one_line(finished, finished.code, "--scenario")
    assert "missing.yaml" in cause, finished.report()


@contextmanager
def port_in_use() -> Iterator[int]:
    """A port of 127.0.0.1 something listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port: int = taken.getsockname()[1]
        yield port


def test_an_api_port_in_use_is_one_line_naming_port_and_exit_code_4() -> None:
    with port_in_use() as port:
        finished = run_serve("--port", str(port))

    cause = assert_one_line(finished, EXIT_LISTEN, "--port")
    assert str(port) in cause, finished.report()


def test_an_admin_port_in_use_is_one_line_naming_admin_port_and_exit_code_4() -> None:
    with port_in_use() as port:
        finished = run_serve("--admin-port", str(port))

    cause = assert_one_line(finished, EXIT_LISTEN, "--admin-port")
    assert str(port) in cause, finished.report()


def names_the_timeout(cause: str) -> bool:
    return re.search(r"\b1\.5 ?s", cause) is not None


@pytest.mark.parametrize("from_env", [False, True], ids=["option", "env"])
def test_a_redis_that_refuses_connections_is_given_up_after_the_connect_timeout_with_exit_code_5(
    from_env: bool,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    timeout = {"FLEET_EMULATOR_REDIS_CONNECT_TIMEOUT": CONNECT_TIMEOUT} if from_env else {}
    args = [] if from_env else ["--redis-connect-timeout", CONNECT_TIMEOUT]

    finished = run_serve("--backend", "redis", "--redis-url", url, *args, env=clean_env(**timeout))

    cause = assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert names_the_timeout(cause), finished.report()
    assert "connection refused" in cause.lower(), finished.report()
    assert CONNECT_TIMEOUT_S <= finished.seconds <= CONNECT_TIMEOUT_S + PROMPT_S, finished.report()


@pytest.mark.redis
def test_a_redis_that_hangs_is_given_up_after_the_connect_timeout_with_exit_code_5(
    own_redis: RedisServer,
) -> None:
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)  # it accepts connections but answers nothing
    try:
        finished = run_serve(
            "--backend", "redis", "--redis-url", own_redis.url, "--redis-connect-timeout", CONNECT_TIMEOUT
        )
    finally:
        own_redis.process.send_signal(signal.SIGCONT)

    cause = assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert names_the_timeout(cause), finished.report()
    assert CONNECT_TIMEOUT_S <= finished.seconds <= CONNECT_TIMEOUT_S + PROMPT_S, finished.report()


@pytest.mark.redis
def test_a_redis_that_comes_up_within_the_connect_timeout_is_used(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # its port is chosen, the server not started yet
    port = free_port()
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--backend", "redis", "--redis-url", redis.url,
        "--redis-connect-timeout", LONG_CONNECT_TIMEOUT,
    )  # fmt: skip
    emulator = start(command, port, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + WAITING_DEADLINE_S
        while "WARNING" not in emulator.output() and time.monotonic() < deadline:
            assert emulator.process.poll() is None, emulator.output()
            time.sleep(POLL_INTERVAL_S)
        redis.start()
        emulator.wait_ready()
    finally:
        code = emulator.terminate()
        redis.stop()
    assert code == 0, emulator.output()


class NotRedis(socketserver.BaseRequestHandler):
    """Answers whatever it is sent with another protocol's banner."""

    def handle(self) -> None:
        self.request.sendall(NOT_REDIS_BANNER)
        while self.request.recv(4096):
            self.request.sendall(NOT_REDIS_BANNER)


class QuietHttp(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def listening(server: socketserver.TCPServer) -> Iterator[int]:
    """``server`` serving from a thread; its port."""
    thread = threading.Thread(target=server.serve_forever, name="not-redis", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def not_redis_server(kind: str) -> socketserver.TCPServer:
    if kind == "http":
        return ThreadingHTTPServer(("127.0.0.1", 0), QuietHttp)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), NotRedis)
    server.daemon_threads = True
    server.block_on_close = False
    return server


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_a_port_that_is_not_redis_ends_the_start_at_once_with_exit_code_5(kind: str) -> None:
    with listening(not_redis_server(kind)) as port:
        finished = run_serve(
            "--backend", "redis", "--redis-url", f"redis://127.0.0.1:{port}/0",
            "--redis-connect-timeout", LONG_CONNECT_TIMEOUT,
        )  # fmt: skip

    assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert finished.seconds <= PROMPT_S, finished.report()


@pytest.mark.redis
def test_a_database_index_redis_refuses_ends_the_start_at_once_with_exit_code_5(
    redis_server: RedisServer,
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/99999"

    finished = run_serve(
        "--backend", "redis", "--redis-url", url, "--redis-connect-timeout", LONG_CONNECT_TIMEOUT
    )

    cause = assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert "DB index is out of range" in cause, finished.report()
    assert finished.seconds <= PROMPT_S, finished.report()


@pytest.mark.redis
def test_a_redis_without_the_replicas_to_wait_for_is_given_up_after_the_connect_timeout_with_exit_code_5(
    redis_url: str,
) -> None:
    finished = run_serve(
        "--backend", "redis", "--redis-url", redis_url, "--redis-wait-replicas", "1",
        "--redis-connect-timeout", CONNECT_TIMEOUT,
    )  # fmt: skip

    cause = assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert "--redis-wait-replicas asks for 1" in cause, finished.report()
    assert names_the_timeout(cause), finished.report()


@pytest.mark.redis
def test_a_redis_that_is_no_cluster_behind_a_cluster_url_ends_the_start_at_once_with_exit_code_5(
    redis_server: RedisServer,
) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_server.port}/0"

    finished = run_serve(
        "--backend", "redis", "--redis-url", url, "--redis-connect-timeout", LONG_CONNECT_TIMEOUT
    )

    cause = assert_last_line(finished, EXIT_REDIS, "--redis-url")
    assert "Cluster mode is not enabled" in cause, finished.report()
    assert finished.seconds <= PROMPT_S, finished.report()
