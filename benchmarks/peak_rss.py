"""Run a Python script in this process and write its peak RSS (VmHWM, KiB) to a file.

``ru_maxrss`` of a child is useless when the parent is large: Python starts children with
vfork/``CLONE_VM``, and at ``exec`` the kernel folds the *parent's* high-water mark into
the child's ``maxrss``. ``VmHWM`` in ``/proc/self/status`` belongs to the process's own
address space, fresh after ``exec``, so the script reports it itself at exit.

Usage: python peak_rss.py OUT.txt SCRIPT [ARGS...]
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def _write_peak(out: Path) -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            out.write_text(line.split()[1] + "\n")


def main() -> None:
    """Register the report, then run SCRIPT as ``__main__`` with ARGS."""
    out, script, *args = sys.argv[1:]
    atexit.register(_write_peak, Path(out))
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
