"""What the emulator tells its operators about itself: Prometheus metrics (``metrics.py``, rendered for the
console's ``/metrics``) and log lines as text or one JSON object per line with the call's flow id,
namespace and method (``logs.py``). The measured places call in here; nothing here knows gRPC or Redis.
"""
