"""Storage backends behind one protocol (``base.py``): in memory (default) and Redis Streams."""
