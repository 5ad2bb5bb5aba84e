"""Make room for an output and say why a write failed when GDAL does not.

:func:`prepare_output` creates the folder of an output file (as ``predict -o`` creates
its run folder), or says in one line why it cannot. GDAL reports a failed block write
as "An error occurred while writing a dirty block" or "Write failed", and SQLite a
GeoPackage it cannot create as "sqlite3_open(...) failed", without the operating
system's reason. :func:`disk_problem` asks the folder the run writes to: free space,
then a small probe write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from geolabel.errors import describe_error

__all__ = ["disk_problem", "prepare_output"]

#: Less free space than this is a full disk.
MIN_FREE_BYTES = 1 << 20
#: Bytes the probe writes (large enough to hit a small file-size limit).
PROBE_BYTES = 1 << 20


def disk_problem(folder: Path) -> str | None:
    """Why writing into ``folder`` (or its nearest existing parent) fails, or ``None``."""
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        if shutil.disk_usage(where).free < MIN_FREE_BYTES:
            err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
            return describe_error(err)
    except OSError as err:
        return describe_error(err)
    probe = where / f".geolabel-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(bytes(PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        if err.filename is None:
            err.filename = str(where)
        return describe_error(err)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


def prepare_output(path: Path) -> Path:
    """Create the folder of the output file ``path`` (with its parents); return ``path``.

    Raises:
        NotADirectoryError: a part of the folder is a file (the message names both).
        IsADirectoryError: ``path`` itself is a folder.
        OSError: the folder cannot be created (permission, read-only file system).

    .. versionadded:: 0.1
    """
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "is a folder; give a file name for the output", str(path)
        )
    folder = path.parent
    if folder.is_dir():
        return path
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"its folder {str(part)!r} is a file", str(path)
            )
    folder.mkdir(parents=True, exist_ok=True)
    return path
