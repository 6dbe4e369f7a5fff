"""Generated aerial land-cover tiles with DeepGlobe's 7 classes (dataset ``synthetic_aerial``).

A tile (default 1224x1224) is cut into large irregular regions (a domain-warped Voronoi
partition) of agriculture (striped fields, one stripe direction per field), rangeland, forest
(crown-scale noise), water (smooth) and barren land, plus urban districts with a road grid and
small building footprints (a few px to tens of px, with shadows). Long roads and isolated farm
yards are urban too, as in DeepGlobe, which makes thin and small urban structures. Class 0
"unknown" is rare: a cloud in some tiles. Colours overlap between classes (rangeland, fields and
barren land share browns and greens); texture and shape tell them apart.

Class presence: region 0 of tile i takes class ``1 + i % 6``, so any six consecutive tiles hold
all six land classes; tiles with ``i % 3 == 0`` carry a cloud (class 0).
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from bench.data.deepglobe import CLASS_NAMES, PALETTE
from bench.data.synthetic_common import Canvas, Colour, SyntheticDataset, compose, finish, smooth_noise
from bench.core.data_types import DatasetInfo

UNKNOWN, URBAN, AGRICULTURE, RANGELAND, FOREST, WATER, BARREN = range(7)

INFO = DatasetInfo(
    name="synthetic_aerial",
    class_names=CLASS_NAMES,
    ignore_index=None,
    palette=PALETTE,
    excluded_from_mean=(0,),
    thin_classes=(),
)

REFERENCE_WIDTH = 1224
T_URBAN, T_FIELD, T_RANGE, T_FOREST, T_WATER, T_BARREN, T_ROOF, T_CLOUD = range(8)
# Amplitudes of the fields (grain, crowns/clumps, large blotches, field stripes) per texture.
AMPLITUDES = np.array(
    [
        [0.06, 0.10, 0.06, 0.00],  # urban ground
        [0.04, 0.03, 0.05, 0.12],  # fields
        [0.06, 0.10, 0.10, 0.00],  # rangeland
        [0.14, 0.30, 0.08, 0.00],  # forest
        [0.015, 0.00, 0.08, 0.00],  # water
        [0.04, 0.04, 0.10, 0.00],  # barren
        [0.02, 0.00, 0.00, 0.00],  # roofs, roads
        [0.01, 0.00, 0.15, 0.00],  # cloud
    ],
    np.float32,
)

_CLASS_PROBS = {URBAN: 0.16, AGRICULTURE: 0.30, RANGELAND: 0.17, FOREST: 0.17, WATER: 0.08, BARREN: 0.12}
_REGION_TEXTURE = {
    URBAN: T_URBAN, AGRICULTURE: T_FIELD, RANGELAND: T_RANGE, FOREST: T_FOREST, WATER: T_WATER, BARREN: T_BARREN,
}  # fmt: skip
_REGION_COLOURS = {
    URBAN: [(135, 128, 118), (120, 125, 110), (150, 140, 125)],
    AGRICULTURE: [(150, 160, 85), (150, 125, 85), (105, 150, 70), (175, 165, 110)],
    RANGELAND: [(140, 140, 95), (125, 130, 85), (155, 145, 110)],
    FOREST: [(45, 75, 40), (60, 90, 45), (40, 65, 45)],
    WATER: [(40, 60, 90), (50, 80, 80), (35, 50, 70)],
    BARREN: [(180, 165, 140), (165, 150, 130), (195, 185, 165)],
}
_ROOFS = [(170, 80, 60), (200, 200, 195), (90, 90, 95), (140, 140, 140), (120, 70, 55)]


class SyntheticAerial(SyntheticDataset):
    """Deterministic aerial land-cover tiles; see the module docstring.

    Args:
        root: ignored.
        split: ``train`` (32 tiles by default), ``val`` (6) or any other name (6).
        n_images: number of tiles.
        size: (w, h), default (1224, 1224).
        seed: base seed; tile i of split s depends only on (seed, s, i, size).
    """

    info: ClassVar[DatasetInfo] = INFO
    default_size: ClassVar[tuple[int, int]] = (1224, 1224)
    default_counts: ClassVar[dict[str, int]] = {"train": 32, "val": 6, "test": 6}

    def render(self, rng: np.random.Generator, width: int, height: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw one tile: ((H, W, 3) uint8 RGB, (H, W) uint8 classes 0..6)."""
        tile = _Tile(rng, width, height, index)
        stripes = tile.draw()
        s = tile.s
        fields = [
            rng.standard_normal((height, width), dtype=np.float32),
            smooth_noise(rng, (height, width), max(1.5, 3.0 * s)),
            smooth_noise(rng, (height, width), max(8.0, 80.0 * s)),
            stripes,
        ]
        image = compose(tile.canvas, AMPLITUDES, fields)
        return finish(image, rng, s), tile.canvas.label


