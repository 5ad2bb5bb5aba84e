"""The ``geolabel`` command line (click)."""

from __future__ import annotations

__all__: list[str] = []
