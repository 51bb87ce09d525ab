"""Tests of the pytest plugin ``fleet_emulator.testing`` (the package registers it for pytest11)."""
