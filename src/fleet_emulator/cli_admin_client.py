"""How the admin commands of the CLI reach a running emulator: connection options, calls, errors, output.

Every admin command and group takes ``--address``, ``--namespace``, ``--timeout`` and ``--admin-token``
(with their ``FLEET_EMULATOR_*`` environment variables; ``serve`` reads the same
``FLEET_EMULATOR_ADMIN_TOKEN``); a value given on a command wins over its group's, so both
``fleet-emulator fault --namespace a list`` and ``fleet-emulator fault list --namespace a`` work. ``Admin``
makes one synchronous call per command through the generated ``AdminServiceStub``, sending the namespace as
the ``x-emulator-namespace`` header and the admin token, if any, as its bearer token. A failed call becomes
a ``click.ClickException`` (exit code 1) whose message has the gRPC code, the status message and every
``google.rpc.Status`` detail on a line of its own; an emulator that cannot be reached, does not answer in
time or has no admin service gets a plain sentence.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import click
import grpc
from click.core import ParameterSource
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message
from google.rpc import (
    code_pb2,
    error_details_pb2,  # noqa: F401 (lets json_format unpack the status details)
)
from grpc_status import rpc_status

from fleet_emulator._gen.emulator.admin.v1.admin_pb2_grpc import AdminServiceStub
from fleet_emulator.cli import option
from fleet_emulator.domain.namespaces import NAMESPACE_HEADER

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

DEFAULT_ADDRESS = "localhost:50051"
CONNECTION = ("address", "namespace", "timeout", "admin_token")


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a connection option in ``ctx.meta`` (shared by a group and its command); the most explicit
    source wins (command line over environment over default), and on a tie the command over its group."""
    name = str(param.name)
    source = ctx.get_parameter_source(name) or ParameterSource.DEFAULT
    kept: tuple[ParameterSource, Any] | None = ctx.meta.get(f"{__name__}.{name}")
    if kept is None or source <= kept[0]:
        ctx.meta[f"{__name__}.{name}"] = (source, value)
    return value


def connection_options(f: F) -> F:
    """Add ``--address``, ``--namespace``, ``--timeout`` and ``--admin-token`` to a command or group."""
    f = option(
        "--admin-token",
        default="",
        show_default="none",
        expose_value=False,
        callback=_remember,
        help="The emulator's admin token, if it was started with one.",
    )(f)
    f = option(
        "--timeout",
        default=10.0,
        type=click.FloatRange(min=0, min_open=True),
        expose_value=False,
        callback=_remember,
        help="Seconds to wait for the emulator's answer.",
    )(f)
    f = option(
        "--namespace",
        default="",
        show_default="the default namespace",
        expose_value=False,
        callback=_remember,
        help="Namespace to steer (sent as the x-emulator-namespace header).",
    )(f)
    return option(
        "--address",
        default=DEFAULT_ADDRESS,
        expose_value=False,
        callback=_remember,
        help="host:port of the emulator's admin service.",
    )(f)


@dataclass(frozen=True)
class Admin:
    """The admin service of one emulator, in one namespace."""

    address: str
    namespace: str
    timeout: float
    admin_token: str = ""

    def call(
        self, rpc: Callable[[AdminServiceStub], grpc.UnaryUnaryMultiCallable[Req, Resp]], request: Req
    ) -> Resp:
        """One call (``rpc`` picks the stub's method); a ``click.ClickException`` when it fails."""
        metadata: tuple[tuple[str, str], ...] = (
            ((NAMESPACE_HEADER, self.namespace),) if self.namespace else ()
        )
        if self.admin_token:
            metadata += (("authorization", f"Bearer {self.admin_token}"),)
        with grpc.insecure_channel(self.address) as channel:
            try:
                return rpc(AdminServiceStub(channel))(request, timeout=self.timeout, metadata=metadata)
            except grpc.RpcError as error:
                # The synchronous stack raises errors that are also grpc.Call, with code and details.
                raise self._failure(cast(grpc.Call, error)) from None

    def _failure(self, call: grpc.Call) -> click.ClickException:
        code, message = call.code(), call.details()
        status = rpc_status.from_call(call)
        if status is None and code is grpc.StatusCode.UNAVAILABLE:
            return click.ClickException(f"cannot reach the emulator at {self.address}: {message}")
        if status is None and code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return click.ClickException(
                f"no answer from the emulator at {self.address} in {self.timeout:g} s"
            )
        if status is None and code is grpc.StatusCode.UNIMPLEMENTED:
            return click.ClickException(
                f"the emulator at {self.address} has no admin service there "
                "(started with --no-admin, or serving it on its own --admin-port?)"
            )
        details = [] if status is None else [line for d in status.details for line in _detail_lines(d)]
        return click.ClickException("\n  ".join([f"{code.name}: {message}", *details]))


def pass_admin(f: Callable[Concatenate[Admin, P], R]) -> Callable[P, R]:
    """Add the connection options to a command and pass it the ``Admin`` they name as first argument."""

    @functools.wraps(f)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        meta = click.get_current_context().meta
        admin = Admin(*(meta[f"{__name__}.{name}"][1] for name in CONNECTION))
        return f(admin, *args, **kwargs)

    return connection_options(run)


def _detail_lines(packed: any_pb2.Any) -> list[str]:
    """A status detail as ``Kind: key=value ...`` lines; one line per item of a list such as violations."""
    kind = packed.TypeName().rsplit(".", 1)[-1]
    try:
        fields = json_format.MessageToDict(packed, preserving_proto_field_name=True)
    except TypeError:  # a detail type this client does not know
        return [f"{kind} ({len(packed.value)} bytes)"]
    fields.pop("@type", None)
    scalars = {k: v for k, v in fields.items() if not isinstance(v, list)}
    lines = [f"{kind}: {_pairs(scalars)}"] if scalars else []
    for items in (v for v in fields.values() if isinstance(v, list)):
        lines.extend(f"{kind}: {_pairs(item) if isinstance(item, dict) else item}" for item in items)
    return lines


def _pairs(fields: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, dict):
            parts.append(_pairs(value, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) and value and not any(c.isspace() for c in value) else None
            parts.append(f"{prefix}{key}={text if text is not None else json.dumps(value)}")
    return " ".join(parts)


class StatusCode(click.ParamType[int, Any]):
    """A google.rpc.Code given by name (UNAVAILABLE, any case) or number (14)."""

    name = "code"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        try:
            return int(code_pb2.Code.Value(text.upper()))
        except ValueError:
            self.fail(f"{value!r} is not a gRPC status code such as UNAVAILABLE or 14", param, ctx)


def code_name(code: int) -> str:
    """The name of a google.rpc.Code, or its number when it has none."""
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)


def echo_json(message: Message) -> None:
    """Print a message in its proto3 JSON form, indented."""
    click.echo(json_format.MessageToJson(message, indent=2))
