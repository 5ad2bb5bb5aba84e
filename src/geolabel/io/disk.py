"""Say why a write failed when GDAL does not (full disk, read-only, file size limit).

GDAL reports a failed block write as "An error occurred while writing a dirty block"
or "Write failed", without the operating system's reason. :func:`disk_problem` asks
the folder the run writes to: free space, then a small probe write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from geolabel.errors import describe_error

__all__ = ["disk_problem"]

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
