"""Where simulated vehicles drive: points, distances and bearings on a flat-earth approximation (accurate to
metres over a city, which is all a fleet's area spans), and street-like routes between two points. A route
is the list of waypoints still ahead; moving along a leg interpolates latitude and longitude linearly, which
on this approximation covers distance at a constant rate.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

KM_PER_DEGREE = 111.32


class Point(NamedTuple):
    latitude: float
    longitude: float


def east_north_km(a: Point, b: Point) -> tuple[float, float]:
    """How far ``b`` lies east and north of ``a``, in km."""
    middle = math.radians((a.latitude + b.latitude) / 2)
    east = (b.longitude - a.longitude) * KM_PER_DEGREE * math.cos(middle)
    return east, (b.latitude - a.latitude) * KM_PER_DEGREE


def distance_km(a: Point, b: Point) -> float:
    return math.hypot(*east_north_km(a, b))


def bearing_degrees(a: Point, b: Point) -> float:
    """The compass direction from ``a`` to ``b``: 0 is north, 90 east."""
    east, north = east_north_km(a, b)
    return math.degrees(math.atan2(east, north)) % 360


def between(a: Point, b: Point, fraction: float) -> Point:
    """The point ``fraction`` of the way from ``a`` to ``b``."""
    return Point(
        a.latitude + (b.latitude - a.latitude) * fraction,
        a.longitude + (b.longitude - a.longitude) * fraction,
    )


def point_near(rng: random.Random, center: Point, radius_km: float) -> Point:
    """A point drawn uniformly from the disc of ``radius_km`` around ``center``."""
    distance = radius_km * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    return Point(
        center.latitude + distance * math.cos(angle) / KM_PER_DEGREE,
        center.longitude
        + distance * math.sin(angle) / (KM_PER_DEGREE * math.cos(math.radians(center.latitude))),
    )


def street_route(rng: random.Random, start: Point, goal: Point) -> list[Point]:
    """The waypoints after ``start`` of a drive through a street grid to ``goal``: along one axis part of the
    way, across on the other axis, then along the first axis to the goal."""
    fraction = rng.uniform(0.2, 0.8)
    if rng.random() < 0.5:
        turn_latitude = start.latitude + (goal.latitude - start.latitude) * fraction
        corners = [Point(turn_latitude, start.longitude), Point(turn_latitude, goal.longitude)]
    else:
        turn_longitude = start.longitude + (goal.longitude - start.longitude) * fraction
        corners = [Point(start.latitude, turn_longitude), Point(goal.latitude, turn_longitude)]
    return [*corners, goal]
