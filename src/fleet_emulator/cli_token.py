"""``fleet-emulator token``: a bearer token for the emulated API from a running emulator's admin service.

It prints the token alone, so that ``TOKEN=$(fleet-emulator token --subject me)`` works, or with ``--json``
one line with ``access_token`` and ``expire_time``. The emulator checks the subject, fleets and lifetime and
names every problem; the token is for the namespace's auth mode ``jwt`` (``serve --auth jwt``).
"""

from __future__ import annotations

import json
from datetime import timedelta

import click

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.cli import Duration
from fleet_emulator.cli_admin_client import Admin, pass_admin


@click.command()
@click.option("--subject", required=True, help="Who the token is for: the client in rate limits and reports.")
@click.option(
    "--fleet",
    "fleet_ids",
    multiple=True,
    help="A fleet the token may see; repeat for more. [default: every fleet]",
)
@click.option("--lifetime", type=Duration(), help="How long the token is valid, 1s to 30d. [default: 30m]")
@click.option("--json", "as_json", is_flag=True, help="Print access_token and expire_time as JSON.")
@pass_admin
def token(
    admin: Admin, subject: str, fleet_ids: tuple[str, ...], lifetime: timedelta | None, as_json: bool
) -> None:
    """Issue a bearer token (HS256 JWT) for the emulated API, valid from now on the emulator's clock.

    Send it as the header `authorization: Bearer <token>`.
    """
    request = pb.IssueTokenRequest(subject=subject, fleet_ids=fleet_ids)
    if lifetime is not None:
        request.lifetime.FromTimedelta(lifetime)
    response = admin.call(lambda stub: stub.IssueToken, request)
    if as_json:
        expire_time = response.expire_time.ToJsonString()
        click.echo(json.dumps({"access_token": response.access_token, "expire_time": expire_time}))
    else:
        click.echo(response.access_token)
