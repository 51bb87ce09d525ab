"""Page-size rules and page tokens for every List RPC (API.md section 2, AIP-158).

A page token is a random UUID (opaque and URL-safe) naming a ``PageCursor`` kept in the backend: the RPC
and request parameters it is bound to, the key of the last item returned (key-set paging, so items added or
removed between pages cause no skip and no duplicate) and its expiry on the emulator's clock. Because the
cursor lives in the backend, a token works on every replica sharing that backend.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import FieldViolation, InvalidArgument, NotFound, Violations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
TOKEN_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class PageCursor:
    binding: str
    after_key: str
    expires_at: datetime


def check_page_size(requested: int, violations: Violations) -> int:
    """The effective page size: default for 0, coerced to the maximum; a negative size is a violation."""
    if requested < 0:
        violations.add("page_size", f"must not be negative (got {requested})")
        return DEFAULT_PAGE_SIZE
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def binding_of(rpc: str, **params: str) -> str:
    """A stable fingerprint of the RPC and the request parameters a token is bound to."""
    text = rpc + "".join(f"\x1f{k}={v}" for k, v in sorted(params.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def new_token() -> str:
    return str(uuid.uuid4())


def is_well_formed(token: str) -> bool:
    try:
        return str(uuid.UUID(token)) == token
    except ValueError:
        return False


def check_cursor(token: str, cursor: PageCursor | None, binding: str, now: datetime) -> PageCursor:
    """The cursor a token names, or the error the contract prescribes for it."""
    if cursor is None:
        raise NotFound(
            reasons.PAGE_TOKEN_NOT_FOUND,
            "page_token is unknown or garbled; start again without a page_token",
            page_token=token[:64],
        )
    if cursor.expires_at <= now:
        raise NotFound(
            reasons.PAGE_TOKEN_EXPIRED,
            "page_token has expired; start again without a page_token",
            page_token=token,
            expire_time=cursor.expires_at.isoformat(),
        )
    if cursor.binding != binding:
        raise InvalidArgument(
            reasons.PAGE_TOKEN_MISMATCH,
            [FieldViolation("page_token", "was issued for other request parameters; keep them unchanged")],
            page_token=token,
        )
    return cursor
