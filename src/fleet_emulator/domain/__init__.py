"""The emulator's domain core: models, errors, reasons, pagination, clock and the fleet-state service.

Nothing here imports grpc, redis or generated code (a ruff rule enforces it); the API adapters and the
backends translate to and from these types at their boundaries.
"""
