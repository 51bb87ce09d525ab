"""The CLI commands that steer a running emulator through its admin service (``emulator.admin.v1``).

``reset``, ``load``, ``fleet`` and ``vehicle`` (see ``cli_admin_state``), ``publish``, ``fault`` (see
``cli_admin_faults``), ``journal``, ``clock``, ``namespace delete``, ``policies`` (``cli_admin_policies``),
``token`` (``cli_token``) and ``report`` (``cli_report``) each make one call, with the connection options of
``cli_admin_client``, and print the answer: a short sentence, proto3 JSON (events, fault rules, policies,
``--json``) or one line per journal entry or finding. ``ADMIN_COMMANDS`` is what ``cli.py`` registers on its
``main`` group; this module imports ``option`` and ``Duration`` from ``cli``, so ``cli`` imports it at its
end, after defining them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import click
from click.core import ParameterSource
from google.protobuf import json_format, timestamp_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.cli import Duration
from fleet_emulator.cli_admin_client import Admin, StatusCode, code_name, echo_json, pass_admin
from fleet_emulator.cli_admin_faults import fault
from fleet_emulator.cli_admin_policies import policies
from fleet_emulator.cli_admin_state import fleet, vehicle
from fleet_emulator.cli_report import report
from fleet_emulator.cli_token import token


def _counted(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


@click.command()
@pass_admin
def reset(admin: Admin) -> None:
    """Reset the namespace to its scenario: fleets, vehicles, streams, faults and journal."""
    response = admin.call(lambda stub: stub.ResetEmulator, pb.ResetEmulatorRequest())
    fleets, vehicles = _counted(response.fleet_count, "fleet"), _counted(response.vehicle_count, "vehicle")
    click.echo(f"reset to {fleets}, {vehicles}")


@click.command()
@click.argument("file", type=click.File(encoding="utf-8"))
@pass_admin
def load(admin: Admin, file: IO[str]) -> None:
    """Load a scenario YAML FILE ('-': stdin) into the namespace, replacing its state; resets return to it."""
    request = pb.LoadScenarioRequest(yaml=file.read(), source=file.name)
    response = admin.call(lambda stub: stub.LoadScenario, request)
    fleets, vehicles = _counted(response.fleet_count, "fleet"), _counted(response.vehicle_count, "vehicle")
    click.echo(f"loaded scenario {response.name!r} from {file.name}: {fleets}, {vehicles}")


@click.command()
@click.option("--vehicle", "vehicle_id", help="The vehicle the event is about (sets vehicle_id).")
@click.option(
    "--json", "text", help="The moia.fleet.state.v2 Event as JSON, e.g. '{\"lockChanged\": {...}}'."
)
@click.option(
    "--file", type=click.File(encoding="utf-8"), help="Read the event's JSON from this file ('-': stdin)."
)
@pass_admin
def publish(admin: Admin, vehicle_id: str | None, text: str | None, file: IO[str] | None) -> None:
    """Publish an event on the vehicle's fleet stream as it is; empty ids, times and flow id are filled in.

    Prints the message id and the event as published, as JSON.
    """
    if (text is None) == (file is None):
        raise click.UsageError("give the event with one of --json and --file")
    document = file.read() if file is not None else str(text)
    event = v2.Event()
    try:
        json_format.Parse(document, event)
    except json_format.ParseError as exc:
        raise click.BadParameter(str(exc), param_hint="--json" if text is not None else "--file") from None
    if vehicle_id:
        event.vehicle_id = vehicle_id
    echo_json(admin.call(lambda stub: stub.PublishEvent, pb.PublishEventRequest(event=event)))


@click.group(invoke_without_command=True)
@click.option(
    "--method", default="", show_default=False, help="Only calls of this method (name or full name)."
)
@click.option("--flow-id", default="", show_default=False, help="Only calls with this flow id.")
@click.option("--code", type=StatusCode(), help="Only calls that ended with this code (OK, NOT_FOUND, 5...).")
@click.option(
    "--after", default=0, help="Only entries with a larger sequence number (to read on from there)."
)
@click.option("--limit", default=100, type=click.IntRange(1, 1000), help="At most this many, oldest first.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON lines, with headers, requests and messages."
)
@pass_admin
@click.pass_context
def journal(
    ctx: click.Context,
    admin: Admin,
    method: str,
    flow_id: str,
    code: int | None,
    after: int,
    limit: int,
    as_json: bool,
) -> None:
    """List the calls made to the emulated API in the namespace, one per line; 'journal clear' empties it.

    A line has the sequence number, start time, method, status code, flow id, duration, the number of
    messages a stream sent and the status message of a failure.
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name in ctx.params if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(
                f"'journal {ctx.invoked_subcommand}' takes no filters ({', '.join(given)})"
            )
        return
    request = pb.ListJournalEntriesRequest(
        method=method, flow_id=flow_id, after_sequence=after, page_size=limit
    )
    if code is not None:
        request.code = code
    for entry in admin.call(lambda stub: stub.ListJournalEntries, request).entries:
        click.echo(json.dumps(json_format.MessageToDict(entry)) if as_json else _journal_line(entry))


