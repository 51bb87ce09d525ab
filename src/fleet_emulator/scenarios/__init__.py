"""Bundled scenario files; ``demo.yaml`` is what ``fleet-emulator serve`` loads when given none."""
