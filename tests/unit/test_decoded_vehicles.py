"""The Redis store decodes each stored vehicle text once, and keeps a bounded number of them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from fleet_emulator.backends.redis_state import DECODED_VEHICLES, DecodedTexts
from fleet_emulator.domain.codec import encode
from fleet_emulator.domain.models import Vehicle
from fleet_emulator.domain.scenario import load_scenario

VEHICLES = load_scenario(None, datetime(2026, 11, 22, 8, 0, tzinfo=UTC)).vehicles


def test_the_same_text_gives_the_same_vehicle_and_a_new_text_a_new_one() -> None:
    decoded = DecodedTexts(Vehicle, DECODED_VEHICLES)
    vehicle = VEHICLES[0]
    text = json.dumps(encode(vehicle))
    first = decoded.of(text)
    assert first == vehicle
    assert decoded.of(str(text)) is first
    changed = dataclasses.replace(vehicle, label="changed")
    assert decoded.of(json.dumps(encode(changed))) == changed


def test_the_oldest_texts_go_first() -> None:
    decoded = DecodedTexts(Vehicle, size=2)
    texts = [json.dumps(encode(v)) for v in VEHICLES[:3]]
    first = decoded.of(texts[0])
    second = decoded.of(texts[1])
    decoded.of(texts[2])
    assert decoded.of(texts[1]) is second
    assert decoded.of(texts[0]) is not first, "dropped when the third came"
    assert decoded.of(texts[0]) == first