def _jitter(rng: np.random.Generator, colour: Colour, amount: float = 10.0) -> Colour:
    return tuple(np.clip(np.asarray(colour, float) + rng.uniform(-amount, amount, 3), 0, 255))


class _Tile:
    """One tile under construction."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, index: int) -> None:
        self.rng, self.w, self.h, self.index = rng, width, height, index
        self.s = width / REFERENCE_WIDTH
        self.canvas = Canvas(width, height, RANGELAND, (0, 0, 0), T_RANGE)

    def draw(self) -> np.ndarray:
        """Draw every layer; returns the (H, W) float32 stripe field of the fields."""
        cells, classes, stripes = self.regions()
        self.urban(cells, classes)
        if self.index % 2 == 1 or self.rng.random() < 0.3:
            self.river()
        for _ in range(self.rng.integers(1, 4)):
            self.long_road()
        for _ in range(self.rng.integers(3, 10)):
            self.farmyard()
        if self.index % 3 == 0 or self.rng.random() < 0.1:
            self.cloud()
        return stripes

    def regions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Warped-Voronoi regions with per-region class, colour and stripe pattern.

        Returns:
            cells (H, W) int32 region index, classes (K,) region class, stripes (H, W) float32.
        """
        rng, w, h, c = self.rng, self.w, self.h, self.canvas
        k = int(rng.integers(8, 16))
        names = list(_CLASS_PROBS)
        probs = np.array([_CLASS_PROBS[n] for n in names])
        classes = rng.choice(names, size=k, p=probs / probs.sum())
        classes[0] = 1 + self.index % 6
        seeds = rng.uniform(-0.1, 1.1, size=(k, 2)) * (w, h)
        amp = 0.08 * w
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        xs = gx + smooth_noise(rng, (h, w), 0.15 * w) * np.float32(amp)
        ys = gy + smooth_noise(rng, (h, w), 0.15 * w) * np.float32(amp)
        best = np.full((h, w), np.inf, np.float32)
        cells = np.zeros((h, w), np.int32)
        for j, (sx, sy) in enumerate(seeds.astype(np.float32)):
            dist = (xs - sx) ** 2 + (ys - sy) ** 2
            closer = dist < best
            np.copyto(best, dist, where=closer)
            cells[closer] = j
        colours = np.array([_jitter(rng, _REGION_COLOURS[cl][rng.integers(len(_REGION_COLOURS[cl]))]) for cl in classes])
        textures = np.array([_REGION_TEXTURE[cl] for cl in classes], np.uint8)
        c.label[:] = classes.astype(np.uint8)[cells]
        c.colour[:] = np.clip(colours, 0, 255).astype(np.uint8)[cells]
        c.texture[:] = textures[cells]
        theta = rng.uniform(0, np.pi, k).astype(np.float32)
        period = (rng.uniform(4, 12, k) * max(self.s, 0.5)).astype(np.float32)
        phase = (gx * np.cos(theta)[cells] + gy * np.sin(theta)[cells]) / period[cells]
        stripes = np.sin(np.float32(2 * np.pi) * phase).astype(np.float32)
        self.theta = theta
        return cells, classes, stripes

    def urban(self, cells: np.ndarray, classes: np.ndarray) -> None:
        """Road grids and building footprints inside the urban regions (label stays urban)."""
        rng, s, c = self.rng, self.s, self.canvas
        urban_ids = np.flatnonzero(classes == URBAN)
        if urban_ids.size == 0:
            return
        road = _jitter(rng, (105, 105, 100), 8)
        colour, texture = c.colour.copy(), c.texture.copy()
        for j in urban_ids:
            inside = cells == j
            if not inside.any():
                continue
            theta = float(self.theta[j])
            spacing = rng.uniform(40, 90) * s
            width = max(1.0, rng.uniform(2, 5) * s)
            self.grid(inside, theta, spacing, width, road)
            ys, xs = np.nonzero(inside)
            n = int(min(2000, xs.size / (rng.uniform(900, 2500) * s * s)))
            for t in rng.choice(xs.size, size=n, replace=False) if n else []:
                self.building(float(xs[t]), float(ys[t]), theta, None)
        # Footprints overhanging a district's edge are cut off there: the label stays the regions'.
        outside = c.label != URBAN
        c.colour[outside] = colour[outside]
        c.texture[outside] = texture[outside]

    def grid(self, inside: np.ndarray, theta: float, spacing: float, width: float, colour: Colour) -> None:
        """Paint a rotated road grid into the colour layer where ``inside`` holds."""
        ys, xs = np.nonzero(inside)
        u = xs * np.cos(theta) + ys * np.sin(theta)
        v = -xs * np.sin(theta) + ys * np.cos(theta)
        on = ((u % spacing) < width) | ((v % spacing) < width)
        self.canvas.colour[ys[on], xs[on]] = np.asarray(colour, np.uint8)
        self.canvas.texture[ys[on], xs[on]] = T_ROOF

    def building(self, x: float, y: float, theta: float, label: int | None) -> None:
        """A rotated rectangular footprint (a few px to tens of px) with a shadow."""
        rng, s, c = self.rng, self.s, self.canvas
        bw, bh = rng.uniform(3, 28, 2) * s
        box = cv2.boxPoints(((x, y), (max(bw, 2.0), max(bh, 2.0)), float(np.degrees(theta))))
        shadow = box + np.array([2.0, 2.0]) * max(s, 0.5)
        c.poly(shadow, label, (40, 40, 38), T_ROOF)
        c.poly(box, label, _jitter(rng, _ROOFS[rng.integers(len(_ROOFS))], 12), T_ROOF)

    def polyline(self, n: int = 8) -> np.ndarray:
        """A gently curving path across the tile, (n, 2) x, y."""
        rng, w, h = self.rng, self.w, self.h
        start = rng.uniform(0, 1, 2) * (w, h)
        angle = rng.uniform(0, 2 * np.pi)
        step = 1.6 * max(w, h) / n
        pts = [start - np.array([np.cos(angle), np.sin(angle)]) * 0.8 * max(w, h)]
        for _ in range(n):
            angle += rng.normal(0, 0.25)
            pts.append(pts[-1] + step * np.array([np.cos(angle), np.sin(angle)]))
        return np.array(pts)

    def river(self) -> None:
        rng, c = self.rng, self.canvas
        pts = np.round(self.polyline()).astype(np.int32)
        width = int(max(2, rng.uniform(8, 30) * self.s))
        colour = _jitter(rng, _REGION_COLOURS[WATER][rng.integers(3)])
        for layer, value in ((c.label, WATER), (c.colour, colour), (c.texture, T_WATER)):
            cv2.polylines(layer, [pts], False, value if isinstance(value, tuple) else int(value), width)

    def long_road(self) -> None:
        """A road crossing the tile, labelled urban (DeepGlobe annotates roads as urban)."""
        rng, c = self.rng, self.canvas
        pts = np.round(self.polyline()).astype(np.int32)
        width = int(max(1, round(rng.uniform(2, 6) * self.s)))
        colour = _jitter(rng, (120, 115, 105), 12)
        for layer, value in ((c.label, URBAN), (c.colour, colour), (c.texture, T_ROOF)):
            cv2.polylines(layer, [pts], False, value if isinstance(value, tuple) else int(value), width)

    def farmyard(self) -> None:
        """An isolated small urban patch with one to three buildings."""
        rng, s, c = self.rng, self.s, self.canvas
        x, y = rng.uniform(0, self.w), rng.uniform(0, self.h)
        half = rng.uniform(6, 22) * s
        theta = rng.uniform(0, np.pi)
        yard = cv2.boxPoints(((x, y), (2 * half, 2 * half * rng.uniform(0.6, 1.0)), float(np.degrees(theta))))
        c.poly(yard, URBAN, _jitter(rng, _REGION_COLOURS[URBAN][0]), T_URBAN)
        for _ in range(rng.integers(1, 4)):
            ox, oy = rng.uniform(-0.5, 0.5, 2) * half
            self.building(x + ox, y + oy, theta, None)

    def cloud(self) -> None:
        """Class 0: a soft-edged white blob."""
        rng, c = self.rng, self.canvas
        h, w = self.h, self.w
        cx, cy, r = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h, rng.uniform(0.06, 0.18) * w
        ys, xs = np.ogrid[0:h, 0:w]
        blob = ((xs - cx) ** 2 + (ys - cy) ** 2) / r**2 + 0.35 * smooth_noise(rng, (h, w), 0.05 * w) < 1.0
        c.label[blob] = UNKNOWN
        c.colour[blob] = np.asarray(_jitter(rng, (235, 235, 232), 6), np.uint8)
        c.texture[blob] = T_CLOUD
