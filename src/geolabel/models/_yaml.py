"""Strict, bounded YAML for model specs.

``yaml.safe_load`` runs no code, but it silently keeps the last of two equal keys,
accepts ``.nan`` and ``.inf`` wherever a number goes, and shares aliased nodes, so a
few hundred bytes of nested aliases (a "billion laughs") become gigabytes as soon as
anything walks or serialises the result. :func:`load_yaml_mapping` refuses all three
and text that is not UTF-8, each with the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from geolabel.errors import ModelSpecError

__all__ = ["MAX_SPEC_BYTES", "MAX_SPEC_DEPTH", "MAX_SPEC_NODES", "load_yaml_mapping"]

#: A spec is a page of YAML; anything larger is refused before parsing.
MAX_SPEC_BYTES = 1 << 20
#: Values of a spec after aliases are expanded (a spec has a few hundred).
MAX_SPEC_NODES = 100_000
#: Nesting of a spec's values (a spec nests 3 or 4 levels).
MAX_SPEC_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader raises its own error for this below
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _check_values(
    p: Path, value: Any, where: str, budget: list[int], depth: int = 0
) -> None:
    """Count expanded values (aliases included) and refuse non-finite numbers."""
    if depth > MAX_SPEC_DEPTH:
        raise ModelSpecError(
            f"{p}: {where}: nested more than {MAX_SPEC_DEPTH} levels deep (an alias "
            "that contains itself?)"
        )
    budget[0] -= 1
    if budget[0] < 0:
        raise ModelSpecError(
            f"{p}: more than {MAX_SPEC_NODES} values once aliases are expanded "
            "(a YAML alias bomb?)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelSpecError(
            f"{p}: {where or 'spec'}: {value!r} is not a finite number"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _check_values(p, v, f"{where}.{k}" if where else str(k), budget, depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_values(p, v, f"{where}[{i}]", budget, depth + 1)


def load_yaml_mapping(p: Path, *, what: str = "model spec") -> dict[str, Any]:
    """Parse a YAML mapping strictly (see the module docstring).

    Raises:
        ModelSpecError: unreadable, too large, not UTF-8, not YAML, duplicate keys,
            too many aliases or values, non-finite numbers, or not a mapping; the
            message starts with the file.
    """
    try:
        data = p.read_bytes() if p.stat().st_size <= MAX_SPEC_BYTES else None
    except OSError as err:
        raise ModelSpecError(f"{p}: cannot read the {what}: {err.strerror}") from err
    if data is None:
        raise ModelSpecError(
            f"{p}: larger than {MAX_SPEC_BYTES >> 10} KiB; not a {what}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelSpecError(
            f"{p}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
            f"{err.start}); save the {what} as UTF-8"
        ) from err
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # its reader refuses control characters
        raw = loader.get_single_data()
    except yaml.YAMLError as err:
        raise ModelSpecError(
            f"{p}: not valid YAML: {' '.join(str(err).split())}"
        ) from err
    except RecursionError as err:
        raise ModelSpecError(f"{p}: YAML nested too deeply") from err
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(raw, dict):
        raise ModelSpecError(f"{p}: a {what} must be a YAML mapping")
    _check_values(p, raw, "", [MAX_SPEC_NODES])
    return raw
