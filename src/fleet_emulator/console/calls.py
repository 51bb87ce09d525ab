"""The console's bridge to the emulator's own services: JSON in, the same servicer methods, JSON out.

A console action is a call of a method of the admin service or of the v2 API, made in this process: the
request, sent as proto3 JSON, is parsed into the method's request message, refused when it holds values no
field may hold (``api/wellformed.py``) as the call scope refuses them, and handed to the very servicer method
a gRPC client reaches, under the namespace and flow id the console sends and behind the same admin token
(``api/admission.py``). The answer is JSON shaped like a gRPC status: ``code`` and ``codeNumber``, then the
``response``, or the ``message``, the rich ``details`` and the ``flowId`` of the status its error maps to
(``api/errors.py``). Server streams answer one such object per message and the status last. The console's
own calls are not journaled: the journal and the client report are about the client under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from fleet_emulator.api.admission import admit_admin
from fleet_emulator.api.errors import STATUS_DETAILS, contract_error, to_status
from fleet_emulator.api.wellformed import violations_of
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import (
    EmulatorError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)
from fleet_emulator.domain.flow import FLOW_ID_HEADER, choose_flow_id, current_flow_id
from fleet_emulator.domain.journal import Kept
from fleet_emulator.domain.namespaces import DEFAULT, NAMESPACE_HEADER, Namespaces, current_namespace

assert error_details_pb2  # the detail types must be known to the JSON printer
Answer = dict[str, Any]


def as_json(response: Message | Kept) -> dict[str, Any]:
    """A message (or one a servicer sent already serialized) as proto3 JSON with the .proto's field
    names and every field shown."""
    message = response.message if isinstance(response, Kept) else response
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def ok(response: Message | Kept | None = None) -> Answer:
    answer: Answer = {"code": "OK", "codeNumber": 0}
    if response is not None:
        answer["response"] = as_json(response)
    return answer


def refused(error: EmulatorError, flow_id: str) -> Answer:
    """The status a gRPC client gets for ``error``, as JSON, its details rendered field by field."""
    status = to_status(error, flow_id)
    trailers = dict(status.trailing_metadata)
    rich = status_pb2.Status.FromString(trailers[STATUS_DETAILS])
    return {
        "code": status.code.name,
        "codeNumber": status.code.value[0],
        "message": rich.message,
        "details": [json_format.MessageToDict(d, preserving_proto_field_name=True) for d in rich.details],
        "flowId": flow_id,
    }


class ConsoleContext:
    """What a servicer method reads of its gRPC context: the caller's headers and peer."""

    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        self.headers = headers

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.headers

    def peer(self) -> str:
        return "console"


@dataclass(frozen=True)
class Method:
    """One method of a service, as the console calls it."""

    request: type[Message]
    run: Callable[[Message, ConsoleContext], Any]
    streaming: bool
    steers: bool  # a method of the admin service


def methods_of(servicer: object, service: ServiceDescriptor, steers: bool) -> dict[str, Method]:
    return {
        m.name: Method(
            message_factory.GetMessageClass(m.input_type),
            getattr(servicer, m.name),
            m.server_streaming,
            steers,
        )
        for m in service.methods
    }


@dataclass(frozen=True)
class Bridge:
    """Calls the methods of ``services`` (by short service name, then method name) for the console."""

    services: Mapping[str, Mapping[str, Method]]
    namespaces: Namespaces
    admin_token: str
    admin_on: bool

    def method(self, service: str, name: str) -> Method | None:
        return self.services.get(service, {}).get(name)

    def _begin(
        self, method: Method, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Message, ConsoleContext]:
        """Settle flow id and namespace, admit the caller and parse the request; ``EmulatorError`` if
        any of it refuses the call."""
        sent = {k.lower(): v for k, v in headers.items()}
        current_flow_id.set(choose_flow_id(sent.get(FLOW_ID_HEADER)))
        current_namespace.set(sent.get(NAMESPACE_HEADER) or DEFAULT)
        context = ConsoleContext(tuple(sent.items()))
        admit_admin(context.invocation_metadata(), self.admin_token)
        if method.steers and not self.admin_on:
            raise PermissionDenied(
                reasons.ADMIN_SERVICE_OFF,
                "the emulator runs with --no-admin: the console cannot steer it",
                resource_type="service",
                resource_name="emulator.admin.v1.AdminService",
            )
        request = _parsed(method.request, body)
        if problems := violations_of(request):
            raise InvalidArgument(reasons.FIELD_INVALID, problems)
        return request, context

    async def call(self, method: Method, body: bytes, headers: Mapping[str, str]) -> Answer:
        try:
            request, context = self._begin(method, body, headers)
            return ok(await method.run(request, context))
        except Exception as error:
            return _failed(error)

    async def stream(
        self, method: Method, body: bytes, headers: Mapping[str, str]
    ) -> AsyncGenerator[Answer, None]:
        """Each message as ``{"message": ...}``, then ``{"status": ...}``. The stream counts as one of its
        namespace's open streams: deleting the namespace or stopping the emulator ends it with that error."""
        task = asyncio.current_task()
        assert task is not None
        try:
            request, context = self._begin(method, body, headers)
            namespace = await self.namespaces.current()
        except Exception as error:
            yield {"status": _failed(error)}
            return
        namespace.enter(task, streaming=True)
        try:
            async for message in method.run(request, context):
                yield {"message": as_json(message)}
            yield {"status": ok()}
        except asyncio.CancelledError:
            if namespace.cut_off is None or not task.cancelling():
                raise
            task.uncancel()
            yield {"status": _failed(namespace.cut_off)}
        except Exception as error:
            yield {"status": _failed(error)}
        finally:
            namespace.leave(task)


def _parsed(request_type: type[Message], body: bytes) -> Message:
    request = request_type()
    try:
        json_format.Parse(body or b"{}", request)
    except (json_format.ParseError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(
            reasons.REQUEST_MALFORMED, [FieldViolation("request", f"is not the request as JSON: {exc}")]
        ) from None
    return request


def _failed(error: Exception) -> Answer:
    return refused(contract_error(error), current_flow_id.get())
