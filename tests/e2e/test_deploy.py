"""The Dockerfile and docker-compose.yml, checked without a Docker engine by doing what they describe.

The compose file is parsed with PyYAML and the Dockerfile read as text: the emulator is started with the
exact command (the Dockerfile's entrypoint plus the compose command) and environment the compose file gives
its service, with only the port moved to a free one, and the health checks of both files are run as the
commands they are against a SERVING emulator (exit 0) and against nothing (non-zero). The build step is
replayed by copying what the Dockerfile copies, minus what .dockerignore leaves out, and building a wheel
from it with pip. The compose profiles are checked as compose would combine them: the default one (from
.env) and ``replicas`` each publish every host port once, the replicas are the single emulator's service
three times, and nginx gets the configuration that tests/e2e/test_balanced_replicas.py runs, naming them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.balancer import CONFIG as NGINX_CONFIG
from tests.balancer import listen_addresses, upstream_servers
from tests.e2e.harness import BIN, EmulatorProcess, clean_env, free_port, grpcurl, serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
DOTENV = ROOT / ".env"
REPLICAS = ["emulator-1", "emulator-2", "emulator-3"]
NGINX_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each logical line of the Dockerfile, continuations joined."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list of a Dockerfile instruction."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), arguments
    return parsed


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def emulator_service() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"]["emulator"]
    return service


def local(command: list[str]) -> list[str]:
    """An image command with its program taken from this virtualenv (``python``: this interpreter)."""
    program, *args = command
    return [sys.executable if program == "python" else str(BIN / program), *args]


def healthcheck_commands() -> dict[str, list[str]]:
    """The emulator's health-check command in each file, as the container would run it."""
    [dockerfile_check] = dockerfile("HEALTHCHECK")
    _, _, dockerfile_cmd = dockerfile_check.partition(" CMD ")
    compose_test = emulator_service()["healthcheck"]["test"]
    assert compose_test[0] == "CMD", "exec form: no shell in the emulator's image needed"
    return {"Dockerfile": exec_form(dockerfile_cmd), "docker-compose.yml": list(compose_test[1:])}


