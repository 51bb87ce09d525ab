"""``fleet-emulator token`` and bearer auth end to end: a real ``serve --auth jwt --rate-limits seed-001``,
tokens from the CLI, calls from the real grpcurl with and without ``authorization: Bearer``.

The module's emulator runs on a virtual clock set at the start (``fleet-emulator clock set``), so that
tokens do not expire and rate limits do not refill while the tests run: every count is exact. Each test
uses a subject of its own, hence buckets of its own.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.e2e.cli import fleet_emulator as any_fleet_emulator
from tests.e2e.harness import (
    GRPCURL_STATUS_EXIT_BASE,
    EmulatorProcess,
    clean_env,
    free_port,
    get_field,
    grpcurl,
    parse_error,
    parse_response_headers,
    serve_command,
    serving,
)

pytestmark = pytest.mark.e2e

CLOCK = "2030-01-01T00:00:00Z"
ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"  # --auth jwt with the admin service on the API port needs one
V2 = "moia.fleet.state.v2.FleetStateService"
UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 16, 7, 8


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """``serve --auth jwt --rate-limits seed-001`` with an admin token (from its environment variable) on a
    free port, its clock stopped at ``CLOCK``."""
    port = free_port()
    log: Path = tmp_path_factory.mktemp("cli-token") / "serve.log"
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--auth", "jwt", "--rate-limits", "seed-001"
    )
    env = clean_env(FLEET_EMULATOR_ADMIN_TOKEN=ADMIN_TOKEN)
    with serving(command, port, log, env) as process:
        clock = fleet_emulator("clock", "set", CLOCK, "--address", process.address)
        assert clock.returncode == 0, clock.stderr
        yield process


def fleet_emulator(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the emulator's admin token in its environment variable."""
    return any_fleet_emulator(*args, FLEET_EMULATOR_ADMIN_TOKEN=ADMIN_TOKEN)


def new_token(emulator: EmulatorProcess, *args: str) -> str:
    result = fleet_emulator("token", *args, "--address", emulator.address)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def subject() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def get_fleet(emulator: EmulatorProcess, fleet_id: str, *flags: str) -> tuple[int, str, str]:
    request = json.dumps({"fleet_id": fleet_id})
    result = grpcurl("-plaintext", "-v", *flags, "-d", request, emulator.address, f"{V2}/GetFleet")
    return result.returncode, result.stdout, result.stderr


def test_a_token_from_the_cli_opens_the_api_to_grpcurl(emulator: EmulatorProcess) -> None:
    who = subject()
    result = fleet_emulator("token", "--subject", who, "--address", emulator.address)

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.count(".") == 2, "the token alone, on one line"
    token = result.stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == who
    code, out, err = get_fleet(emulator, "hanover", "-H", f"authorization: Bearer {token}")
    assert code == 0, err
    assert json.loads(out[out.index("{") : out.rindex("}") + 1])["fleet"]["id"] == "hanover"


def test_grpcurl_without_a_token_is_unauthenticated_with_the_reason_and_flow_id(
    emulator: EmulatorProcess,
) -> None:
    code, out, err = get_fleet(emulator, "hamburg", "-H", "x-flow-id: no-token-1")

    assert code == GRPCURL_STATUS_EXIT_BASE + UNAUTHENTICATED, err
    error = parse_error(err)
    assert error.code == "Unauthenticated"
    info = error.detail("google.rpc.ErrorInfo")
    assert (info["reason"], info["metadata"]["flow_id"]) == ("TOKEN_MISSING", "no-token-1")
    assert get_field(error.detail("google.rpc.RequestInfo"), "request_id") == "no-token-1"
    assert parse_response_headers(out)["x-flow-id"] == ["no-token-1"]


def test_a_forged_token_is_invalid(emulator: EmulatorProcess) -> None:
    forged = jwt.encode({"sub": "mallory", "exp": 4_000_000_000}, "someone-elses-secret-of-32-bytes!")

    code, _, err = get_fleet(emulator, "hamburg", "-H", f"authorization: Bearer {forged}")

    assert code == GRPCURL_STATUS_EXIT_BASE + UNAUTHENTICATED, err
    assert parse_error(err).detail("google.rpc.ErrorInfo")["reason"] == "TOKEN_INVALID"