def _journal_line(entry: pb.JournalEntry) -> str:
    parts = [
        str(entry.sequence),
        entry.start_time.ToJsonString(),
        entry.method.lstrip("/"),
        code_name(entry.code),
        f"flow={entry.flow_id or '-'}",
        f"{entry.duration.ToNanoseconds() / 1e6:.1f}ms",
    ]
    if entry.message_count:
        parts.append(_counted(entry.message_count, "message"))
    if entry.status_message:
        parts.append(json.dumps(entry.status_message))
    return "  ".join(parts)


@journal.command("clear")
@pass_admin
def clear_journal(admin: Admin) -> None:
    """Forget every journal entry of the namespace."""
    deleted = admin.call(lambda stub: stub.ClearJournal, pb.ClearJournalRequest()).deleted
    click.echo(f"deleted {_counted(deleted, 'journal entry', 'journal entries')}")


class IsoTime(click.ParamType[datetime, Any]):
    """An ISO 8601 time such as 2030-01-01T08:00:00Z; without an offset it is UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time like 2030-01-01T08:00:00Z", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _show(now: timestamp_pb2.Timestamp, virtual: bool) -> None:
    click.echo(f"{now.ToJsonString()} ({'virtual' if virtual else 'real'})")


@click.group(invoke_without_command=True)
@pass_admin
@click.pass_context
def clock(ctx: click.Context, admin: Admin) -> None:
    """Show the emulator's clock (shared by all namespaces); set it, advance it, or go back to real time."""
    if ctx.invoked_subcommand is None:
        response = admin.call(lambda stub: stub.GetClock, pb.GetClockRequest())
        _show(response.now, response.virtual)


@clock.command("set")
@click.argument("time", type=IsoTime())
@pass_admin
def set_clock(admin: Admin, time: datetime) -> None:
    """Switch to a virtual clock standing at TIME; it moves only when set or advanced."""
    request = pb.SetClockRequest()
    request.time.FromDatetime(time)
    _show(admin.call(lambda stub: stub.SetClock, request).now, virtual=True)


@clock.command()
@click.argument("by", metavar="DURATION", type=Duration())
@pass_admin
def advance(admin: Admin, by: timedelta) -> None:
    """Move the clock forward by DURATION (90s, 15m, 2h, 1d); a real clock becomes virtual."""
    request = pb.AdvanceClockRequest()
    request.by.FromTimedelta(by)
    _show(admin.call(lambda stub: stub.AdvanceClock, request).now, virtual=True)


@clock.command()
@pass_admin
def real(admin: Admin) -> None:
    """Go back to real time."""
    _show(admin.call(lambda stub: stub.UseRealClock, pb.UseRealClockRequest()).now, virtual=False)


@click.group()
def namespace() -> None:
    """Namespaces of the emulator (other than the default one)."""


@namespace.command("delete")
@click.argument("name")
@pass_admin
def delete_namespace(admin: Admin, name: str) -> None:
    """Delete the namespace NAME: its state, streams, faults, journal and policies; its open streams end."""
    existed = admin.call(lambda stub: stub.DeleteNamespace, pb.DeleteNamespaceRequest(namespace=name)).existed
    click.echo(f"deleted namespace {name!r}" if existed else f"namespace {name!r} was not in use")


ADMIN_COMMANDS: list[click.Command] = [
    reset,
    load,
    fleet,
    vehicle,
    publish,
    fault,
    journal,
    clock,
    namespace,
    policies,
    report,
    token,
]
