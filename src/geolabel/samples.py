"""Real sample data shipped with geolabel (see ``_data/*/PROVENANCE.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["sample_path"]


def sample_path(name: str) -> Path:
    """Path of a shipped sample file, e.g. ``"nc-landsat7/nc_landsat7_2000.tif"``.

    Raises:
        FileNotFoundError: no such sample.
    """
    p = Path(str(resources.files("geolabel").joinpath("_data", name)))
    if not p.exists():
        raise FileNotFoundError(f"no shipped sample {name!r} (looked at {p})")
    return p
