"""Preemption: stop cleanly on SIGTERM, keep what is durable, resume later.

Batch schedulers (SLURM, PBS, Kubernetes) send SIGTERM and, some seconds later
(SLURM's ``KillWait``, 30 s by default), SIGKILL. Under :func:`preemption_guard` the
first SIGTERM only sets a flag: the executor finishes recording the batch in flight (its
store writes have returned, so it is durable), raises :class:`Preempted` before the next
one, and the CLI exits with :data:`PREEMPTED_EXIT`. A watchdog ends the process after
``grace_s`` seconds whatever it is doing: every write is idempotent and every tile is
recorded only after its data is on disk, so even a hard exit loses at most the batches
in flight. Re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = [
    "PREEMPTED_EXIT",
    "Preempted",
    "check_preempted",
    "is_preempted",
    "preemption_guard",
]

logger = logging.getLogger(__name__)

#: exit status of a preempted run (``EX_TEMPFAIL``: try again later).
PREEMPTED_EXIT = 75

_STOP = threading.Event()


class Preempted(BaseException):
    """The run was asked to stop (SIGTERM); what was recorded is kept.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that per-scene error capture
    does not swallow it and go on with the next scene.
    """


def is_preempted() -> bool:
    """True once a stop was requested."""
    return _STOP.is_set()


def check_preempted() -> None:
    """Raise :class:`Preempted` if a stop was requested.

    Raises:
        Preempted: a SIGTERM arrived under :func:`preemption_guard`.
    """
    if _STOP.is_set():
        raise Preempted("stopped on SIGTERM after recording the finished batches")


#: Called (in order, errors ignored) before a hard exit: cleanups that must not be
#: skipped even then, such as cancelling submitted cluster jobs.
EXIT_HOOKS: list[Callable[[], None]] = []


def _hard_exit(grace_s: float) -> None:
    for hook in EXIT_HOOKS:
        with contextlib.suppress(Exception):
            hook()
    msg = (
        f"geolabel: preempted: still busy {grace_s:g} s after SIGTERM; exiting now "
        "(recorded tiles are kept; re-run the same command to resume)\n"
    )
    os.write(2, msg.encode())
    os._exit(PREEMPTED_EXIT)


@contextmanager
def preemption_guard(grace_s: float = 25.0) -> Iterator[None]:
    """Turn SIGTERM into a clean stop while the block runs (main thread only).

    Args:
        grace_s: seconds after the first SIGTERM before the process exits anyway;
            a second SIGTERM exits at once.

    Executors call :func:`check_preempted` between batches; a block that finishes
    all the same returns normally.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP.clear()
    timer: list[threading.Timer] = []

    def on_term(signum: int, frame: FrameType | None) -> None:
        if _STOP.is_set():
            _hard_exit(0)
        _STOP.set()
        logger.warning(
            "SIGTERM: finishing the batch in flight, then stopping (at most %g s)",
            grace_s,
        )
        t = threading.Timer(grace_s, _hard_exit, args=(grace_s,))
        t.daemon = True
        t.start()
        timer.append(t)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        for t in timer:
            t.cancel()
        _STOP.clear()
