"""Conversion of the admin service's own messages (fault rules, journal entries) to and from the domain."""

from __future__ import annotations

from google.protobuf import any_pb2, json_format, struct_pb2, text_format
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.rpc import status_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.api.convert import duration, timedelta_of, timestamp
from fleet_emulator.domain import faults
from fleet_emulator.domain.journal import JournalEntry


def rule_from(message: pb.Fault) -> faults.FaultRule:
    action: faults.Action
    kind = message.WhichOneof("action")
    if kind == "fail":
        fail = message.fail
        reason = fail.reason or faults.DEFAULT_FAULT_REASON
        size = sum(d.ByteSize() for d in fail.details)
        details = tuple(d.SerializeToString() for d in fail.details)
        action = faults.FailCall(fail.code, fail.message, reason, details, size)
    elif kind == "latency":
        action = faults.AddLatency(timedelta_of(message.latency.delay))
    elif kind == "break_stream":
        b = message.break_stream
        action = faults.BreakStream(b.after_messages, b.code, b.message)
    elif kind == "stall_stream":
        action = faults.StallStream(message.stall_stream.after_messages)
    elif kind == "poor_connection":
        poor = message.poor_connection
        action = faults.PoorConnection(poor.executed, poor.code or faults.DEADLINE_EXCEEDED)
    else:
        action = faults.FailCall(0, "")  # refused by check_rule: an action is required
    return faults.FaultRule(
        method=message.method,
        action=action,
        fleet_id=message.fleet_id,
        vehicle_id=message.vehicle_id,
        times=message.times,
        probability=message.probability,
        seed=message.seed,
    )


def rule_message(rule: faults.FaultRule) -> pb.Fault:
    message = pb.Fault(
        id=rule.id,
        method=rule.method,
        fleet_id=rule.fleet_id,
        vehicle_id=rule.vehicle_id,
        times=rule.times,
        probability=rule.probability,
        seed=rule.seed,
        hits=rule.hits,
    )
    action = rule.action
    if isinstance(action, faults.FailCall):
        fail = pb.FailCall(code=action.code, message=action.message, reason=action.reason)
        fail.details.extend(any_pb2.Any.FromString(d) for d in action.details)
        message.fail.CopyFrom(fail)
    elif isinstance(action, faults.AddLatency):
        message.latency.delay.CopyFrom(duration(action.delay))
    elif isinstance(action, faults.BreakStream):
        message.break_stream.CopyFrom(
            pb.BreakStream(after_messages=action.after_messages, code=action.code, message=action.message)
        )
    elif isinstance(action, faults.StallStream):
        message.stall_stream.after_messages = action.after_messages
    else:
        message.poor_connection.CopyFrom(pb.PoorConnection(executed=action.executed, code=action.code))
    return message


def journal_message(entry: JournalEntry) -> pb.JournalEntry:
    return pb.JournalEntry(
        sequence=entry.sequence,
        start_time=timestamp(entry.start_time),
        method=entry.method,
        version=entry.version,
        metadata=entry.metadata,
        request=_struct(entry.request.message if entry.request is not None else None),
        code=entry.code,
        status_message=entry.status_message,
        flow_id=entry.flow_id,
        duration=duration(entry.duration),
        peer=entry.peer,
        messages=[_struct(m.message) for m in entry.messages],
        message_count=entry.message_count,
        resumed_from=entry.resumed_from,
        finished=entry.finished,
        client=entry.client,
        reason=entry.reason,
        request_truncated=entry.request_truncated,
        request_size_bytes=entry.request_size,
        details=status_pb2.Status.FromString(entry.status_details).details,
    )


def _struct(message: Message | None) -> struct_pb2.Struct:
    """A journaled message as JSON (empty for a request whose bytes did not parse). A message that has no
    JSON form, such as one with a Timestamp out of range (refused with INVALID_ARGUMENT, but journaled),
    is given in protobuf's text format under ``text_format``."""
    result = struct_pb2.Struct()
    if message is None:
        return result
    try:
        result.update(MessageToDict(message, preserving_proto_field_name=True))
    except (json_format.Error, ValueError, TypeError):
        result.update({"text_format": text_format.MessageToString(message, as_one_line=True)})
    return result
