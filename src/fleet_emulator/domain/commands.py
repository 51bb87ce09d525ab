"""Vehicle commands of v1 and v2 (seed 000): wake-up, lock, unlock, honk the horn and flash the lights.

Wake-up is ``wake_ups.py``. Every other command needs an online vehicle (else FAILED_PRECONDITION,
``VEHICLE_ASLEEP`` or ``VEHICLE_OFFLINE``); each execution counts (per vehicle and command, in the backend,
so replicas share it), returns a ``CommandResult`` and emits a ``CommandExecuted`` event with the call's flow
id; lock and unlock also set the lock state (a ``LockChanged`` event when it changes). With an idempotency
key the first execution's result is kept 24 hours of the emulator's clock in the namespace: a retry with
the key gets it back without executing again, and the key with another command or vehicle is
INVALID_ARGUMENT (``IDEMPOTENCY_KEY_REUSED``). A first use claims the key in the store before it executes
(atomic across replicas: one claim wins) and replaces the claim by its result, or drops it if the command
failed. A call finding the key claimed waits for the result, up to ``CLAIM_WAIT``, then is UNAVAILABLE
(``IDEMPOTENCY_KEY_IN_USE``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from datetime import timedelta

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.changes import event_for
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.errors import FieldViolation, InvalidArgument, Unavailable, Violations
from fleet_emulator.domain.events import CommandExecuted, CommandResult, VehicleCommand
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.keyed_locks import KeyedLocks
from fleet_emulator.domain.lookups import existing_vehicle
from fleet_emulator.domain.models import ConnectivityState, LockState, Vehicle
from fleet_emulator.domain.policies import Policies
from fleet_emulator.domain.streams import EventStreams
from fleet_emulator.domain.updates import VehicleUpdates
from fleet_emulator.domain.validation import canonical_vehicle_id
from fleet_emulator.domain.wake_ups import WakeUps, not_online

KEEP_RESULTS = timedelta(hours=24)
CLAIMED = ""  # the record of a key whose first command is running
CLAIM_WAIT = timedelta(seconds=10)  # how long a claim holds, and a call waits for the result of one
CLAIM_POLL_S = 0.01
MAX_KEY_LENGTH = 200
LOCKING = {VehicleCommand.LOCK: LockState.LOCKED, VehicleCommand.UNLOCK: LockState.UNLOCKED}


def online(vehicle: Vehicle) -> Vehicle:
    """The vehicle, if it is online; else the FAILED_PRECONDITION of a command to it."""
    if vehicle.connectivity is not ConnectivityState.ONLINE:
        raise not_online(vehicle)
    return vehicle


def _locked(vehicle: Vehicle, state: LockState) -> Vehicle:
    """The vehicle with its lock in ``state`` (itself when it already is: no new etag)."""
    return vehicle if vehicle.lock_state is state else dataclasses.replace(vehicle, lock_state=state)


def _replayed(kept: str, command: VehicleCommand, vehicle_id: str) -> CommandResult:
    """The result kept under an idempotency key, if it was for this command and vehicle. The error names
    neither the other command nor the other vehicle: the key may have been another client's, in a fleet
    this one may not see."""
    earlier = decode_as(CommandResult, json.loads(kept))
    if earlier.command is not command or earlier.vehicle_id != vehicle_id:
        problem = "was first used for another command or vehicle: send a new key for a new command"
        violation = FieldViolation("idempotency_key", problem)
        raise InvalidArgument(reasons.IDEMPOTENCY_KEY_REUSED, [violation], vehicle_id=vehicle_id)
    return earlier


class VehicleCommands:
    def __init__(
        self,
        store: StateStore,
        streams: EventStreams,
        updates: VehicleUpdates,
        wake_ups: WakeUps,
        clock: Clock,
    ) -> None:
        self.store = store
        self.streams = streams
        self.updates = updates
        self.wake_ups = wake_ups
        self.clock = clock
        self._keys = KeyedLocks()

    async def wake_up(self, vehicle_id: str, policies: Policies) -> Vehicle:
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        return await self.wake_ups.request(await existing_vehicle(self.store, canonical), policies)

    async def execute(
        self, vehicle_id: str, command: VehicleCommand, idempotency_key: str
    ) -> tuple[CommandResult, Vehicle]:
        """Execute the command, or return the result kept under the idempotency key (if one is given)."""
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations)
        if len(idempotency_key) > MAX_KEY_LENGTH:
            violations.add("idempotency_key", f"must be at most {MAX_KEY_LENGTH} characters")
        violations.raise_if_any(reasons.FIELD_INVALID)
        vehicle = await self.wake_ups.settled(await existing_vehicle(self.store, canonical))
        if not idempotency_key:
            return await self._run(vehicle, command)
        async with self._keys.hold(idempotency_key):
            now = self.clock.now()
            kept = await self._claim(idempotency_key)
            if kept is not None:
                return _replayed(kept, command, vehicle.id), vehicle
            try:
                result, vehicle = await self._run(vehicle, command)
            except BaseException:
                await self.store.forget_command(idempotency_key)
                raise
            record = json.dumps(encode(result))
            await self.store.replace_command(idempotency_key, record, now, now + KEEP_RESULTS)
            return result, vehicle

    async def _claim(self, key: str) -> str | None:
        """Claim the key (None), or the result kept under it, waiting while another call holds it."""
        deadline = time.monotonic() + CLAIM_WAIT.total_seconds()
        while True:
            now = self.clock.now()
            kept = await self.store.remember_command(key, CLAIMED, now, now + CLAIM_WAIT)
            if kept != CLAIMED:
                return kept
            if time.monotonic() >= deadline:
                raise Unavailable(
                    reasons.IDEMPOTENCY_KEY_IN_USE,
                    "a command with this idempotency key is still running; retry in a moment",
                    timedelta(seconds=1),
                )
            await asyncio.sleep(CLAIM_POLL_S)

    async def _run(self, vehicle: Vehicle, command: VehicleCommand) -> tuple[CommandResult, Vehicle]:
        state = LOCKING.get(command)
        if state is None:
            online(vehicle)
        else:
            vehicle, _ = await self.updates.update(vehicle.id, lambda old: _locked(online(old), state))
        now = self.clock.now()
        count = await self.store.count_command(vehicle.id, command.name)
        result = CommandResult(str(uuid.uuid4()), command, vehicle.id, count, now)
        await self.streams.publish(event_for(vehicle, CommandExecuted(result), now, current_flow_id.get()))
        return result, vehicle
