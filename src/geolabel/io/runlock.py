"""One writer per run folder: an advisory lock with a clear refusal.

Two ``predict`` processes on one run folder raced on GeoPackage tables and temporary
files. :func:`run_folder_lock` holds ``OUT/.geolabel.lock`` (``flock``, released by the
kernel when the process dies, so a killed run never leaves a stale lock) and writes
who holds it; a second process is refused with "in use by PID … on HOST". Shards of
one run share the folder by design and do not take the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from geolabel.errors import RunStateError

__all__ = ["LOCK_NAME", "run_folder_lock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".geolabel.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    pid, host = info.get("pid", "?"), info.get("host", "?")
    since = info.get("since")
    when = f" since {since}" if isinstance(since, str) else ""
    return f"PID {pid} on {host}{when}"


@contextlib.contextmanager
def run_folder_lock(out: Path) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block.

    A folder that cannot be written (read-only copy of a finished run) is not
    locked: nothing can write into it, and the run fails at its first write with a
    named error.

    Raises:
        RunStateError: another process holds the lock; the message names its PID
            and host.
    """
    path = out / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            logger.debug("%s: not locked: %s", out, err)
            yield
            return
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunStateError(
                f"{out}: in use by {_holder(path)}; wait for it to finish or "
                "choose another --out"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
