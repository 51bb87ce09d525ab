"""The ``policies`` CLI command: show or change a namespace's behaviour switches through the admin service.

``fleet-emulator policies`` prints them as proto3 JSON; ``fleet-emulator policies set`` changes only the
options given (the update mask is built from them): auth mode, rate limits (a preset or a YAML file read
here), wake-up delays, unknown values and the polling interval of the client report.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import click
from google.protobuf import field_mask_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.api.admin_policies import policies_message
from fleet_emulator.cli import Duration
from fleet_emulator.cli_admin_client import Admin, echo_json, pass_admin
from fleet_emulator.domain.policies import AuthMode, Policies
from fleet_emulator.domain.rate_rules import PRESETS, RateRulesError, rules_from


@click.group(invoke_without_command=True)
@pass_admin
@click.pass_context
def policies(ctx: click.Context, admin: Admin) -> None:
    """Show the namespace's policies (auth, rate limits, wake-up delay, unknown values, polling)."""
    if ctx.invoked_subcommand is None:
        echo_json(admin.call(lambda stub: stub.GetPolicies, pb.GetPoliciesRequest()).policies)


@policies.command("set")
@click.option("--auth", type=click.Choice([m.name.lower() for m in AuthMode]), help="Auth mode.")
@click.option("--rate-limits", help=f"A preset ({', '.join(PRESETS)}) or a YAML file of rules.")
@click.option("--wake-up-delay-min", type=Duration(), help="Shortest delay before a woken vehicle is online.")
@click.option("--wake-up-delay-max", type=Duration(), help="Longest delay before a woken vehicle is online.")
@click.option("--unknown-values/--no-unknown-values", default=None, help="Surprise clients with new values.")
@click.option("--poll-interval", type=Duration(), help="The client report flags faster polling.")
@pass_admin
def set_policies(
    admin: Admin,
    auth: str | None,
    rate_limits: str | None,
    wake_up_delay_min: timedelta | None,
    wake_up_delay_max: timedelta | None,
    unknown_values: bool | None,
    poll_interval: timedelta | None,
) -> None:
    """Change the policies given as options, keep the others; prints the policies now in force."""
    given = Policies(
        auth_mode=AuthMode[auth.upper()] if auth else AuthMode.NONE,
        wake_up_delay_min=wake_up_delay_min or timedelta(0),
        wake_up_delay_max=wake_up_delay_max or timedelta(0),
        unknown_values=bool(unknown_values),
        poll_interval=poll_interval or timedelta(0),
    )
    request = pb.UpdatePoliciesRequest()
    paths = {
        "auth_mode": auth,
        "wake_up_delay_min": wake_up_delay_min,
        "wake_up_delay_max": wake_up_delay_max,
        "unknown_values": unknown_values,
        "poll_interval": poll_interval,
    }
    mask = [path for path, value in paths.items() if value is not None]
    if rate_limits in PRESETS:
        request.rate_limit_preset = rate_limits
    elif rate_limits is not None:
        try:
            given = dataclasses.replace(given, rate_limits=rules_from(rate_limits))
        except RateRulesError as exc:
            raise click.BadParameter(str(exc), param_hint="--rate-limits") from exc
        mask.append("rate_limits")
    if not mask and not request.rate_limit_preset:
        raise click.UsageError("give at least one policy to change (see --help)")
    request.policies.CopyFrom(policies_message(given))
    request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=mask or ["rate_limits"]))
    echo_json(admin.call(lambda stub: stub.UpdatePolicies, request).policies)
