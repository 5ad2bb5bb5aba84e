"""glibc allocator tuning for CPU inference: set once, opt-out respected."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from geolabel.models._malloc import keep_freed_memory as k; print(k(), k())"


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
@pytest.mark.parametrize(
    ("env", "expected"), [("1", "True True"), ("0", "False False")]
)
def test_thresholds_are_set_once_unless_opted_out(env: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={**os.environ, "GEOLABEL_MALLOC_TUNING": env},
        check=True,
    )
    assert out.stdout.split() == expected.split()
