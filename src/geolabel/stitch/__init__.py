"""Accumulators: probability blending, seam-aware object merging, georeferencing and
vectorisation.

The modules are imported by their own names (``geolabel.stitch.blend``, ...); this file
makes ``stitch`` a regular package so the import contract (``tests/test_imports.py``)
sees it.

.. versionadded:: 0.1
"""

from __future__ import annotations

__all__: list[str] = []
