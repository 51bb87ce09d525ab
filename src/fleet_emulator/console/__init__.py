"""The web console: pages to look at and steer a namespace (``static/``), served over HTTP beside gRPC.

``app.py`` is the HTTP server (aiohttp, on the emulator's event loop), ``calls.py`` the bridge that turns
the pages' JSON requests into calls of the same servicer methods gRPC clients reach.
"""
