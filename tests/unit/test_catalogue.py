"""The error catalogue in the README, the reasons in the code and the details actually sent agree."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from google.rpc import status_pb2

from fleet_emulator.api.errors import to_status
from fleet_emulator.domain import errors, reasons
from fleet_emulator.domain.reasons import CATALOGUE, Code, Reason, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def subclasses(cls: type[errors.EmulatorError]) -> list[type[errors.EmulatorError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]


CLASS_BY_CODE: dict[Code, type[errors.EmulatorError]] = {
    cls.code: cls for cls in subclasses(errors.EmulatorError)
}


def sample(reason: Reason) -> errors.EmulatorError:
    """An error of the reason's class with representative details."""
    cls = CLASS_BY_CODE[reason.code]
    if cls is errors.InvalidArgument:
        return errors.InvalidArgument(reason, [errors.FieldViolation("f", "bad")])
    if issubclass(cls, errors.NotFound):
        return cls(reason, "missing", resource_type="vehicle", resource_name="x")
    if cls is errors.FailedPrecondition:
        return errors.FailedPrecondition(reason, "no", [errors.PreconditionViolation("T", "s", "d")])
    if cls is errors.ResourceExhausted:
        quota = [errors.QuotaViolation("client:c", "GetVehicle: 1 per second")]
        return errors.ResourceExhausted(reason, "slow down", timedelta(seconds=1), quota)
    if cls is errors.Unavailable:
        return errors.Unavailable(reason, "down", timedelta(seconds=1))
    return cls(reason, "message")


def test_readme_catalogue_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- reasons:start -->\n(.*?)<!-- reasons:end -->", readme, re.DOTALL)
    assert block, "README.md lost its error catalogue markers"
    assert block.group(1) == markdown_table(), "run `make docs` and commit README.md"


def test_every_reason_used_in_the_source_is_catalogued() -> None:
    used = set()
    for path in (ROOT / "src" / "fleet_emulator").rglob("*.py"):
        used |= set(re.findall(r"reasons\.([A-Z][A-Z_]+)\b", path.read_text()))
    assert used, "the scan must find the reasons raised in the code"
    assert used <= set(CATALOGUE), used - set(CATALOGUE)


@pytest.mark.parametrize("reason", CATALOGUE.values(), ids=list(CATALOGUE))
def test_catalogued_details_are_the_details_sent(reason: Reason) -> None:
    status = to_status(sample(reason), "flow-1")
    trailer = dict(status.trailing_metadata)["grpc-status-details-bin"]
    sent = status_pb2.Status.FromString(trailer)
    assert sent.code == reason.code.value == status.code.value[0]
    assert [d.type_url.rsplit(".", 1)[-1] for d in sent.details] == list(reason.details)
    assert reason.name == reason.name.upper() and re.fullmatch(r"[A-Z][A-Z_]+", reason.name)


def test_a_reason_cannot_be_raised_with_another_code() -> None:
    with pytest.raises(TypeError):
        errors.OutOfRange(reasons.FLEET_NOT_FOUND, "wrong class")


def test_a_status_is_made_once_per_error_and_flow_id() -> None:
    error = errors.NotFound(reasons.VEHICLE_NOT_FOUND, "vehicle 'v' does not exist")
    first = to_status(error, "flow-1")
    assert to_status(error, "flow-1") is first, "the journal and the answer share one status"
    other = to_status(error, "flow-2")
    assert other is not first
    assert status_pb2.Status.FromString(dict(other.trailing_metadata)["grpc-status-details-bin"]) != (
        status_pb2.Status.FromString(dict(first.trailing_metadata)["grpc-status-details-bin"])
    )
