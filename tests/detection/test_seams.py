"""Objects placed exactly on tile seams and corners come out once, with their exact box."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from geolabel.errors import ConfigError
from geolabel.grid import SceneGrid, TileGrid
from geolabel.stitch.georef import boxes_to_map
from geolabel.stitch.objects import TileDetections, merge_detections
from geolabel.testing.detectors import draw_square

from ._helpers import detect_tiles

# (tile size, overlap, square side): sides up to twice the overlap, odd and even.
GRIDS = [
    (32, 8, 8),
    (32, 8, 7),
    (48, 12, 12),
    (48, 12, 17),
    (64, 16, 20),
    (40, 6, 5),
    (96, 20, 24),
]


def _placements(core: int, n: int, side: int) -> list[tuple[float, float]]:
    """Centres ``(cx, cy)`` on every seam crossing, on seams between them, and nudged off them."""
    seams = [k * core for k in range(1, n)]
    mids = [k * core + core // 2 for k in range(n - 1)]
    out = [(float(x), float(y)) for x in seams for y in seams]  # corners
    out += [(float(x), float(y)) for x in seams for y in mids]  # vertical seams
    out += [(float(x), float(y)) for x in mids for y in seams]  # horizontal seams
    out += [
        (x + d, y) for x, y in out[: n - 1] for d in (-side / 2, side / 2)
    ]  # off-centre on a corner
    return out


def _scene(
    tile: int, overlap: int, side: int
) -> tuple[TileGrid, np.ndarray, list[tuple[int, int, int, int]]]:
    core = tile - 2 * overlap
    n = 4
    size = n * core - core // 3  # the last core is partial
    grid = TileGrid(
        SceneGrid(
            (size, size + 5), Affine(0.5, 0, 300000.0, 0, -0.5, 5000000.0), "EPSG:32633"
        ),
        tile,
        overlap,
    )
    image = np.zeros((3, size, size + 5), np.float32)
    taken = np.zeros((size, size + 5), bool)
    boxes = []
    for i, (cx, cy) in enumerate(_placements(core, n, side)):
        c0, r0 = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
        if r0 < 0 or c0 < 0 or r0 + side > size or c0 + side > size + 5:
            continue
        if taken[max(r0 - 2, 0) : r0 + side + 2, max(c0 - 2, 0) : c0 + side + 2].any():
            continue  # keep objects 2 px apart, so they stay separate components
        taken[r0 : r0 + side, c0 : c0 + side] = True
        boxes.append(
            draw_square(
                image, r0, c0, side, label=i % 2, score=0.5 + 0.4 * ((i * 7) % 10) / 10
            )
        )
    return grid, image, boxes


@pytest.mark.parametrize(("tile", "overlap", "side"), GRIDS)
@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_each_seam_object_found_once_with_exact_box(
    tile: int, overlap: int, side: int, method: str
) -> None:
    grid, image, truth = _scene(tile, overlap, side)
    assert len(truth) >= 6
    objects = merge_detections(grid, detect_tiles(grid, image), method=method)  # type: ignore[arg-type]
    got = sorted(o.box for o in objects)
    assert got == sorted(tuple(float(v) for v in b) for b in truth)
    # several tiles saw the corner objects, and each object is owned by the core holding its centre
    assert max(len(o.sources) for o in objects) == 4
    core = tile - 2 * overlap
    for o in objects:
        cx, cy = (o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2
        row, col = (
            min(int(cy // core), grid.shape[0] - 1),
            min(int(cx // core), grid.shape[1] - 1),
        )
        assert o.tile_id == grid[row, col].id
        assert o.label == int(image[1, int(cy), int(cx)])
    # map boxes: exact affine of the pixel edges
    mb = boxes_to_map(grid.scene.transform, [o.box for o in objects])
    for o, (x0, y0, x1, y1) in zip(objects, mb, strict=True):
        assert x0 == 300000.0 + 0.5 * o.box[0] and x1 == 300000.0 + 0.5 * o.box[2]
        assert y1 == 5000000.0 - 0.5 * o.box[1] and y0 == 5000000.0 - 0.5 * o.box[3]


@pytest.mark.parametrize(("tile", "overlap", "side"), GRIDS[:3])
def test_without_seam_merging_there_are_duplicates(
    tile: int, overlap: int, side: int
) -> None:
    """The scenes above really do put objects in several tiles (the test can fail)."""
    grid, image, truth = _scene(tile, overlap, side)
    raw = sum(len(d.boxes) for d in detect_tiles(grid, image))
    assert raw > len(truth) + 5
    owned = merge_detections(grid, detect_tiles(grid, image), method="ownership")
    assert len(owned) >= len(
        truth
    )  # ownership alone keeps whole boxes once but may keep cut pieces


def _two_tiles() -> TileGrid:
    return TileGrid(
        SceneGrid((40, 80), Affine(1, 0, 0, 0, -1, 40), "EPSG:32633"), 48, 4
    )


def _dets(
    grid: TileGrid,
    per_tile: dict[int, list[tuple[tuple[float, float, float, float], float, int]]],
) -> list[TileDetections]:
    out = []
    for i, tile in enumerate(grid):
        items = per_tile.get(i, [])
        off = np.array([tile.read_window.col_off, tile.read_window.row_off] * 2, float)
        boxes = np.array([b for b, _, _ in items], float).reshape(-1, 4) - off
        out.append(
            TileDetections(
                tile, boxes, [s for _, s, _ in items], [c for _, _, c in items]
            )
        )
    return out


def test_classes_merge_separately_and_fuse_by_score() -> None:
    grid = _two_tiles()  # cores: cols 0..40 and 40..80
    assert grid.shape == (1, 2)
    a, b = (36.0, 10.0, 44.0, 18.0), (37.0, 10.0, 45.0, 18.0)
    dets = _dets(grid, {0: [(a, 0.9, 0), (a, 0.4, 1)], 1: [(b, 0.3, 0), (b, 0.8, 1)]})
    wbf = merge_detections(grid, dets, method="wbf")
    assert [o.label for o in wbf] == [0, 1] or sorted(o.label for o in wbf) == [0, 1]
    by = {o.label: o for o in wbf}
    assert len(wbf) == 2
    assert by[0].box[0] == pytest.approx((0.9 * 36 + 0.3 * 37) / 1.2)
    assert by[1].box[0] == pytest.approx((0.4 * 36 + 0.8 * 37) / 1.2)
    assert by[0].score == pytest.approx(0.6) and by[1].score == pytest.approx(0.6)
    assert by[0].sources == tuple(sorted(t.id for t in grid))
    nms = {o.label: o for o in merge_detections(grid, dets, method="nms")}
    assert nms[0].box == a and nms[0].score == pytest.approx(0.9)
    assert nms[1].box == b and nms[1].score == pytest.approx(0.8)


def test_distinct_objects_in_the_band_are_not_merged() -> None:
    grid = _two_tiles()
    left, right = (
        (33.0, 5.0, 39.0, 13.0),
        (40.0, 5.0, 46.0, 13.0),
    )  # centres in both contexts
    dets = _dets(
        grid,
        {0: [(left, 0.9, 0), (right, 0.7, 0)], 1: [(left, 0.8, 0), (right, 0.6, 0)]},
    )
    out = merge_detections(grid, dets)
    assert sorted(o.box for o in out) == [left, right]
    assert all(len(o.sources) == 2 for o in out)


def test_bad_options_are_refused() -> None:
    grid = _two_tiles()
    with pytest.raises(ConfigError, match="merge method"):
        merge_detections(grid, [], method="vote")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="iou_threshold"):
        merge_detections(grid, [], iou_threshold=0.0)


@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (48, 12)])
def test_instance_crossing_seams_becomes_one_polygon(tile: int, overlap: int) -> None:
    core = tile - 2 * overlap
    h, w = 3 * core, 3 * core + 3
    grid = TileGrid(
        SceneGrid((h, w), Affine(1, 0, 0, 0, -1, h), "EPSG:32633"), tile, overlap
    )
    image = np.zeros((3, h, w), np.float32)
    # an L-shaped object much larger than the overlap, across two vertical seams and a corner
    image[0, core - 3 : core + 3, 5 : w - 5] = 1.0
    image[0, core - 3 : 2 * core + 5, w - 11 : w - 5] = 1.0
    image[1] = 1.0
    image[2] = 0.75
    area = float(image[0].sum())
    for method in ("wbf", "nms"):
        objects = merge_detections(
            grid, detect_tiles(grid, image, instances=True), method=method
        )  # type: ignore[arg-type]
        assert len(objects) == 1
        geom = objects[0].geometry
        assert geom is not None and geom.geom_type == "Polygon"
        assert geom.area == area
        assert objects[0].box == (
            5.0,
            float(core - 3),
            float(w - 5),
            float(2 * core + 5),
        )
        assert len(objects[0].sources) >= 4
