"""The admin RPC ``IssueToken``: a bearer token (HS256 JWT) for the emulated API, valid from now on the
emulator's clock.

Every token issued is journaled in the namespace (method ``/emulator.admin.v1.AdminService/IssueToken``,
version ``admin``, the subject as client and the token's expiry), so that the client report can spot
clients that renew a token long before it expires (seed 001). The token itself never reaches the journal.
"""

from __future__ import annotations

from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.api.convert import timedelta_of, timestamp
from fleet_emulator.api.shrink import journaled, kept
from fleet_emulator.api.steering import request_headers
from fleet_emulator.domain.auth import issue_token
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.journal import JournalEntry
from fleet_emulator.domain.namespaces import Namespaces

Context = Any
METHOD = "/emulator.admin.v1.AdminService/IssueToken"


class TokenAdmin:
    namespaces: Namespaces
    clock: EmulatorClock

    async def IssueToken(self, request: pb.IssueTokenRequest, context: Context) -> pb.IssueTokenResponse:
        namespace = await self.namespaces.current()
        now = self.clock.now()
        issued = issue_token(
            self.namespaces.jwt_secret,
            request.subject,
            list(request.fleet_ids),
            timedelta_of(request.lifetime),
            now,
        )
        cut, size, truncated = journaled(request)
        entry = namespace.journal.add(
            JournalEntry(
                start_time=now,
                method=METHOD,
                version="admin",
                metadata=request_headers(context.invocation_metadata() or ()),
                request=kept(cut),
                request_size=size,
                request_truncated=truncated,
                flow_id=current_flow_id.get(),
                peer=context.peer() or "",
                finished=True,
                client=issued.claims.subject,
                token_expiry=issued.claims.expiry,
            )
        )
        await namespace.journal.finished(entry)
        return pb.IssueTokenResponse(access_token=issued.token, expire_time=timestamp(issued.claims.expiry))
