"""Bad weights and fixed-size models are refused before the run folder is made."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.models.spec import builtin_spec_path

from ..conftest import requires_csmask, requires_torch

NC = builtin_spec_path("nc_landcover_unet")
SCENE = NC.parent.parent / "nc-landsat7" / "nc_landsat7_2000.tif"


def _spec_with(tmp_path: Path, weights: str, **extra: str) -> Path:
    text = NC.read_text().replace(
        "weights: nc_landcover_unet.safetensors", f"weights: {weights}"
    )
    for key, value in extra.items():
        text = text.replace(f"{key}:", f"{key}: {value}", 1)
    spec = tmp_path / "spec" / "spec.yaml"
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(text)
    return spec


def _predict(spec: Path, out: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(
        cli, ["-q", "predict", str(SCENE), "-m", str(spec), "-o", str(out), *args]
    )
    return r.exit_code, r.stderr


def _pickle_checkpoint(path: Path) -> None:
    import argparse

    import torch

    # training checkpoints often pickle their argparse options next to the tensors
    torch.save({"args": argparse.Namespace(lr=0.1), "w": torch.zeros(2)}, path)


def _plain_pt(path: Path) -> None:
    import torch

    torch.save({"not": torch.zeros(2)}, path)


@requires_torch
@pytest.mark.parametrize(
    ("name", "make", "cause"),
    [
        ("w.safetensors", lambda p: p.write_bytes(b""), "empty weights file"),
        (
            "w.safetensors",
            lambda p: p.write_bytes(NC.with_suffix(".safetensors").read_bytes()[:5000]),
            "truncated",
        ),
        (
            "w.safetensors",
            lambda p: p.write_text(
                "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"
            ),
            "Git-LFS pointer",
        ),
        ("w.safetensors", lambda p: p.write_text("<html>404</html>"), "HTML"),
        ("w.safetensors", lambda p: p.write_bytes(b"\xff" * 64), "not a safetensors"),
        ("w.pt", _pickle_checkpoint, "pickled Python objects"),
        ("w.pt", _plain_pt, "do not fit architecture"),
    ],
)
def test_bad_weights_one_line_naming_the_file(
    tmp_path: Path, name: str, make: object, cause: str
) -> None:
    spec = _spec_with(tmp_path, name)
    weights = spec.parent / name
    make(weights)  # type: ignore[operator]
    code, err = _predict(spec, tmp_path / "run")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"geolabel: error: {weights}: ") and cause in err
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_weights_path_climbing_out_of_the_spec_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    spec = _spec_with(tmp_path, "../notes.txt")
    code, err = _predict(spec, tmp_path / "run")
    assert code == 2 and "climbs out of the spec's folder" in err
    assert err.startswith(f"geolabel: error: {spec.resolve()}: ")
    assert not (tmp_path / "run").exists()


def test_fixed_size_spec_refuses_other_tile_sizes(tmp_path: Path) -> None:
    shutil.copy(NC.with_suffix(".safetensors"), tmp_path / "w.safetensors")
    spec = _spec_with(tmp_path, "../w.safetensors")
    text = spec.read_text().replace(
        "weights: ../w.safetensors", "weights: w.safetensors"
    )
    text = text.replace("  tile_size: 256\n", "  tile_size: 256\n  fixed_size: true\n")
    spec.write_text(text)
    shutil.move(tmp_path / "w.safetensors", spec.parent / "w.safetensors")
    code, err = _predict(spec, tmp_path / "run", "--tile-size", "128")
    assert code == 2 and "takes only 256 x 256 tiles" in err and "--tile-size" in err
    assert not (tmp_path / "run").exists()


@requires_csmask
def test_ukis_csmask_spec_is_fixed_size(tmp_path: Path) -> None:
    spec = Path(__file__).parents[2] / "configs" / "models" / "ukis-csmask-4b-l1c.yaml"
    code, err = _predict(
        spec, tmp_path / "run", "--tile-size", "64", "--bands", "1,2,3,4"
    )
    assert code == 2 and "takes only 256 x 256" in err and "Traceback" not in err
    # a spec that forgot fixed_size: the ONNX graph's static input is read instead
    lax = tmp_path / "lax.yaml"
    lax.write_text(
        spec.read_text().replace("  fixed_size: true", "  fixed_size: false")
    )
    code, err = _predict(
        lax, tmp_path / "run", "--tile-size", "64", "--bands", "1,2,3,4"
    )
    assert code == 2 and "takes only 256 x 256 tiles" in err, err
    assert not (tmp_path / "run").exists()
