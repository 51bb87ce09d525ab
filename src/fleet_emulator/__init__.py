"""Local emulator of a vehicle fleet-state gRPC API (``moia.fleet.state`` v1beta4, v1 and v2).

The package is layered so that dependencies point inward: ``api`` (gRPC adapters per version) and
``backends`` (memory, Redis) both depend on ``domain`` (models, errors, pagination, the one service every
version calls), and ``server``/``cli`` wire them together. Generated protobuf code lives in ``_gen``.
"""

__version__ = "0.1.0"
