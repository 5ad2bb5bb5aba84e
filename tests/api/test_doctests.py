"""The examples in the public docstrings run (API, remote sources, the Range server)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "geolabel",
    "geolabel.api._predict",
    "geolabel.api._run",
    "geolabel.io.remote",
    "geolabel.testing.range_server",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
