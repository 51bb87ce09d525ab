"""How ``serve`` logs: text lines as it always did, or one JSON object per line for log collectors.

A JSON line has ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``message``; a line logged on behalf
of a call also has the call's ``flow_id``, ``namespace`` (empty: the default one) and ``method``, read
from context variables (``CallFields``; the call scope sets ``current_method`` beside the flow id and the
namespace), and a line may add a ``code`` (``extra={"code": ...}``). An exception's traceback is the
``exc_info`` field of the same line.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.namespaces import current_namespace

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

current_method: ContextVar[str] = ContextVar("current_method", default="")  # "/package.Service/Method"


class CallFields(logging.Filter):
    """Adds the flow id, namespace and method of the call being served to a record logged inside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        method = current_method.get()
        if method:
            record.flow_id = current_flow_id.get()
            record.namespace = current_namespace.get()
            record.method = method
        return True


class JsonLines(JsonFormatter):
    """python-json-logger's formatter with the time in RFC 3339, UTC, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def handler_for(fmt: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """A handler that writes records to ``stream`` (standard error when None) in ``fmt``."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonLines(JSON_FIELDS, rename_fields=JSON_NAMES))
        handler.addFilter(CallFields())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure(level: str, fmt: LogFormat) -> None:
    """Log from ``level`` (``debug``, ``info``, ...) up to standard error in ``fmt``; like
    ``logging.basicConfig``, nothing changes when the root logger has handlers already."""
    logging.basicConfig(level=level.upper(), handlers=[handler_for(fmt)])
