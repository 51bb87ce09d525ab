"""``fleet-emulator fault add | list | delete | clear``: the fault rules of a running emulator's namespace.

``fault add`` builds one ``emulator.admin.v1.Fault`` from its options, with exactly one action (``--fail``,
``--latency``, ``--break-after``, ``--stall-after`` or ``--poor-connection``) and the options that go with
it; the CLI refuses only what the message cannot express (two actions, an option without its action) and
leaves every other check to the emulator, whose ``BadRequest`` violations are printed as they come. Rules
are printed as proto3 JSON.
"""

from __future__ import annotations

import json
from datetime import timedelta

import click
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.cli import Duration
from fleet_emulator.cli_admin_client import Admin, StatusCode, connection_options, echo_json, pass_admin


@click.group()
@connection_options
def fault() -> None:
    """Fault rules: matching calls of the emulated API fail, slow down, or have their stream broken."""


@fault.command()
@click.option("--method", required=True, help='The RPC: a name (GetVehicle), a full name, or "*" for all.')
@click.option("--fleet", "fleet_id", default="", show_default=False, help="Only calls about this fleet.")
@click.option(
    "--vehicle", "vehicle_id", default="", show_default=False, help="Only calls about this vehicle."
)
@click.option("--times", default=0, help="Act on the next N matching calls, then expire (0: until deleted).")
@click.option(
    "--probability", default=0.0, help="Act on a matching call with this probability (needs --seed)."
)
@click.option(
    "--seed", default=0, help="Seed of the draws of --probability, so that every run hits the same."
)
@click.option(
    "--fail", "fail_code", type=StatusCode(), help="Action: fail with this code (UNAVAILABLE or 14)."
)
@click.option("--message", default="", show_default=False, help="Status message of --fail or --break-after.")
@click.option("--reason", default="", show_default="FAULT_INJECTED", help="ErrorInfo reason of --fail.")
@click.option(
    "--retry-after", type=Duration(), help="With --fail: add a google.rpc.RetryInfo with this delay."
)
@click.option("--latency", type=Duration(), help="Action: answer as usual after this delay (e.g. 1.5s).")
@click.option("--break-after", type=int, help="Action: end a server stream with --code after N messages.")
@click.option(
    "--code",
    "break_code",
    type=StatusCode(),
    help="Status code of --break-after, or of --poor-connection (DEADLINE_EXCEEDED if unset or UNAVAILABLE).",
)
@click.option(
    "--stall-after", type=int, help="Action: stop a server stream after N messages, keeping it open."
)
@click.option(
    "--poor-connection",
    type=click.Choice(["executed", "not-executed"]),
    help="Action: a vehicle command over a poor connection, which runs or not; the client gets --code.",
)
@pass_admin
def add(
    admin: Admin,
    method: str,
    fleet_id: str,
    vehicle_id: str,
    times: int,
    probability: float,
    seed: int,
    fail_code: int | None,
    message: str,
    reason: str,
    retry_after: timedelta | None,
    latency: timedelta | None,
    break_after: int | None,
    break_code: int | None,
    stall_after: int | None,
    poor_connection: str | None,
) -> None:
    """Add a fault rule with one action; rules act in the order they were added. Prints the rule."""
    actions = {
        "--fail": fail_code,
        "--latency": latency,
        "--break-after": break_after,
        "--stall-after": stall_after,
        "--poor-connection": poor_connection,
    }
    chosen = [name for name, value in actions.items() if value is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"a rule has one action, not {' and '.join(chosen)}")
    if (reason or retry_after is not None) and fail_code is None:
        raise click.UsageError("--reason and --retry-after go with --fail")
    if break_code is not None and break_after is None and poor_connection is None:
        raise click.UsageError("--code goes with --break-after or --poor-connection (--fail takes its own)")
    if message and fail_code is None and break_after is None:
        raise click.UsageError("--message goes with --fail or --break-after")
    rule = pb.Fault(
        method=method,
        fleet_id=fleet_id,
        vehicle_id=vehicle_id,
        times=times,
        probability=probability,
        seed=seed,
    )
    if fail_code is not None:
        rule.fail.CopyFrom(pb.FailCall(code=fail_code, message=message, reason=reason))
        if retry_after is not None:
            rule.fail.details.append(_packed_retry_info(retry_after))
    elif latency is not None:
        rule.latency.delay.FromTimedelta(latency)
    elif break_after is not None:
        rule.break_stream.CopyFrom(
            pb.BreakStream(after_messages=break_after, code=break_code or 0, message=message)
        )
    elif stall_after is not None:
        rule.stall_stream.CopyFrom(pb.StallStream(after_messages=stall_after))
    elif poor_connection is not None:
        executed = poor_connection == "executed"
        rule.poor_connection.CopyFrom(pb.PoorConnection(executed=executed, code=break_code or 0))
    echo_json(admin.call(lambda stub: stub.CreateFault, pb.CreateFaultRequest(fault=rule)).fault)


def _packed_retry_info(delay: timedelta) -> any_pb2.Any:
    retry_delay = duration_pb2.Duration()
    retry_delay.FromTimedelta(delay)
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=retry_delay))
    return packed


@fault.command("list")
@pass_admin
def list_faults(admin: Admin) -> None:
    """Print the rules of the namespace as a JSON array, in the order they act."""
    rules = admin.call(lambda stub: stub.ListFaults, pb.ListFaultsRequest()).faults
    click.echo(json.dumps([json_format.MessageToDict(rule) for rule in rules], indent=2))


@fault.command()
@click.argument("fault_id", metavar="ID")
@pass_admin
def delete(admin: Admin, fault_id: str) -> None:
    """Delete the rule with this id."""
    admin.call(lambda stub: stub.DeleteFault, pb.DeleteFaultRequest(fault_id=fault_id))
    click.echo(f"deleted fault {fault_id}")


@fault.command()
@pass_admin
def clear(admin: Admin) -> None:
    """Delete every rule of the namespace."""
    deleted = admin.call(lambda stub: stub.ClearFaults, pb.ClearFaultsRequest()).deleted
    click.echo(f"deleted {deleted} fault rule{'' if deleted == 1 else 's'}")
