"""The admin helper of the pytest plugin: the admin service of one namespace in plain synchronous calls.

``Admin`` steers state, scenarios, events, faults, the call journal, policies, tokens and the client
report; ``Clock`` moves the emulator's clock (shared by all namespaces) and ``Fault`` is a rule that can
be deleted, also as a context manager. ``testing.py`` gives them to tests through the ``fleet_emulator``
fixture and re-exports them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as admin_pb
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as admin_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb

JOURNAL_PAGE = 1000


def _code_number(code: grpc.StatusCode | int) -> int:
    number: int = code.value[0] if isinstance(code, grpc.StatusCode) else code
    return number


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(when)
    return message


def _field_paths(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The leaf field paths of nested keyword values: ``battery={"range_km": 3}`` is ``battery.range_km``."""
    paths: list[str] = []
    for name, value in fields.items():
        if isinstance(value, Mapping) and value:
            paths.extend(_field_paths(value, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


class Clock:
    """The emulator's clock, shared by all its namespaces: virtual once set or advanced, until ``real()``."""

    def __init__(self, stub: admin_grpc.AdminServiceStub) -> None:
        self._stub = stub
        self.moved = False  # set or advanced through this helper since the last real()

    def now(self) -> datetime:
        return self._stub.GetClock(admin_pb.GetClockRequest()).now.ToDatetime(tzinfo=UTC)

    def set(self, when: datetime) -> datetime:
        """Stop the clock at ``when`` (a naive datetime is taken as UTC)."""
        self.moved = True
        return self._stub.SetClock(admin_pb.SetClockRequest(time=_timestamp(when))).now.ToDatetime(tzinfo=UTC)

    def advance(self, by: timedelta) -> datetime:
        self.moved = True
        by_message = duration_pb2.Duration()
        by_message.FromTimedelta(by)
        response = self._stub.AdvanceClock(admin_pb.AdvanceClockRequest(by=by_message))
        return response.now.ToDatetime(tzinfo=UTC)

    def real(self) -> datetime:
        self.moved = False
        return self._stub.UseRealClock(admin_pb.UseRealClockRequest()).now.ToDatetime(tzinfo=UTC)


class Fault:
    """A fault rule of the namespace; as a context manager, deleted at the end of the block."""

    def __init__(self, stub: admin_grpc.AdminServiceStub, rule: admin_pb.Fault) -> None:
        self._stub = stub
        self.rule = rule

    @property
    def id(self) -> str:
        return self.rule.id

    def delete(self) -> None:
        """Delete the rule; one already gone (its ``times`` used up, or reset) is fine."""
        try:
            self._stub.DeleteFault(admin_pb.DeleteFaultRequest(fault_id=self.rule.id))
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


class Admin:
    """The admin service of one namespace in plain synchronous calls; ``.stub`` has every RPC."""

    def __init__(self, channel: grpc.Channel, clock: Clock | None = None) -> None:
        self.stub = admin_grpc.AdminServiceStub(channel)
        self.clock = clock or Clock(self.stub)
        self.scenario_loaded = False

    def reset(self) -> admin_pb.ResetEmulatorResponse:
        """Back to the namespace's scenario; page tokens, event streams, faults and journal are forgotten."""
        return self.stub.ResetEmulator(admin_pb.ResetEmulatorRequest())

    def load_scenario(self, scenario: str | os.PathLike[str]) -> admin_pb.LoadScenarioResponse:
        """Replace the namespace's state with a scenario: a path (a ``PathLike``, or a one-line ``str``
        ending in ``.yaml``/``.yml``) or the YAML text itself."""
        if isinstance(scenario, str) and "\n" not in scenario and scenario.endswith((".yaml", ".yml")):
            scenario = Path(scenario)
        if isinstance(scenario, str):
            request = admin_pb.LoadScenarioRequest(yaml=scenario)
        else:
            path = Path(scenario)
            request = admin_pb.LoadScenarioRequest(yaml=path.read_text(encoding="utf-8"), source=path.name)
        response = self.stub.LoadScenario(request)
        self.scenario_loaded = True
        return response

    def update_vehicle(
        self,
        vehicle_id: str,
        vehicle: v2_pb.Vehicle | None = None,
        paths: Iterable[str] = (),
        **fields: Any,
    ) -> admin_pb.UpdateVehicleResponse:
        """Change parts of a vehicle, given as v2 fields in their JSON form (only the leaves named change:
        ``battery={"state_of_charge_percent": 12}`` is the path ``battery.state_of_charge_percent``) or as
        a ``v2_pb.Vehicle`` with the ``paths`` to take from it; the response has the events it emitted."""
        message = v2_pb.Vehicle()
        if vehicle is not None:
            message.CopyFrom(vehicle)
        json_format.ParseDict(fields, message)
        message.id = vehicle_id
        mask = field_mask_pb2.FieldMask(paths=[*paths, *_field_paths(fields)])
        return self.stub.UpdateVehicle(admin_pb.UpdateVehicleRequest(vehicle=message, update_mask=mask))

    def publish_event(self, event: v2_pb.Event | None = None, **fields: Any) -> admin_pb.PublishEventResponse:
        """Publish an event on its vehicle's fleet stream, as a ``v2_pb.Event`` and/or v2 fields in JSON form
        (``vehicle_id=..., lock_changed={"lock_state": "LOCK_STATE_UNLOCKED"}``)."""
        message = v2_pb.Event()
        if event is not None:
            message.CopyFrom(event)
        json_format.ParseDict(fields, message)
        return self.stub.PublishEvent(admin_pb.PublishEventRequest(event=message))

    def fault(
        self,
        method: str = "*",
        code: grpc.StatusCode | None = None,
        *,
        message: str = "",
        reason: str = "",
        details: Iterable[Message] = (),
        break_after: int | None = None,
        latency: timedelta | None = None,
        stall_after: int | None = None,
        fleet_id: str = "",
        vehicle_id: str = "",
        times: int = 0,
        probability: float = 0.0,
        seed: int = 0,
    ) -> Fault:
        """Add a fault rule for ``method`` (a name, a full name or ``*``) doing one thing: fail with ``code``
        (or, with ``break_after``, end a stream with it after that many messages), add ``latency``, or
        stall a stream after ``stall_after`` messages; on the next ``times`` matching calls (0: always)."""
        actions = sum(given is not None for given in (code, latency, stall_after))
        if actions != 1 or (break_after is not None and code is None):
            raise ValueError(
                "give one action: code= (with break_after= for streams), latency= or stall_after="
            )
        rule = admin_pb.Fault(
            method=method,
            fleet_id=fleet_id,
            vehicle_id=vehicle_id,
            times=times,
            probability=probability,
            seed=seed,
        )
        if code is not None and break_after is not None:
            rule.break_stream.CopyFrom(
                admin_pb.BreakStream(after_messages=break_after, code=_code_number(code), message=message)
            )
        elif code is not None:
            rule.fail.CopyFrom(admin_pb.FailCall(code=_code_number(code), message=message, reason=reason))
            for detail in details:
                rule.fail.details.add().Pack(detail)
        elif latency is not None:
            rule.latency.delay.FromTimedelta(latency)
        elif stall_after is not None:
            rule.stall_stream.CopyFrom(admin_pb.StallStream(after_messages=stall_after))
        created = self.stub.CreateFault(admin_pb.CreateFaultRequest(fault=rule)).fault
        return Fault(self.stub, created)

    def clear_faults(self) -> int:
        return self.stub.ClearFaults(admin_pb.ClearFaultsRequest()).deleted

    def journal(
        self, method: str = "", *, flow_id: str = "", code: grpc.StatusCode | int | None = None
    ) -> list[admin_pb.JournalEntry]:
        """The namespace's calls to the emulated API, oldest first: all of them, or those of ``method`` (a
        name or full name), with ``flow_id`` or ending with ``code``."""
        entries: list[admin_pb.JournalEntry] = []
        while True:
            request = admin_pb.ListJournalEntriesRequest(
                method=method,
                flow_id=flow_id,
                after_sequence=entries[-1].sequence if entries else 0,
                page_size=JOURNAL_PAGE,
            )
            if code is not None:
                request.code = _code_number(code)
            page = self.stub.ListJournalEntries(request).entries
            entries.extend(page)
            if len(page) < JOURNAL_PAGE:
                return entries

    def clear_journal(self) -> int:
        return self.stub.ClearJournal(admin_pb.ClearJournalRequest()).deleted

    def set_policies(
        self,
        *,
        auth: str | None = None,
        rate_limits: str | Iterable[admin_pb.RateLimit] | None = None,
        wake_up_delay: tuple[timedelta, timedelta] | None = None,
        unknown_values: bool | None = None,
        poll_interval: timedelta | None = None,
    ) -> admin_pb.Policies:
        """Change the namespace's policies given (the others stay): ``auth`` ``"none"``, ``"any"`` or
        ``"jwt"``; ``rate_limits`` a preset name (``"seed-001"``) or ``RateLimit`` rules; ``wake_up_delay``
        as (shortest, longest); ``unknown_values``; ``poll_interval`` of the client report."""
        request = admin_pb.UpdatePoliciesRequest()
        policies, paths = request.policies, []
        if auth is not None:
            policies.auth_mode = admin_pb.AuthMode.Value(f"AUTH_MODE_{auth.upper()}")
            paths.append("auth_mode")
        if isinstance(rate_limits, str):
            request.rate_limit_preset = rate_limits
        elif rate_limits is not None:
            policies.rate_limits.extend(rate_limits)
        if rate_limits is not None:
            paths.append("rate_limits")
        if wake_up_delay is not None:
            policies.wake_up_delay_min.FromTimedelta(wake_up_delay[0])
            policies.wake_up_delay_max.FromTimedelta(wake_up_delay[1])
            paths += ["wake_up_delay_min", "wake_up_delay_max"]
        if unknown_values is not None:
            policies.unknown_values = unknown_values
            paths.append("unknown_values")
        if poll_interval is not None:
            policies.poll_interval.FromTimedelta(poll_interval)
            paths.append("poll_interval")
        if not paths:
            raise ValueError("give at least one policy to change")
        request.update_mask.paths.extend(paths)
        return self.stub.UpdatePolicies(request).policies

    def token(self, subject: str, fleet_ids: Iterable[str] = (), lifetime: timedelta | None = None) -> str:
        """A bearer token for ``subject`` (all fleets, or only ``fleet_ids``), valid for ``lifetime``
        (default 30 minutes) on the emulator's clock; send it as ``authorization: Bearer <token>``."""
        request = admin_pb.IssueTokenRequest(subject=subject, fleet_ids=list(fleet_ids))
        if lifetime is not None:
            request.lifetime.FromTimedelta(lifetime)
        return self.stub.IssueToken(request).access_token

    def report(self) -> dict[str, list[admin_pb.Finding]]:
        """The client report: for each client that broke a practice, its findings (empty: all well)."""
        response = self.stub.GetClientReport(admin_pb.GetClientReportRequest())
        return {client.client: list(client.findings) for client in response.clients}