def test_json_output_has_the_expiry_on_the_emulators_clock_and_fleets_scope_the_token(
    emulator: EmulatorProcess,
) -> None:
    result = fleet_emulator(
        "token", "--subject", subject(), "--fleet", "hanover", "--lifetime", "90s", "--json",
        "--address", emulator.address,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["expire_time"] == "2030-01-01T00:01:30Z"
    bearer = f"authorization: Bearer {printed['access_token']}"
    code, _, err = get_fleet(emulator, "hamburg", "-H", bearer)
    assert code == GRPCURL_STATUS_EXIT_BASE + PERMISSION_DENIED, err
    assert parse_error(err).detail("google.rpc.ErrorInfo")["reason"] == "FLEET_NOT_IN_SCOPE"
    assert get_fleet(emulator, "hanover", "-H", bearer)[0] == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--subject", "me", "--fleet", "Not A Fleet"), "fleet_ids[0]"),
        (("--subject", "me", "--lifetime", "31d"), "lifetime"),
        (("--subject", ""), "subject"),
    ],
)
def test_bad_token_requests_fail_with_the_field_named(
    emulator: EmulatorProcess, args: tuple[str, ...], problem: str
) -> None:
    result = fleet_emulator("token", *args, "--address", emulator.address)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: INVALID_ARGUMENT: invalid request:")
    assert f"field={problem}" in result.stderr


def test_seed_001_rate_limits_show_in_headers_then_refuse_with_retry_info(emulator: EmulatorProcess) -> None:
    who = subject()
    bearer = f"authorization: Bearer {new_token(emulator, '--subject', who)}"
    remaining = []
    for _ in range(3):  # GetFleet: 1 r/s, burst 2; the clock stands still
        code, out, err = get_fleet(emulator, "hamburg", "-H", bearer)
        assert code == 0, err
        sent = parse_response_headers(out)
        assert sent["ratelimit-limit"] == ["3"]
        remaining += sent["ratelimit-remaining"]
    assert remaining == ["2", "1", "0"]

    code, out, err = get_fleet(emulator, "hamburg", "-H", bearer)
    assert code == GRPCURL_STATUS_EXIT_BASE + RESOURCE_EXHAUSTED, err
    error = parse_error(err)
    assert error.detail("google.rpc.ErrorInfo")["reason"] == "RATE_LIMITED"
    assert get_field(error.detail("google.rpc.RetryInfo"), "retry_delay") == "1s"
    violation = error.detail("google.rpc.QuotaFailure")["violations"][0]
    assert violation == {"subject": f"client:{who}", "description": "GetFleet: 1 r/s, burst 2"}
    assert "x-flow-id" in parse_response_headers(out)


@pytest.mark.parametrize(
    ("token", "reason"), [("", "ADMIN_TOKEN_MISSING"), ("not-the-admin-token", "ADMIN_TOKEN_INVALID")]
)
def test_the_admin_service_needs_the_admin_token(emulator: EmulatorProcess, token: str, reason: str) -> None:
    cli = any_fleet_emulator(
        "token", "--subject", subject(), "--address", emulator.address, "--admin-token", token
    )
    assert cli.returncode == 1
    assert "UNAUTHENTICATED: " in cli.stderr and reason in cli.stderr, cli.stderr
    header = ["-H", f"authorization: Bearer {token}"] if token else []
    for method, request in (
        ("IssueToken", {"subject": "intruder"}),
        ("UpdatePolicies", {"policies": {}, "update_mask": {"paths": ["auth_mode"]}}),
        ("ListJournalEntries", {}),
    ):
        result = grpcurl(
            "-plaintext",
            *header,
            "-d",
            json.dumps(request),
            emulator.address,
            f"emulator.admin.v1.AdminService/{method}",
        )
        assert result.returncode == GRPCURL_STATUS_EXIT_BASE + UNAUTHENTICATED, result.stderr
        assert parse_error(result.stderr).detail("google.rpc.ErrorInfo")["reason"] == reason
    health = grpcurl("-plaintext", emulator.address, "grpc.health.v1.Health/Check")
    assert health.returncode == 0 and "SERVING" in health.stdout, "health stays open"
