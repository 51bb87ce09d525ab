"""Helpers to read the google.rpc.Status details of a failed call in tests."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

M = TypeVar("M", bound=Message)
DETAILS_KEY = "grpc-status-details-bin"


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status in the error's trailers (fails the test when it is missing)."""
    trailers: Any = error.trailing_metadata() or ()  # grpc's stubs type metadata loosely
    for key, value in trailers:
        if key == DETAILS_KEY:
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no {DETAILS_KEY} trailer on {error.code()}: {error.details()}")


def details_of(status: status_pb2.Status, kind: type[M]) -> list[M]:
    """Every detail of one type, unpacked."""
    found = []
    for packed in status.details:
        if packed.Is(kind.DESCRIPTOR):
            message = kind()
            packed.Unpack(message)
            found.append(message)
    return found


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The one ErrorInfo of a failed call."""
    infos = details_of(rich_status(error), error_details_pb2.ErrorInfo)
    assert len(infos) == 1, infos
    return infos[0]
