"""The only place that touches GDAL and files: scenes, COG/vector writers, run stores,
manifests and run records.

The modules are imported by their own names (``geolabel.io.scene``, ...); this file
makes ``io`` a regular package so the import contract (``tests/test_imports.py``) sees it.

.. versionadded:: 0.1
"""

from __future__ import annotations

__all__: list[str] = []
