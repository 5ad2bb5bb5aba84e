"""Generated and mutated model specs and weights files: refused in one line or loaded."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geolabel.cli.main import cli
from geolabel.errors import BackendError, ModelSpecError
from geolabel.models.preflight import preflight_model
from geolabel.models.spec import builtin_spec_path, load_spec
from geolabel.testing import toy_spec

from ..conftest import requires_torch

# Derandomized in the default suite (the same examples every run, so CI is
# deterministic); GEOLABEL_FUZZ_EXAMPLES=N makes it random with N examples for a hunt.
_HUNT = int(os.environ.get("GEOLABEL_FUZZ_EXAMPLES", "0"))
_FUZZ = settings(
    max_examples=_HUNT or 60,
    deadline=None,
    derandomize=not _HUNT,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NC = builtin_spec_path("nc_landcover_unet")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
KEYS = [
    "name",
    "version",
    "task",
    "backend",
    "weights",
    "input",
    "input.scale",
    "input.tile_size",
    "input.mean",
    "input.fixed_size",
    "classes",
    "receptive_field",
    "metrics",
    "architecture.params",
    "label_map",
]


def _refused_or_loaded(p: Path) -> None:
    t0 = time.perf_counter()
    try:
        load_spec(p)
    except ModelSpecError as err:
        assert str(err).startswith(f"{p}: "), str(err)
    assert time.perf_counter() - t0 < 2


@_FUZZ
@given(key=st.sampled_from(KEYS), value=values)
def test_generated_spec_values(tmp_path: Path, key: str, value: object) -> None:
    doc = toy_spec()
    *parents, last = key.split(".")
    node = doc
    for k in parents:
        node = node.setdefault(k, {}) if isinstance(node.get(k), dict) else node
    node[last] = value
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _refused_or_loaded(p)


@_FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_as_spec(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "s.yaml"
    p.write_bytes(data)
    _refused_or_loaded(p)


def test_mutated_real_spec(tmp_path: Path) -> None:
    lines = NC.read_text().splitlines(keepends=True)
    rng = random.Random(16)
    shutil.copy(
        NC.with_suffix(".safetensors"), tmp_path / NC.with_suffix(".safetensors").name
    )
    for i in range(80):
        new = list(lines)
        j = rng.randrange(len(new))
        kind = i % 4
        if kind == 0:
            del new[j]
        elif kind == 1:
            new.insert(rng.randrange(len(new)), new[j])  # duplicate keys
        elif kind == 2:
            new[j] = new[j].replace(":", ": .nan #", 1)
        else:
            raw = bytearray(new[j].encode())
            raw[rng.randrange(len(raw))] = rng.randrange(128, 256)
            new[j] = raw.decode("latin-1")
        p = tmp_path / "nc_landcover_unet.yaml"
        p.write_bytes("".join(new).encode("latin-1", errors="replace"))
        _refused_or_loaded(p)


@requires_torch
def test_mutated_weights(tmp_path: Path) -> None:
    """Truncations and header damage of the shipped safetensors: one error or a model."""
    original = NC.with_suffix(".safetensors").read_bytes()
    spec_path = tmp_path / "nc_landcover_unet.yaml"
    shutil.copy(NC, spec_path)
    weights = tmp_path / "nc_landcover_unet.safetensors"
    rng = random.Random(16)
    refused = 0
    for i in range(16):
        data = bytearray(original)
        if i % 2:
            data = data[: rng.randrange(0, len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(0, 2000)] = rng.randrange(256)
        weights.write_bytes(bytes(data))
        try:
            preflight_model(load_spec(spec_path))
        except (ModelSpecError, BackendError) as err:
            assert str(err).startswith(f"{weights}: "), str(err)
            assert "\n" not in str(err)
            refused += 1
    assert refused >= 8  # every truncation at least


@pytest.mark.parametrize(
    "text",
    ["name: a\nname: b\n", "input: {scale: .nan}\n", "\xff\xfe", "a: &a [*a]\n"],
)
def test_bad_spec_through_the_cli_makes_nothing(
    tmp_path: Path, text: str, scene_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_bytes(text.encode("latin-1"))
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "predict",
            str(scene_path),
            "-m",
            str(spec),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(
        f"geolabel: error: {spec}: "
    )
    assert not (tmp_path / "run").exists()


@requires_torch
@settings(
    max_examples=_HUNT or 30,
    deadline=None,
    derandomize=not _HUNT,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    suffix=st.sampled_from([".safetensors", ".pt"]),
    header=st.one_of(
        st.integers(0, 2**64 - 1).map(lambda n: n.to_bytes(8, "little")),
        st.just(b"PK\x03\x04"),
        st.just(b"\x80\x02"),
        st.binary(max_size=8),
    ),
    body=st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=5), st.integers()).map(
            lambda d: repr(d).encode()
        ),
    ),
)
def test_generated_weights_files(
    tmp_path: Path, suffix: str, header: bytes, body: bytes
) -> None:
    spec_path = tmp_path / "nc_landcover_unet.yaml"
    weights = tmp_path / f"w{suffix}"
    spec_path.write_text(
        NC.read_text().replace("nc_landcover_unet.safetensors", weights.name)
    )
    weights.write_bytes(header + body)
    t0 = time.perf_counter()
    with pytest.raises((ModelSpecError, BackendError)) as info:
        preflight_model(load_spec(spec_path))
    assert str(info.value).startswith(f"{weights}: ") and "\n" not in str(info.value)
    assert time.perf_counter() - t0 < 2
