"""MC dropout: seeded, only dropout layers in train mode, real U-Net architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geolabel.models.base import Batch
from geolabel.testing import make_scene, toy_spec
from tests.conftest import requires_torch

pytestmark = requires_torch

SHIPPED = Path(__file__).parents[2] / "src/geolabel/_data/models/nc_landcover_unet.yaml"


def _net(dropout: float):
    """The shipped U-Net architecture when present, else an equivalent tiny conv net."""
    import torch
    from torch import nn

    try:
        from geolabel.models.arch import UNet
    except ImportError:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(8, 3, 1),
        )
    assert torch is not None
    return UNet(3, 3, base_channels=4, depth=2, dropout=dropout)


def _unet_backend(seed: int = 0):
    import torch

    from geolabel.models.spec import ModelSpec
    from geolabel.models.torch_ import TorchBackend

    torch.manual_seed(seed)
    net = _net(0.3)
    spec = ModelSpec.model_validate(
        toy_spec(bands=3, classes=3, tile_size=32, name="unet-mc")
    )
    return TorchBackend(spec, module=net, device="cpu", threads=1)


def _batch(n: int = 2, size: int = 32) -> Batch:
    from geolabel.grid import SceneGrid, TileGrid

    grid = TileGrid(
        SceneGrid((size, size * n), (1, 0, 0, 0, -1, size), "EPSG:32633"), size, 0
    )
    data = np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32)
    return Batch(tuple(grid), data, np.ones((n, size, size), bool))


def test_same_seed_same_bytes_other_seed_other_samples() -> None:
    from geolabel.models.ensemble import MCDropoutBackend

    inner = _unet_backend()
    batch = _batch()
    a = MCDropoutBackend(inner, passes=4, seed=1).predict(batch)
    b = MCDropoutBackend(inner, passes=4, seed=1).predict(batch)
    c = MCDropoutBackend(inner, passes=4, seed=2).predict(batch)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.array, y.array) and np.array_equal(
            x.extra["uncertainty"], y.extra["uncertainty"]
        )
    assert not np.array_equal(a[0].array, c[0].array)
    assert (
        a[0].extra["uncertainty"].shape == (1, 32, 32)
        and a[0].extra["uncertainty"].max() > 0
    )
    np.testing.assert_allclose(a[0].array.sum(axis=0), 1.0, atol=1e-5)


def test_only_dropout_layers_train_and_global_rng_is_untouched() -> None:
    import torch

    from geolabel.models.ensemble import MCDropoutBackend

    inner = _unet_backend()
    seen = []
    bn = next(m for m in inner.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    drop = next(m for m in inner.module.modules() if isinstance(m, torch.nn.Dropout2d))
    hook = bn.register_forward_hook(
        lambda m, i, o: seen.append((m.training, drop.training))
    )
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    MCDropoutBackend(inner, passes=3, seed=0).predict(_batch(1))
    after = torch.rand(1)
    hook.remove()
    assert seen and all(not bn_train and drop_train for bn_train, drop_train in seen)
    assert not drop.training and not inner.module.training  # restored to eval
    assert torch.equal(before, after)


def test_model_without_dropout_is_refused() -> None:
    from geolabel.errors import BackendError
    from geolabel.models.ensemble import MCDropoutBackend
    from geolabel.models.torch_ import TorchBackend

    inner = _unet_backend()
    plain = TorchBackend(inner.spec, module=_net(0.0), device="cpu")
    with pytest.raises(BackendError, match="no dropout layer"):
        MCDropoutBackend(plain)


def mc_run(out: Path, *, seed: int) -> np.ndarray:
    """Predict a small scene with MC dropout through the pipeline; the uncertainty bands."""
    import rasterio

    from geolabel.config import RunConfig
    from geolabel.pipeline import run_predict

    scene = make_scene(
        out.parent / f"{out.name}_scene.tif",
        shape=(70, 90),
        nodata=-1.0,
        nodata_region=(slice(0, 8), slice(0, 8)),
    )
    cfg = RunConfig(
        scenes=(str(scene),),
        model="unet.yaml",
        out=str(out),
        model_uncertainty="mc-dropout",
        mc_passes=3,
        seed=seed,
        overlap=8,
        batch_size=2,
        vectors=False,
    )
    res = run_predict(cfg, model=_unet_backend())
    assert res.ok, res.scenes[0].error
    with rasterio.open(res.scenes[0].outputs["uncertainty"]) as ds:
        assert ds.descriptions == ("entropy", "bald")
        return ds.read()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped U-Net not trained yet")
def test_shipped_unet_mc_dropout_reproducible() -> None:
    from geolabel.models.ensemble import MCDropoutBackend
    from geolabel.models.registry import load_model
    from geolabel.models.spec import load_spec

    spec = load_spec(SHIPPED)
    t = spec.input.tile_size
    inner = load_model(spec, device="cpu")
    from geolabel.grid import SceneGrid, TileGrid

    grid = TileGrid(SceneGrid((t, t), (1, 0, 0, 0, -1, t), "EPSG:32633"), t, 0)
    data = (
        np.random.default_rng(0)
        .normal(size=(1, len(spec.input.bands), t, t))
        .astype(np.float32)
    )
    batch = Batch(tuple(grid), data, np.ones((1, t, t), bool))
    a = MCDropoutBackend(inner, passes=3, seed=5).predict(batch)[0]
    b = MCDropoutBackend(inner, passes=3, seed=5).predict(batch)[0]
    assert np.array_equal(a.array, b.array)
    assert np.array_equal(a.extra["uncertainty"], b.extra["uncertainty"])


def test_a_tiles_result_does_not_depend_on_its_batch() -> None:
    from geolabel.models.ensemble import MCDropoutBackend

    backend = MCDropoutBackend(_unet_backend(), passes=3, seed=4)
    both = _batch(2)
    together = backend.predict(both)
    for i in range(2):
        alone = backend.predict(
            Batch(both.tiles[i : i + 1], both.data[i : i + 1], both.valid[i : i + 1])
        )[0]
        assert np.array_equal(alone.array, together[i].array)
        assert np.array_equal(
            alone.extra["uncertainty"], together[i].extra["uncertainty"]
        )