def test_compose_runs_the_emulator_after_a_healthy_persistent_redis() -> None:
    services = compose()["services"]
    emulator, redis = services["emulator"], services["redis"]

    assert emulator["build"]["context"] == "."
    assert (ROOT / emulator["build"].get("dockerfile", "Dockerfile")).is_file()
    assert "50051:50051" in emulator["ports"]
    assert "8080:8080" in emulator["ports"], "the web console"
    assert emulator["environment"]["FLEET_EMULATOR_BACKEND"] == "redis"
    assert emulator["environment"]["FLEET_EMULATOR_REDIS_URL"] == "redis://redis:6379/0"
    assert emulator["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert redis["image"] == "redis:7-alpine"
    assert " ".join(redis["command"]).count("--appendonly yes") == 1
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data"
    assert volume in compose()["volumes"], "a named volume, declared at the top level"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def active_services(profiles: set[str]) -> dict[str, dict[str, Any]]:
    """The services ``docker compose`` runs with ``profiles``: those of no profile, and those of one of
    ``profiles``."""
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {n: s for n, s in services.items() if not s.get("profiles") or profiles & set(s["profiles"])}


def host_ports(services: dict[str, dict[str, Any]]) -> list[str]:
    return [str(mapping).rpartition(":")[0] for s in services.values() for mapping in s.get("ports", [])]


def nginx_directives(name: str) -> list[list[str]]:
    """The arguments of every ``name`` directive of the balancer's configuration, comments left out."""
    statements = re.split(r"[;{}]", re.sub(r"#[^\n]*", "", NGINX_CONFIG.read_text()))
    return [words[1:] for words in map(str.split, statements) if words and words[0] == name]


def nginx_seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", duration)
    assert match, f"not an nginx time: {duration}"
    return int(match[1]) * NGINX_UNITS_S[match[2] or "s"]


def test_compose_profiles_single_by_default_and_replicas_each_publish_every_port_once() -> None:
    dotenv = dict(
        line.split("=", 1) for line in DOTENV.read_text().splitlines() if line and not line.startswith("#")
    )
    assert dotenv["COMPOSE_PROFILES"] == "single", "plain `docker compose up` runs the single emulator"
    default, replicas = active_services({"single"}), active_services({"replicas"})
    assert sorted(default) == ["emulator", "redis"]
    assert sorted(replicas) == ["balancer", *REPLICAS, "redis"]
    for services in (default, replicas):
        ports = host_ports(services)
        assert "50051" in ports and len(ports) == len(set(ports)), ports


def test_replicas_profile_is_the_emulator_three_times_behind_nginx_with_the_tested_config() -> None:
    services = compose()["services"]
    single = {k: v for k, v in emulator_service().items() if k not in ("ports", "profiles")}
    for name in REPLICAS:
        replica = services[name]
        assert {k: v for k, v in replica.items() if k != "profiles"} == single, f"{name}: as the emulator"
        assert replica["profiles"] == ["replicas"] and "ports" not in replica

    balancer = services["balancer"]
    assert balancer["image"].startswith("nginx:")
    assert balancer["ports"] == ["50051:50051"]
    assert balancer["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    source, target, mode = balancer["volumes"][0].split(":")
    assert ((ROOT / source).resolve(), target, mode) == (NGINX_CONFIG, "/etc/nginx/nginx.conf", "ro")

    config = NGINX_CONFIG.read_text()
    assert upstream_servers(config) == [f"{name}:50051" for name in REPLICAS]
    assert listen_addresses(config) == ["50051"]
    assert [args[0] for args in nginx_directives("listen")] == ["50051"]
    assert ["50051", "http2"] in nginx_directives("listen"), "h2c, which gRPC clients speak in plaintext"
    assert nginx_directives("grpc_pass") == [["grpc://emulators"]]
    for timeout in ("grpc_read_timeout", "grpc_send_timeout"):
        [[value]] = nginx_directives(timeout)
        assert nginx_seconds(value) >= 3600, f"{timeout} {value}: streams would be cut"
    [next_upstream] = nginx_directives("grpc_next_upstream")
    assert {"error", "timeout"} <= set(next_upstream), "new calls fail over"
    assert "non_idempotent" not in next_upstream, "a call a replica may have run is never sent again"
    assert nginx_directives("daemon") == [], "the nginx image and the test start it with -g 'daemon off;'"


def test_dockerfile_runs_serve_on_50051_from_python_3_11_slim() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    assert dockerfile("EXPOSE") == ["50051 8080"]
    assert [exec_form(a) for a in dockerfile("ENTRYPOINT")] == [["fleet-emulator"]]
    assert [exec_form(a) for a in dockerfile("CMD")] == [["serve"]]
    assert any(re.search(r"\bpip install \.", run) for run in dockerfile("RUN"))


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_healthcheck_passes_only_against_a_serving_emulator(
    demo_emulator: EmulatorProcess, source: str
) -> None:
    command = local(healthcheck_commands()[source])

    serving_port = str(demo_emulator.port)
    healthy = subprocess.run(
        command, env=clean_env(FLEET_EMULATOR_PORT=serving_port), capture_output=True, text=True, timeout=30
    )
    nothing = subprocess.run(
        command,
        env=clean_env(FLEET_EMULATOR_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert healthy.returncode == 0, healthy.stderr
    assert nothing.returncode != 0


def test_emulator_serves_with_the_compose_command_and_environment(tmp_path: Path, redis_url: str) -> None:
    """The compose service's command and environment, with only the port and Redis's host made local."""
    service = emulator_service()
    [entrypoint] = [exec_form(a) for a in dockerfile("ENTRYPOINT")]
    command = local([*entrypoint, *service.get("command", [])])
    port = free_port()
    environment = {k: str(v) for k, v in service["environment"].items()}
    assert environment["FLEET_EMULATOR_BACKEND"] == "redis"
    assert environment["FLEET_EMULATOR_REDIS_URL"] == "redis://redis:6379/0", "the compose Redis service"
    assert environment["FLEET_EMULATOR_CONSOLE_PORT"] == "8080"
    local_redis = {
        "FLEET_EMULATOR_REDIS_URL": redis_url,
        "FLEET_EMULATOR_PORT": str(port),
        "FLEET_EMULATOR_CONSOLE_PORT": "0",
    }
    env = clean_env(**{**environment, **local_redis})

    with serving(command, port, tmp_path / "serve.log", env) as emulator:
        listed = grpcurl("-plaintext", emulator.address, "list")
        health = subprocess.run(
            local(healthcheck_commands()["docker-compose.yml"]),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert listed.returncode == 0, listed.stderr
    assert "moia.fleet.state.v2.FleetStateService" in listed.stdout.split()
    assert health.returncode == 0, health.stderr
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.hlen("fleet-emulator:vehicles") == 35, "the demo fleet was seeded into Redis"


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) per .dockerignore line; ``**`` spans folders, ``*`` and ``?`` do not."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, token if token.startswith("[") else re.escape(token)
            )
        rules.append((negated, re.compile(regex)))
    return rules


def _ignored(relative: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether docker leaves ``relative`` out of the context: the last rule matching it or a parent wins."""
    parents = ["/".join(relative.parts[:i]) for i in range(1, len(relative.parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in parents):
            result = not negated
    return result


def test_build_context_and_copy_steps_build_the_package(tmp_path: Path) -> None:
    rules = _dockerignore_rules()
    assert _ignored(Path(".venv/bin/python"), rules), ".venv must stay out of the build context"
    context = tmp_path / "context"
    for copy in dockerfile("COPY"):  # into the WORKDIR, where `pip install .` runs
        *sources, destination = copy.split()
        assert not any(s.startswith("--") for s in sources), "this replay knows plain COPY only"
        into_folder = destination.endswith("/") or len(sources) > 1
        for source in sources:
            base = ROOT / source
            assert base.exists(), f"COPY {source}: not in the repository"
            assert not _ignored(Path(source), rules), f"COPY {source}: left out by .dockerignore"
            # docker copies a folder's contents into the destination, a file into or as the destination
            files = sorted(f for f in base.rglob("*") if f.is_file()) if base.is_dir() else [base]
            for file in files:
                if _ignored(file.relative_to(ROOT), rules):
                    continue
                if base.is_dir():
                    target = context / destination / file.relative_to(base)
                else:
                    target = context / destination / base.name if into_folder else context / destination
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "dist").glob("fleet_emulator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        scripts = archive.read(entry_points).decode()
        requires = archive.read(metadata).decode()
    assert re.search(r"^fleet-emulator = fleet_emulator\.cli:main$", scripts, re.MULTILINE), scripts
    assert "fleet_emulator/scenarios/demo.yaml" in names
    static = ROOT / "src/fleet_emulator/console/static"
    shipped = {f"fleet_emulator/console/static/{f.name}" for f in static.iterdir() if f.is_file()}
    assert shipped and shipped <= names, "the console's pages ship in the package (no build step)"
    assert "fleet_emulator/_gen/moia/fleet/state/v2/fleet_state_pb2.py" in names
    assert not [n for n in names if "__pycache__" in n]
    assert "Requires-Dist: grpcio-health-checking" in requires, "the health check imports grpc_health"
