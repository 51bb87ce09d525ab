"""Bearer auth of the emulated API (seeds 000 and 001): tokens the emulator issues, and who a call comes from.

Tokens are HS256 JWTs with the claims ``sub`` (the client), ``fleets`` (its fleet scopes; absent or empty:
every fleet), ``iat``, ``exp`` and ``iss`` ``fleet-emulator``; they live 30 minutes unless asked otherwise
(seed 001), at most 30 days, and expire on the emulator's clock, never on wall time. ``authenticate``
applies a namespace's auth mode to a call's token: ``NONE`` checks nothing, ``ANY`` wants some bearer token,
``JWT`` wants a valid, unexpired token of this emulator and grants its fleet scopes. ``identify`` names
the caller whatever the mode: the token's subject, else a digest of the token, else the peer's host.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jwt
from jwt.types import Options

from fleet_emulator.domain import reasons
from fleet_emulator.domain.access import EVERY_FLEET, Access
from fleet_emulator.domain.errors import Unauthenticated, Violations
from fleet_emulator.domain.policies import AuthMode
from fleet_emulator.domain.validation import check_fleet_id

ALGORITHM = "HS256"
ISSUER = "fleet-emulator"
DEFAULT_LIFETIME = timedelta(minutes=30)
MAX_LIFETIME = timedelta(days=30)
MIN_LIFETIME = timedelta(seconds=1)
MAX_SUBJECT = 200
MAX_FLEETS = 50
SCHEME = "bearer"
# The emulator's clock decides expiry: PyJWT only checks the signature and that sub and exp are there.
DECODE_OPTIONS: Options = {
    "require": ["sub", "exp"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_iss": False,
    "verify_aud": False,
}


@dataclass(frozen=True)
class Claims:
    subject: str
    fleets: frozenset[str] | None  # None: every fleet
    expiry: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Claims


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header (any case of ``Bearer``), else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != SCHEME:
        return None
    return token.strip() or None


@functools.lru_cache(maxsize=4096)
def peer_host(peer: str) -> str:
    """The host of a gRPC peer: ``ipv4:127.0.0.1:5555`` is ``127.0.0.1``, ``ipv6:[::1]:5555`` is ``::1``."""
    scheme, _, address = unquote(peer).partition(":")
    if scheme in ("ipv4", "ipv6"):
        return address.rsplit(":", 1)[0].strip("[]")
    return unquote(peer)


def _unverified(token: str) -> dict[str, Any] | None:
    try:
        payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return payload


def _instant(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


@dataclass(frozen=True)
class Identity:
    client: str
    token_expiry: datetime | None


def identify(token: str | None, peer: str) -> Identity:
    """Who a call comes from, unverified: the subject of its token, a digest of a token that is no JWT with
    a subject, or the peer's host when there is no token; and the expiry the token claims."""
    if token is None:
        return Identity(peer_host(peer), None)
    payload = _unverified(token) or {}
    subject = payload.get("sub")
    if not isinstance(subject, str) or not subject:
        subject = f"token:{hashlib.sha256(token.encode()).hexdigest()[:12]}"
    return Identity(subject, _instant(payload.get("exp")))


def _claims(payload: dict[str, Any]) -> Claims:
    """The claims of a verified payload; ValueError naming a claim of the wrong type."""
    subject, fleets, expiry = payload.get("sub"), payload.get("fleets", []), _instant(payload.get("exp"))
    if not isinstance(subject, str) or not subject:
        raise ValueError("sub must be a non-empty string")
    if expiry is None:
        raise ValueError("exp must be a time in seconds since the epoch")
    if not isinstance(fleets, list) or not all(isinstance(f, str) for f in fleets):
        raise ValueError("fleets must be a list of fleet ids")
    return Claims(subject, frozenset(fleets) or None, expiry)


def verify(secret: str, token: str, now: datetime) -> Claims:
    """The claims of a token this emulator issued that has not expired at ``now``; else UNAUTHENTICATED."""
    try:
        claims = _claims(jwt.decode(token, secret, algorithms=[ALGORITHM], options=DECODE_OPTIONS))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise Unauthenticated(
            reasons.TOKEN_INVALID, f"the bearer token is not a valid token of this emulator: {exc}"
        ) from None
    if now >= claims.expiry:
        expire_time = f"{claims.expiry:%Y-%m-%dT%H:%M:%SZ}"
        raise Unauthenticated(
            reasons.TOKEN_EXPIRED,
            f"the bearer token expired at {expire_time}; get a new token",
            expire_time=expire_time,
        )
    return claims


def authenticate(mode: AuthMode, secret: str, token: str | None, now: datetime) -> Access:
    """The fleets a call may see under ``mode``, or UNAUTHENTICATED."""
    if mode is AuthMode.NONE:
        return EVERY_FLEET
    if token is None:
        raise Unauthenticated(
            reasons.TOKEN_MISSING, "this call needs an `authorization: Bearer <token>` header"
        )
    if mode is AuthMode.ANY:
        return EVERY_FLEET
    return Access(verify(secret, token, now).fleets)


def issue_token(
    secret: str, subject: str, fleet_ids: list[str], lifetime: timedelta, now: datetime
) -> IssuedToken:
    """A token for ``subject`` valid from ``now`` for ``lifetime`` (0: 30 minutes), limited to ``fleet_ids``
    (none: every fleet); INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    if not subject.strip():
        violations.add("subject", "is required: who the token is for")
    elif len(subject) > MAX_SUBJECT:
        violations.add("subject", f"must be at most {MAX_SUBJECT} characters")
    if len(fleet_ids) > MAX_FLEETS:
        violations.add("fleet_ids", f"must name at most {MAX_FLEETS} fleets, so that the token fits a header")
    for index, fleet_id in enumerate(fleet_ids[:MAX_FLEETS]):
        check_fleet_id(fleet_id, violations, f"fleet_ids[{index}]")
    if lifetime and not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        violations.add("lifetime", "must be 0 (30 minutes) or between 1 second and 30 days")
    violations.raise_if_any(reasons.FIELD_INVALID)
    issued_at = int(now.timestamp())
    expires = int((now + (lifetime or DEFAULT_LIFETIME)).timestamp())
    payload = {"sub": subject, "iat": issued_at, "exp": expires, "iss": ISSUER}
    if fleet_ids:
        payload["fleets"] = list(dict.fromkeys(fleet_ids))
    token = jwt.encode(payload, secret, algorithm=ALGORITHM)
    return IssuedToken(
        token, Claims(subject, frozenset(fleet_ids) or None, datetime.fromtimestamp(expires, UTC))
    )
