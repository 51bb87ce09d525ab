"""``serve --workers N``: N processes that serve one port, the kernel spreading connections over them.

``run_workers`` starts ``target(index)`` in N worker processes (multiprocessing's spawn), each in a process
group of its own so that a terminal's Ctrl-C reaches the parent alone and every worker hears of a signal
exactly once: the parent passes each SIGTERM or SIGINT on to the workers, which stop gracefully on the first
and at once on the second, as a single ``serve`` does. When a worker ends by itself (it could not start, say),
the parent stops the others; when the parent dies without a word (SIGKILL), the kernel sends each worker
SIGTERM (Linux). The parent's exit code is the first non-zero one of its workers, or 0.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Callable
from multiprocessing import connection, get_context
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)
SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _stop_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux), so that a parent killed
    with SIGKILL leaves no worker behind; elsewhere, nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _in_own_group(target: Callable[[int], None], index: int, parent: int) -> None:
    os.setpgid(0, 0)
    _stop_with(parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # the parent blocks them while it starts workers
    target(index)


def _exit_code(process: BaseProcess) -> int:
    code = process.exitcode or 0
    return 128 - code if code < 0 else code  # ended by a signal: as a shell reports it


def run_workers(target: Callable[[int], None], count: int) -> int:
    """Run ``target`` in ``count`` worker processes until they have all ended; their exit code."""
    spawn = get_context("spawn")
    parent = os.getpid()
    workers = [
        spawn.Process(target=_in_own_group, args=(target, i, parent), name=f"worker-{i}")
        for i in range(count)
    ]

    passed: list[int] = []

    def pass_on(sig: int, frame: FrameType | None = None) -> None:
        passed.append(sig)
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, sig)

    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # no signal between two starts goes unpassed
    try:
        for worker in workers:
            worker.start()
        for sig in SIGNALS:
            signal.signal(sig, pass_on)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    log.info("started %d workers: pids %s", count, ", ".join(str(w.pid) for w in workers))
    exit_code = 0
    running = list(workers)
    while running:
        connection.wait([w.sentinel for w in running])
        for worker in [w for w in running if w.exitcode is not None]:
            running.remove(worker)
            exit_code = exit_code or _exit_code(worker)
        if running and not passed:
            log.warning("a worker ended by itself: stopping the others")
            pass_on(signal.SIGTERM)
    return exit_code
