"""RunConfig: every setting of a run, frozen, written into run.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from geolabel.io.limits import SceneLimits
from geolabel.io.remote import is_remote

__all__ = ["RunConfig"]


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Settings of a ``predict`` run (paths are kept as given, resolved in run.json).

    Attributes:
        scenes: input rasters.
        model: model spec path.
        out: run folder.
        tile_size: model tile size in pixels (default: the spec's).
        overlap: context pixels per tile side (default: the spec's recommendation).
        dead_zone: zero-weight pixels at faded tile edges (default: receptive radius).
        batch_size: tiles per model call.
        bands: 1-based band indexes in model order (default: by name or all).
        nodata: override the scenes' nodata value.
        allow_vrt: accept VRT inputs.
        allow_pixel_space: accept inputs without a CRS.
        device: ``auto``, ``cpu``, ``cuda``.
        precision: ``fp32``, ``bf16``, ``fp16``, or ``auto`` (the fast mode if its
            argmax agrees with fp32 on the first batch, see execution/model_load.py).
        probabilities: also write the per-class probability COG.
        vectors: also write the polygon GeoPackage.
        retry_failed: re-run tiles that failed before.
        overwrite: discard an existing run folder made with other settings.
        threads: model threads (``None``: the backend's default).
        cluster: where batches run: ``local``, ``local:N``, ``tcp://HOST:PORT``,
            ``slurm:FILE.yaml`` or ``pbs:FILE.yaml`` (see geolabel.execution).
        shard: ``I/N`` to run only shard I's share of the batches (no finalize).
        uncertainty: per-pixel measure of the uncertainty COG (``entropy``, ``margin``,
            ``least-confidence`` or ``none``).
        model_uncertainty: ``none``, ``mc-dropout`` or ``tta`` (an extra stitched channel).
        mc_passes: MC-dropout passes ``T``.
        seed: seed of the MC-dropout passes.
        compress: COG compression, ``zstd`` (level 1, the default: 2-4x faster to
            write and faster to read than DEFLATE at about the same size) or
            ``deflate`` (for readers built without ZSTD: GDAL < 2.3, old ArcGIS).
            Not part of the output token: only finalize depends on it.
        limits: ``(name, value)`` overrides of the scene limits (``--limit``, see
            :class:`~geolabel.io.limits.SceneLimits`); not part of the output token.
        allow_remote: hosts (``HOST``, ``HOST:PORT``) and buckets (``s3://BUCKET``)
            remote scenes may be read from (see :mod:`geolabel.io.remote`); empty:
            URLs are refused. Not part of the output token.
        stac_resample: resample the assets of a STAC item that lie on different
            grids to the finest with this method (``None``: refuse such items).
    """

    scenes: tuple[str, ...]
    model: str
    out: str
    tile_size: int | None = None
    overlap: int | None = None
    dead_zone: int | None = None
    batch_size: int = 4
    bands: tuple[int, ...] | None = None
    nodata: float | None = None
    allow_vrt: bool = False
    allow_pixel_space: bool = False
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto"
    probabilities: bool = True
    vectors: bool = True
    retry_failed: bool = False
    overwrite: bool = False
    threads: int | None = None
    uncertainty: str = "entropy"
    model_uncertainty: str = "none"
    mc_passes: int = 8
    seed: int = 0
    compress: Literal["zstd", "deflate"] = "zstd"
    cluster: str = "local"
    shard: str | None = None
    limits: tuple[tuple[str, float], ...] = ()
    allow_remote: tuple[str, ...] = ()
    stac_resample: Literal["nearest", "bilinear", "cubic", "average", "mode"] | None = (
        None
    )
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        d = asdict(self)
        d["scenes"] = [
            s if is_remote(s) else str(Path(s).resolve()) for s in self.scenes
        ]
        d["model"] = str(Path(self.model).resolve())
        d["out"] = str(Path(self.out).resolve())
        return d

    def scene_limits(self) -> SceneLimits:
        """The scene limits of the run: the defaults with ``limits`` applied.

        Raises:
            ConfigError: an unknown limit name or a value that is not positive.
        """
        return SceneLimits.from_items(self.limits)

    def output_token(self, **resolved: Any) -> str:
        """Hash of everything that changes output bytes (not retry/overwrite/threads)."""
        keys = (
            "dead_zone",
            "batch_size",
            "bands",
            "nodata",
            "precision",
            "device",
            "model_uncertainty",
        )
        payload = {k: getattr(self, k) for k in keys} | resolved
        if self.stac_resample is not None:  # absent from older tokens
            payload["stac_resample"] = self.stac_resample
        if self.model_uncertainty == "mc-dropout":
            payload |= {"mc_passes": self.mc_passes, "seed": self.seed}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
