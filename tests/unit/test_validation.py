"""Input checks accept exactly their documented forms: no trailing newline, no non-ASCII digits."""

from __future__ import annotations

import os
import uuid

import pytest

from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.flow import choose_flow_id, new_flow_id
from fleet_emulator.domain.message_ids import MessageId
from fleet_emulator.domain.validation import check_fleet_id


@pytest.mark.parametrize(
    "fleet_id", ["hamburg\n", "Hamburg", "-x", "a" * 64, "ham burg", "\uff48\uff41\uff4d"]
)
def test_fleet_ids_outside_the_pattern_are_violations(fleet_id: str) -> None:
    violations = Violations()
    check_fleet_id(fleet_id, violations)
    assert [v.field for v in violations.items] == ["fleet_id"]


@pytest.mark.parametrize("fleet_id", ["hamburg", "a", "fleet-7", "a" * 63])
def test_fleet_ids_in_the_pattern_pass(fleet_id: str) -> None:
    violations = Violations()
    check_fleet_id(fleet_id, violations)
    assert violations.items == []


@pytest.mark.parametrize(
    "text", ["1-0\n", "\uff11-\uff10", "\u0661-\u0660", " 1-0", "1", "1-", "-0", "1-0-0", f"{2**64}-0"]
)
def test_malformed_message_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must"):
        MessageId.parse(text)


def test_message_ids_order_like_redis_and_round_trip() -> None:
    assert MessageId.parse("1700000000000-5") == MessageId(1700000000000, 5)
    assert str(MessageId(12, 3)) == "12-3"
    assert MessageId(2, 0) > MessageId(1, 99)
    assert MessageId(5, 7).next_after(5) == MessageId(5, 8)
    assert MessageId(5, 7).next_after(4) == MessageId(5, 8)
    assert MessageId(5, 7).next_after(6) == MessageId(6, 0)


@pytest.mark.parametrize("sent", ["flow-1\n", "", "x" * 129, "naïve", "a b"])
def test_unusable_client_flow_ids_are_replaced(sent: str) -> None:
    chosen = choose_flow_id(sent)
    assert chosen != sent
    assert len(chosen) == 36


def test_new_flow_ids_are_random_version_4_uuids() -> None:
    made = [new_flow_id() for _ in range(1000)]
    assert len(set(made)) == len(made)
    for text in made[:50]:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


def test_a_forked_child_makes_other_flow_ids_than_its_parent() -> None:
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next id, to the parent, then leave without running pytest's exit
        os.write(writing, new_flow_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    with os.fdopen(reading, "rb") as pipe:
        childs = pipe.read().decode()
    assert uuid.UUID(childs).version == 4
    assert childs != new_flow_id()


def test_a_usable_client_flow_id_is_kept() -> None:
    assert choose_flow_id("order-4711:retry.2") == "order-4711:retry.2"
