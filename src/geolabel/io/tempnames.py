"""Temporary names that are unique per process, and removal of dead processes' ones.

An output is written to ``NAME.<host>-<pid>.partial.EXT`` and renamed into place, so
two processes never write (or delete) each other's temporaries; the temporaries of
processes of this host that are gone (killed runs) are removed when the same output is
written again.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

__all__ = ["drop_dead_partials", "host_tag", "partial_path"]


def host_tag() -> str:
    """This host's name as it appears in temporary names (no dots or dashes)."""
    return socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def partial_path(path: Path, suffix: str, *, keep_suffix: bool = False) -> Path:
    """``NAME.<host>-<pid><suffix>`` beside ``path`` (``NAME`` is the stem, or the
    whole name with ``keep_suffix``)."""
    name = path.name if keep_suffix else path.stem
    return path.with_name(f"{name}.{host_tag()}-{os.getpid()}{suffix}")


def _is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def drop_dead_partials(path: Path, suffix: str, *, keep_suffix: bool = False) -> None:
    """Remove the temporaries :func:`partial_path` made for ``path`` by processes of
    this host that no longer run (other hosts' are not ours to judge)."""
    name = path.name if keep_suffix else path.stem
    prefix = f"{name}.{host_tag()}-"
    for tmp in path.parent.glob(f"{name}.*{suffix}*"):
        rest = tmp.name[len(prefix) :] if tmp.name.startswith(prefix) else ""
        pid, sep, _ = rest.partition(suffix)
        if not sep or not pid.isdigit() or int(pid) == os.getpid():
            continue
        if _is_dead(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
