"""Bearer tokens and client identity (``domain/auth.py``): issuing, verifying on the emulator's clock."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from fleet_emulator.domain import reasons
from fleet_emulator.domain.access import EVERY_FLEET, Access
from fleet_emulator.domain.auth import (
    authenticate,
    bearer_token,
    identify,
    issue_token,
    peer_host,
    verify,
)
from fleet_emulator.domain.errors import InvalidArgument, Unauthenticated
from fleet_emulator.domain.policies import AuthMode

SECRET = "unit-test-secret-" + "s" * 48  # long enough for HS512 too: no key-length warnings
OTHER_SECRET = "another-secret-of-at-least-32-bytes!!"
NOW = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)  # far from wall time: expiry must follow this clock


def token_for(subject: str = "acme", fleets: list[str] | None = None, lifetime_s: int = 0) -> str:
    return issue_token(SECRET, subject, fleets or [], timedelta(seconds=lifetime_s), NOW).token


def signed(payload: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def unauthenticated(token: str | None, at: datetime = NOW, mode: AuthMode = AuthMode.JWT) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authenticate(mode, SECRET, token, at)
    return caught.value


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_the_token_comes_from_a_bearer_authorization_header_of_any_case(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:%5B::1%5D:5555", "::1"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
    ],
)
def test_the_peer_host_drops_scheme_and_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host


def test_an_issued_token_has_the_documented_claims_and_a_30_minute_default_lifetime() -> None:
    issued = issue_token(SECRET, "acme", ["hamburg", "hanover"], timedelta(0), NOW)

    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    expiry = NOW + timedelta(minutes=30)
    assert claims == {
        "sub": "acme",
        "fleets": ["hamburg", "hanover"],
        "iat": int(NOW.timestamp()),
        "exp": int(expiry.timestamp()),
        "iss": "fleet-emulator",
    }
    assert issued.claims.expiry == expiry
    assert issued.claims.fleets == frozenset({"hamburg", "hanover"})


def test_a_token_without_fleets_grants_every_fleet() -> None:
    token = token_for(fleets=[])

    assert "fleets" not in jwt.decode(token, options={"verify_signature": False})
    assert authenticate(AuthMode.JWT, SECRET, token, NOW) == EVERY_FLEET


def test_a_scoped_token_grants_its_fleets_only() -> None:
    access = authenticate(AuthMode.JWT, SECRET, token_for(fleets=["hanover"]), NOW)

    assert access == Access(frozenset({"hanover"}))
    assert (access.allows("hanover"), access.allows("hamburg")) == (True, False)


def test_expiry_follows_the_given_clock_not_wall_time() -> None:
    token = token_for(lifetime_s=60)

    assert verify(SECRET, token, NOW + timedelta(seconds=59)).subject == "acme"
    error = unauthenticated(token, NOW + timedelta(seconds=60))
    assert error.reason is reasons.TOKEN_EXPIRED
    assert error.metadata == {"expire_time": "2001-02-03T04:06:06Z"}


def test_a_token_issued_in_the_future_of_wall_time_is_valid_then() -> None:
    later = datetime(2300, 1, 1, tzinfo=UTC)
    token = issue_token(SECRET, "acme", [], timedelta(0), later).token

    assert verify(SECRET, token, later).subject == "acme"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        signed({"sub": "acme", "exp": 4_000_000_000}, secret=OTHER_SECRET),
        signed({"exp": 4_000_000_000}),
        signed({"sub": "acme"}),
        signed({"sub": "", "exp": 4_000_000_000}),
        signed({"sub": 7, "exp": 4_000_000_000}),
        signed({"sub": "acme", "exp": "tomorrow"}),
        signed({"sub": "acme", "exp": 4_000_000_000, "fleets": "hamburg"}),
        signed({"sub": "acme", "exp": 4_000_000_000, "fleets": [1]}),
        signed({"sub": "acme", "exp": 4_000_000_000}, algorithm="HS512"),
        jwt.encode({"sub": "acme", "exp": 4_000_000_000}, None, algorithm="none"),
    ],
)
def test_tokens_that_are_not_valid_tokens_of_this_emulator_are_invalid(token: str) -> None:
    error = unauthenticated(token)

    assert error.reason is reasons.TOKEN_INVALID
    assert "not a valid token of this emulator" in error.message


def test_jwt_and_any_modes_want_a_token_and_none_mode_checks_nothing() -> None:
    assert unauthenticated(None).reason is reasons.TOKEN_MISSING
    assert unauthenticated(None, mode=AuthMode.ANY).reason is reasons.TOKEN_MISSING
    assert authenticate(AuthMode.ANY, SECRET, "anything", NOW) == EVERY_FLEET
    assert authenticate(AuthMode.NONE, SECRET, None, NOW) == EVERY_FLEET
    assert authenticate(AuthMode.NONE, SECRET, "garbage", NOW) == EVERY_FLEET


def test_any_mode_grants_every_fleet_even_to_a_scoped_or_expired_token() -> None:
    token = token_for(fleets=["hanover"], lifetime_s=1)

    assert authenticate(AuthMode.ANY, SECRET, token, NOW + timedelta(days=1)) == EVERY_FLEET


def test_the_client_is_the_subject_the_token_digest_or_the_peer_host() -> None:
    token = token_for("acme-charging", lifetime_s=90)
    opaque = "opaque-token-value"
    no_subject = signed({"exp": 4_000_000_000})

    named = identify(token, "ipv4:10.0.0.1:4000")
    assert (named.client, named.token_expiry) == ("acme-charging", NOW + timedelta(seconds=90))
    unsigned_claims = identify(signed({"sub": "mallory"}, secret=OTHER_SECRET), "ipv4:10.0.0.1:4000")
    assert unsigned_claims.client == "mallory"  # not verified: it only names the caller
    assert identify(opaque, "ipv4:10.0.0.1:4000").client == (
        f"token:{hashlib.sha256(opaque.encode()).hexdigest()[:12]}"
    )
    assert identify(no_subject, "").client.startswith("token:")
    assert identify(None, "ipv4:10.0.0.1:4000") == identify(None, "ipv4:10.0.0.1:4001")
    assert identify(None, "ipv4:10.0.0.1:4000").client == "10.0.0.1"


def test_every_problem_of_a_token_request_is_named() -> None:
    with pytest.raises(InvalidArgument) as caught:
        issue_token(SECRET, " ", ["hamburg", "Not_A_Fleet", ""], timedelta(milliseconds=500), NOW)

    assert caught.value.reason is reasons.FIELD_INVALID
    assert [v.field for v in caught.value.violations] == [
        "subject",
        "fleet_ids[1]",
        "fleet_ids[2]",
        "lifetime",
    ]


def test_a_token_names_at_most_fifty_fleets_so_that_it_fits_a_header() -> None:
    fifty = [f"fleet-{n}" for n in range(50)]
    assert len(issue_token(SECRET, "acme", fifty, timedelta(0), NOW).token) < 4096
    with pytest.raises(InvalidArgument) as caught:
        issue_token(SECRET, "acme", [*fifty, "one-more"], timedelta(0), NOW)
    assert [v.field for v in caught.value.violations] == ["fleet_ids"]


@pytest.mark.parametrize(
    ("subject", "lifetime", "field"),
    [
        ("x" * 201, timedelta(0), "subject"),
        ("acme", timedelta(days=30, seconds=1), "lifetime"),
        ("acme", timedelta(seconds=-1), "lifetime"),
    ],
)
def test_a_long_subject_or_a_lifetime_out_of_range_is_refused(
    subject: str, lifetime: timedelta, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        issue_token(SECRET, subject, [], lifetime, NOW)

    assert [v.field for v in caught.value.violations] == [field]


@pytest.mark.parametrize("lifetime", [timedelta(seconds=1), timedelta(days=30)])
def test_lifetimes_at_the_bounds_are_accepted(lifetime: timedelta) -> None:
    issued = issue_token(SECRET, "x" * 200, [], lifetime, NOW)

    assert issued.claims.expiry == NOW + lifetime
