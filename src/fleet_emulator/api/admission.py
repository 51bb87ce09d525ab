"""Admission of a call of the emulated API: bearer auth, then the client's rate limit (seeds 000 and 001).

The call-scope interceptor runs ``admit`` once the call's namespace and journal entry exist and before it
sends the response headers. ``admit`` names the client in the journal entry (with the expiry its token
claims), applies the namespace's auth mode (``UNAUTHENTICATED``), sets the fleet scopes of the token for the
rest of the call (``domain/access.py``), then takes a token from the client's bucket for the RPC
(``RESOURCE_EXHAUSTED``); it returns the ``ratelimit-*`` headers that go with the flow id. A refused call is
journaled with its code, reason and retry delay here, since the interceptor gets no watch for it.
``admit_admin`` guards the admin service: with ``--admin-token`` set, an admin call must carry it as its
bearer token (compared in constant time), else ``UNAUTHENTICATED``.
"""

from __future__ import annotations

import hmac

from fleet_emulator.api.steering import CallWatch, Metadata
from fleet_emulator.domain import reasons
from fleet_emulator.domain.access import current_access
from fleet_emulator.domain.auth import authenticate, bearer_token, identify
from fleet_emulator.domain.errors import EmulatorError, Unauthenticated
from fleet_emulator.domain.namespaces import Namespace

AUTHORIZATION = "authorization"


def _authorization(metadata: Metadata) -> str | None:
    for key, value in metadata:
        if key == AUTHORIZATION and isinstance(value, str):
            return value
    return None


async def admit(
    namespace: Namespace, watching: CallWatch, metadata: Metadata, secret: str
) -> tuple[tuple[str, str], ...]:
    """Authenticate and rate-limit the call; its ``ratelimit-*`` headers, or the error that refuses it."""
    entry, policies = watching.entry, namespace.policies
    token = bearer_token(_authorization(metadata))
    identity = identify(token, entry.peer)
    entry.client, entry.token_expiry = identity.client, identity.token_expiry
    try:
        current_access.set(authenticate(policies.auth_mode, secret, token, entry.start_time))
        quota = await namespace.rate_limiter.take(
            policies.rate_limits, entry.client, entry.method, entry.start_time
        )
    except EmulatorError as error:
        await watching.finish(error)
        raise
    return quota.headers() if quota is not None else ()


def admit_admin(metadata: Metadata, admin_token: str) -> None:
    """Nothing when no admin token is set or the call carries it; else UNAUTHENTICATED."""
    if not admin_token:
        return
    token = bearer_token(_authorization(metadata))
    if token is None:
        raise Unauthenticated(
            reasons.ADMIN_TOKEN_MISSING,
            "the admin service needs the emulator's admin token: `authorization: Bearer <admin token>`",
        )
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise Unauthenticated(
            reasons.ADMIN_TOKEN_INVALID, "the bearer token is not the emulator's admin token"
        )
