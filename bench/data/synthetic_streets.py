"""Generated street scenes with the 19 Cityscapes classes (dataset ``synthetic``).

Each sample is a perspective street drawn at its final size (default 2048x1024): sky, a skyline
of buildings with window grids, trees, terrain, sidewalks, a road with lane markings, walls and
fences, cars/trucks/buses/trams, and thin or small objects (poles 2-6 px wide at 2048 px width,
traffic signs and lights, persons, riders, bicycles, motorcycles). Object sizes scale with the
image width and with the depth at which they stand. Classes share colours (grey poles, grey
buildings, grey road, overcast grey sky) and differ by texture, shape and context; per-image
illumination, blur and sensor noise are added. The ground truth downsampled 8x (nearest) and
upsampled back loses most pole/sign/light pixels while large classes survive
(``tests/test_synthetic.py`` checks this).

Class presence: the seven thin classes appear in every image; road, sidewalk, building, wall,
fence, vegetation, terrain, sky and car in every image; truck in every even index, bus in every
odd index, train in every index divisible by 3 (and each also at random elsewhere), so any six
consecutive indices cover all 19 classes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ClassVar

import numpy as np

from bench.data.cityscapes import CLASS_NAMES, PALETTE, THIN_CLASSES
from bench.data.synthetic_common import Canvas, Colour, SyntheticDataset, compose, finish, smooth_noise
from bench.core.data_types import DatasetInfo

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)  # fmt: skip

INFO = DatasetInfo(
    name="synthetic",
    class_names=CLASS_NAMES,
    ignore_index=255,
    palette=PALETTE,
    excluded_from_mean=(),
    thin_classes=THIN_CLASSES,
)

# Texture ids and their noise amplitudes (relative brightness) for the fields
# (per-pixel grain, small clumps, large blotches).
T_FLAT, T_SKY, T_ASPHALT, T_PAVING, T_FACADE, T_LEAF, T_GRASS, T_METAL, T_CLOTH = range(9)
AMPLITUDES = np.array(
    [
        [0.015, 0.01, 0.02],  # flat paint
        [0.004, 0.00, 0.10],  # sky: clouds
        [0.10, 0.03, 0.06],  # asphalt grain
        [0.05, 0.06, 0.05],  # paving / concrete
        [0.025, 0.02, 0.08],  # facade
        [0.16, 0.28, 0.08],  # leaves
        [0.14, 0.06, 0.12],  # grass / soil
        [0.01, 0.00, 0.02],  # metal
        [0.03, 0.02, 0.00],  # cloth
    ],
    np.float32,
)

REFERENCE_WIDTH = 2048

_GREYS = [(g, g, g + 4) for g in (85, 100, 115, 130, 145, 160, 175)]
_BUILDING_COLOURS = _GREYS + [(185, 172, 140), (150, 85, 65), (200, 198, 190), (120, 110, 95), (170, 150, 120)]
_VEHICLE_COLOURS = [
    (170, 25, 25), (25, 45, 140), (225, 225, 225), (25, 25, 28), (140, 140, 145), (60, 90, 60), (190, 160, 40),
]  # fmt: skip
_CLOTHES = [(30, 30, 35), (200, 30, 40), (40, 60, 150), (230, 230, 225), (90, 70, 50), (60, 120, 60), (220, 180, 40)]
_SKIN = [(230, 190, 160), (190, 140, 100), (120, 80, 55)]


class SyntheticStreets(SyntheticDataset):
    """Deterministic street scenes; see the module docstring.

    Args:
        root: ignored.
        split: ``train`` (48 images by default), ``val`` (6), ``test`` (6) or any other name (6).
        n_images: number of images.
        size: (w, h), default (2048, 1024).
        seed: base seed; sample i of split s depends only on (seed, s, i, size).
    """

    info: ClassVar[DatasetInfo] = INFO
    default_size: ClassVar[tuple[int, int]] = (2048, 1024)
    default_counts: ClassVar[dict[str, int]] = {"train": 48, "val": 6, "test": 6}

    def render(self, rng: np.random.Generator, width: int, height: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw one street scene: ((H, W, 3) uint8 RGB, (H, W) uint8 train ids)."""
        scene = _Street(rng, width, height, index)
        scene.draw()
        s = scene.s
        fields = [
            rng.standard_normal((height, width), dtype=np.float32),
            smooth_noise(rng, (height, width), max(1.5, 4.0 * s)),
            smooth_noise(rng, (height, width), max(8.0, 90.0 * s)),
        ]
        image = compose(scene.canvas, AMPLITUDES, fields)
        shade = 1.0 - 0.12 * np.clip(smooth_noise(rng, (height, width), max(8.0, 300.0 * s)), 0.0, 2.0)
        return finish(image, rng, s, shade), scene.canvas.label


def _jitter(rng: np.random.Generator, colour: Colour, amount: float = 12.0) -> Colour:
    r, g, b = np.clip(np.asarray(colour, float) + rng.uniform(-amount, amount, 3), 0, 255)
    return float(r), float(g), float(b)


def _scaled(colour: Colour, factor: float) -> Colour:
    r, g, b = (float(np.clip(c * factor, 0, 255)) for c in colour)
    return r, g, b


class _Street:
    """One scene under construction. Depth ``d`` runs from 0 (horizon) to 1 (bottom row)."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, index: int) -> None:
        self.rng, self.w, self.h, self.index = rng, width, height, index
        self.s = width / REFERENCE_WIDTH
        self.yh = height * rng.uniform(0.40, 0.50)
        xv = width * rng.uniform(0.35, 0.65)
        half_top = width * rng.uniform(0.01, 0.025)
        self.road_l = (xv - half_top, width * rng.uniform(-0.25, 0.12))  # (x at d=0, x at d=1)
        self.road_r = (xv + half_top, width * rng.uniform(0.88, 1.25))
        self.walk_l = (self.road_l[0] - width * rng.uniform(0.01, 0.03), self.road_l[1] - width * rng.uniform(0.2, 0.5))
        self.walk_r = (self.road_r[0] + width * rng.uniform(0.01, 0.03), self.road_r[1] + width * rng.uniform(0.2, 0.5))
        self.canvas = Canvas(width, height, SKY, (0, 0, 0), T_SKY)
        self.items: list[tuple[float, tuple[int, ...], Callable[[], None]]] = []  # drawn far to near

    # geometry ---------------------------------------------------------------------------------
    def y(self, d: float) -> float:
        """Image row of ground depth d."""
        return self.yh + (self.h - self.yh) * d

    @staticmethod
    def x(line: tuple[float, float], d: float) -> float:
        """Column of a ground line at depth d."""
        return line[0] + (line[1] - line[0]) * d

    def across(self, a: tuple[float, float], b: tuple[float, float], d: float, u: float) -> float:
        """Column at fraction u from line a to line b at depth d."""
        return self.x(a, d) + (self.x(b, d) - self.x(a, d)) * u

    def band(self, a: tuple[float, float], b: tuple[float, float], d0: float, d1: float, u0: float, u1: float) -> np.ndarray:
        """Ground quad between fractions u0..u1 of lines a..b and depths d0..d1, (4, 2) x, y."""
        return np.array(
            [
                (self.across(a, b, d0, u0), self.y(d0)),
                (self.across(a, b, d0, u1), self.y(d0)),
                (self.across(a, b, d1, u1), self.y(d1)),
                (self.across(a, b, d1, u0), self.y(d1)),
            ]
        )

    # scene ------------------------------------------------------------------------------------
    def draw(self) -> None:
        """Static layers, then every standing object from far to near."""
        self.sky()
        self.ground()
        self.buildings()
        self.sidewalks()
        self.road()
        self.plan_objects()
        items = sorted(self.items, key=lambda t: t[0])
        for _, _, draw in items:
            draw()
        # A guaranteed object hidden behind nearer ones is drawn once more on top (rare).
        present = np.bincount(self.canvas.label.ravel(), minlength=256) > 0
        for _, must_show, draw in items:
            if any(not present[k] for k in must_show):
                draw()
                present = np.bincount(self.canvas.label.ravel(), minlength=256) > 0

    def sky(self) -> None:
        rng, c = self.rng, self.canvas
        kind = rng.integers(3)
        skies = [((60, 110, 190), (165, 195, 230)), ((150, 152, 158), (205, 205, 208)), ((90, 100, 150), (230, 180, 150))]
        top, bottom = skies[kind]  # clear, overcast (as grey as the buildings), dusk
        rows = int(np.ceil(self.yh)) + 1
        t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
        grad = np.asarray(_jitter(rng, top), np.float32) * (1 - t) + np.asarray(_jitter(rng, bottom), np.float32) * t
        c.colour[:rows] = np.clip(grad, 0, 255).astype(np.uint8)[:, None, :]

    def ground(self) -> None:
        rng, c = self.rng, self.canvas
        colour = _jitter(rng, [(95, 130, 60), (140, 130, 90), (120, 100, 80), (110, 140, 75)][rng.integers(4)])
        y0 = int(self.yh)
        c.label[y0:] = TERRAIN
        c.colour[y0:] = np.asarray(colour, np.uint8)
        c.texture[y0:] = T_GRASS

    def buildings(self) -> None:
        rng, w, h = self.rng, self.w, self.h
        x = -w * rng.uniform(0.0, 0.1)
        while x < w:
            bw = w * rng.uniform(0.07, 0.22)
            if rng.random() < 0.12:  # a gap shows the sky down to the horizon
                x += 0.5 * bw
                continue
            top = h * rng.uniform(0.03, 0.35)
            top = min(top, self.yh - 0.06 * h)
            bottom = self.yh + h * rng.uniform(0.005, 0.03)
            colour = _jitter(rng, _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))])
            self.canvas.rect(x, top, x + bw, bottom, BUILDING, colour, T_FACADE)
            self.windows(x, top, x + bw, bottom, colour)
            x += bw

    def windows(self, x0: float, y0: float, x1: float, y1: float, colour: Colour) -> None:
        """A grid of windows drawn into the colour layer only (the label stays building)."""
        rng, s, c = self.rng, self.s, self.canvas
        ww, wh = rng.uniform(8, 26) * s, rng.uniform(12, 34) * s
        px, py = ww + rng.uniform(6, 28) * s, wh + rng.uniform(8, 28) * s
        xa, xb = int(max(x0 + px * 0.5, 0)), int(min(x1 - px * 0.3, self.w))
        ya, yb = int(max(y0 + py * 0.4, 0)), int(min(y1 - py * 0.8, self.h))
        if xb - xa < 2 or yb - ya < 2:
            return
        cols = ((np.arange(xa, xb) - xa) % px) < ww
        rows = ((np.arange(ya, yb) - ya) % py) < wh
        tint = _scaled(colour, rng.uniform(0.25, 0.55)) if rng.random() < 0.7 else _jitter(rng, (120, 150, 180), 20)
        patch = c.colour[ya:yb, xa:xb]
        patch[rows[:, None] & cols[None, :]] = np.asarray(tint, np.uint8)

    def sidewalks(self) -> None:
        rng, c = self.rng, self.canvas
        colour = _jitter(rng, [(150, 150, 150), (175, 170, 165), (160, 120, 110), (125, 125, 130)][rng.integers(4)])
        for outer, inner in ((self.walk_l, self.road_l), (self.walk_r, self.road_r)):
            c.poly(self.band(outer, inner, 0.0, 1.0, 0.0, 1.0), SIDEWALK, colour, T_PAVING)
            kerb = self.band(outer, inner, 0.0, 1.0, 0.93, 1.0)
            c.poly(kerb, None, _scaled(colour, 1.15), None)
        joint = _scaled(colour, 0.7)
        for d in self.world_steps(1.0, 60.0, 1.2):
            for outer, inner in ((self.walk_l, self.road_l), (self.walk_r, self.road_r)):
                c.line(self.x(outer, d), self.y(d), self.x(inner, d), self.y(d), 1, None, joint, None)

    def world_steps(self, z0: float, z1: float, step: float) -> np.ndarray:
        """Depths d = 1/z of equally spaced ground distances z (perspective spacing)."""
        return 1.0 / np.arange(z0, z1, step)

    def road(self) -> None:
        rng, c = self.rng, self.canvas
        asphalt = _jitter(rng, _GREYS[rng.integers(4)], 8)
        c.poly(self.band(self.road_l, self.road_r, 0.0, 1.0, 0.0, 1.0), ROAD, asphalt, T_ASPHALT)
        paint = (225, 225, 220) if rng.random() < 0.8 else (220, 190, 60)
        for z in np.arange(1.0, 40.0, 3.0):
            d0, d1 = 1.0 / (z + 1.5), 1.0 / z
            half = 0.006 * (d0 + d1) / 2
            c.poly(self.band(self.road_l, self.road_r, d0, d1, 0.5 - half, 0.5 + half), None, paint, None)
        for u in (0.03, 0.97):
            c.poly(self.band(self.road_l, self.road_r, 0.0, 1.0, u - 0.004, u + 0.004), None, paint, None)
        if rng.random() < 0.35:  # zebra crossing
            dz = rng.uniform(0.3, 0.6)
            for u in np.arange(0.05, 0.95, 0.08):
                c.poly(self.band(self.road_l, self.road_r, dz, dz + 0.06, u, u + 0.04), None, paint, None)

    # standing objects -------------------------------------------------------------------------
    def plan_objects(self) -> None:
        """Queue every standing object with its depth and the classes it must leave visible."""
        rng, i = self.rng, self.index
        add = self.add
        for _ in range(rng.integers(3, 8)):
            d = rng.uniform(0.02, 0.35)
            add(d, (), partial(self.tree, d))
        for kind in (WALL, FENCE, VEGETATION):
            for j in range(rng.integers(1, 3) if kind != VEGETATION else rng.integers(0, 2)):
                d0 = rng.uniform(0.02, 0.5)
                d1 = min(1.0, d0 + rng.uniform(0.05, 0.3))
                must: tuple[int, ...] = (kind,) if j == 0 and kind != VEGETATION else ()
                add(d1, must, partial(self.barrier, kind, d0, d1))
        for j in range(rng.integers(4, 9)):
            d = rng.uniform(0.1, 0.9)
            sign, light = j == 0 or rng.random() < 0.45, j == 1 or rng.random() < 0.35
            must = (POLE, SIGN) if j == 0 else (POLE, LIGHT) if j == 1 else ()
            add(d, must, partial(self.pole, d, sign=sign, light=light))
        for j in range(rng.integers(3, 10)):
            d = rng.uniform(0.08, 0.85)
            on_road = rng.random() < 0.15
            add(d, (PERSON,) if j == 0 else (), partial(self.pedestrian, d, on_road))
        first = BICYCLE if i % 2 == 0 else MOTORCYCLE
        riders = [first] + [BICYCLE if rng.random() < 0.5 else MOTORCYCLE for _ in range(rng.integers(0, 3))]
        for j, vehicle in enumerate(riders):
            d = rng.uniform(0.1, 0.8)
            add(d, (RIDER, vehicle) if j == 0 else (), partial(self.two_wheeler, d, vehicle, ridden=True))
        parked = [MOTORCYCLE if first == BICYCLE else BICYCLE] + [BICYCLE] * int(rng.integers(0, 3))
        for j, vehicle in enumerate(parked):
            d = rng.uniform(0.1, 0.8)
            add(d, (vehicle,) if j == 0 else (), partial(self.two_wheeler, d, vehicle, ridden=False))
        vehicles = [CAR] * int(rng.integers(2, 8))
        vehicles += [TRUCK] if i % 2 == 0 or rng.random() < 0.25 else []
        vehicles += [BUS] if i % 2 == 1 or rng.random() < 0.25 else []
        vehicles += [TRAIN] if i % 3 == 0 or rng.random() < 0.1 else []
        for j, v in enumerate(vehicles):
            d = rng.uniform(0.08, 0.6) if v == CAR else rng.uniform(0.1, 0.4)
            add(d, (v,) if v != CAR or j == 0 else (), partial(self.vehicle, d, v))

    def add(self, depth: float, must_show: tuple[int, ...], draw: Callable[[], None]) -> None:
        """Queue an object; ``must_show`` lists classes it is there to guarantee."""
        self.items.append((depth, must_show, draw))

    def side_point(self, d: float, u_range: tuple[float, float]) -> float:
        """Column on a random sidewalk at depth d, u from its outer edge (0) to the kerb (1).

        The other sidewalk is tried when the point falls outside the image; the column is then
        clamped into the image so every planned object is visible.
        """
        u = self.rng.uniform(*u_range)
        sides = [(self.walk_l, self.road_l), (self.walk_r, self.road_r)]
        if self.rng.random() < 0.5:
            sides.reverse()
        for outer, inner in sides:
            x = self.across(outer, inner, d, u)
            if 0.01 * self.w <= x <= 0.99 * self.w:
                return x
        return self.clamp_x(x)

    def clamp_x(self, x: float) -> float:
        return float(np.clip(x, 0.02 * self.w, 0.98 * self.w))

    def visible_depth(self, line: tuple[float, float]) -> float:
        """Largest depth (<= 1) up to which a ground line stays inside the image columns."""
        a, b = line
        if 0 <= b <= self.w:
            return 1.0
        edge = 0.0 if b < 0 else float(self.w)
        return float(np.clip((edge - a) / (b - a), 0.0, 1.0)) if b != a else 1.0

    def tree(self, d: float) -> None:
        rng, c, h = self.rng, self.canvas, self.h
        x, yb = self.side_point(d, (-0.3, 0.3)), self.y(d)
        r = h * (0.04 + 0.25 * d) * rng.uniform(0.7, 1.2)
        green = _jitter(rng, [(60, 105, 40), (85, 125, 45), (45, 80, 35), (120, 130, 50)][rng.integers(4)], 10)
        trunk = _jitter(rng, (80, 65, 50), 10)
        c.rect(x - 0.08 * r, yb - 1.3 * r, x + 0.08 * r, yb, VEGETATION, trunk, T_FACADE)
        cy = yb - 1.3 * r - 0.5 * r
        for _ in range(rng.integers(5, 10)):
            ox, oy = rng.uniform(-0.6, 0.6, 2) * r
            c.circle(x + ox, cy + oy, r * rng.uniform(0.4, 0.7), VEGETATION, _jitter(rng, green, 8), T_LEAF)

    def barrier(self, kind: int, d0: float, d1: float) -> None:
        """Wall, fence or hedge standing along a sidewalk's outer edge between depths d0..d1."""
        rng, c = self.rng, self.canvas
        sides = [(self.walk_l, self.road_l), (self.walk_r, self.road_r)]
        if rng.random() < 0.5:
            sides.reverse()
        # Stand on the outer sidewalk edge, or further in where that edge leaves the image early.
        candidates = [(o[0] + (i[0] - o[0]) * u, o[1] + (i[1] - o[1]) * u) for u in (0.0, 0.3, 0.6) for o, i in sides]
        outer = next((ln for ln in candidates if self.visible_depth(ln) >= 0.3), candidates[-1])
        limit = self.visible_depth(outer)
        d1 = min(d1, limit)
        d0 = min(d0, 0.5 * d1)
        height = self.h * rng.uniform(0.10, 0.25)
        ds = np.linspace(d0, d1, 8)
        bottom = [(self.x(outer, d), self.y(d)) for d in ds]
        top = [(x, y - height * d) for (x, y), d in zip(bottom, ds)]
        poly = np.array(bottom + top[::-1])
        if kind == WALL:
            colour = _jitter(rng, [(150, 150, 145), (180, 170, 150), (120, 115, 110), (160, 120, 100)][rng.integers(4)])
            c.poly(poly, WALL, colour, T_PAVING)
            for t in (0.33, 0.66):  # block courses
                (x0, y0), (x1, y1) = self._lerp(bottom[0], top[0], t), self._lerp(bottom[-1], top[-1], t)
                c.line(x0, y0, x1, y1, 1, None, _scaled(colour, 0.8), None)
        elif kind == FENCE:
            colour = _jitter(rng, [(140, 110, 80), (150, 150, 150), (60, 90, 60), (170, 160, 150)][rng.integers(4)])
            c.poly(poly, FENCE, _scaled(colour, 0.55), T_METAL)
            for d in np.linspace(d0, d1, max(3, int(40 * (d1 - d0) / max(d0, 0.05)))):
                xb, yb = self.x(outer, d), self.y(d)
                c.line(xb, yb, xb, yb - height * d, max(1.0, 3 * self.s * d * 2), None, colour, None)
            for t in (0.15, 0.85):
                (x0, y0), (x1, y1) = self._lerp(bottom[0], top[0], t), self._lerp(bottom[-1], top[-1], t)
                c.line(x0, y0, x1, y1, max(1.0, 4 * self.s), None, colour, None)
        else:
            c.poly(poly, VEGETATION, _jitter(rng, (55, 100, 40), 10), T_LEAF)

    @staticmethod
    def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
        return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t

    def pole(self, d: float, sign: bool, light: bool) -> None:
        """A pole 2-6 px wide (at 2048 px width), optionally with a sign, a light, an arm."""
        rng, c, s = self.rng, self.canvas, self.s
        x, yb = self.side_point(d, (0.6, 0.92)), self.y(d)
        pw = max(1.0, round((2 + 4 * d) * s))
        top = yb - self.h * (0.22 + 0.45 * d) * rng.uniform(0.85, 1.1)
        grey = _jitter(rng, [(150, 150, 150), (110, 110, 112), (60, 75, 60), (40, 40, 42)][rng.integers(4)], 8)
        c.rect(x - pw / 2, top, x + pw / 2 - 1, yb, POLE, grey, T_METAL)
        toward_road = 1.0 if x < self.across(self.road_l, self.road_r, d, 0.5) else -1.0
        if sign:
            size = (8 + 16 * d) * s * rng.uniform(0.85, 1.15)
            self.traffic_sign(x, top + rng.uniform(0.15, 0.45) * (yb - top), max(3.0, size))
        if light:
            lw = max(2.0, (5 + 6 * d) * s)
            lh = 2.7 * lw
            lx, ly = x + toward_road * (pw / 2 + lw / 2), top + 0.1 * (yb - top)
            if rng.random() < 0.5:  # on an arm over the road
                arm = self.w * rng.uniform(0.04, 0.12) * d
                c.rect(min(x, x + toward_road * arm), top, max(x, x + toward_road * arm), top + pw - 1, POLE, grey, T_METAL)
                lx, ly = x + toward_road * arm, top + pw
            self.traffic_light(lx, ly, lw, lh)
        if not light and rng.random() < 0.3:  # street lamp head
            c.rect(x, top, x + toward_road * 30 * s * d, top + pw - 1, POLE, grey, T_METAL)

    def traffic_light(self, x: float, y: float, lw: float, lh: float) -> None:
        rng, c = self.rng, self.canvas
        c.rect(x - lw / 2, y, x + lw / 2, y + lh, LIGHT, _jitter(rng, (35, 35, 38), 6), T_METAL)
        lit = rng.integers(3)
        lamps = [(255, 45, 35), (255, 190, 20), (40, 240, 120)]
        for k in range(3):
            colour = lamps[k] if k == lit else (55, 55, 55)
            c.circle(x, y + lh * (0.18 + 0.32 * k), max(1.0, 0.3 * lw), None, colour, None)

    def traffic_sign(self, x: float, y: float, size: float) -> None:
        rng, c = self.rng, self.canvas
        kind = rng.integers(4)
        r = size / 2
        if kind == 0:  # prohibition: red ring, white face
            c.circle(x, y, r, SIGN, (200, 30, 30), T_FLAT)
            c.circle(x, y, 0.7 * r, None, (235, 235, 235), None)
        elif kind == 1:  # warning triangle
            tri = np.array([(x, y - r), (x + r, y + 0.8 * r), (x - r, y + 0.8 * r)])
            c.poly(tri, SIGN, (210, 30, 30), T_FLAT)
            c.poly((tri - (x, y)) * 0.6 + (x, y + 0.1 * r), None, (235, 235, 225), None)
        elif kind == 2:  # blue information plate
            c.rect(x - r, y - 0.7 * r, x + r, y + 0.7 * r, SIGN, (30, 70, 170), T_FLAT)
        else:  # priority diamond
            c.poly(np.array([(x, y - r), (x + r, y), (x, y + r), (x - r, y)]), SIGN, (230, 200, 30), T_FLAT)

    def person_height(self, d: float) -> float:
        return self.h * (0.025 + 0.11 * d) * self.rng.uniform(0.85, 1.15)

    def pedestrian(self, d: float, on_road: bool) -> None:
        if on_road:
            x = self.clamp_x(self.across(self.road_l, self.road_r, d, self.rng.uniform(0.1, 0.9)))
        else:
            x = self.side_point(d, (0.1, 0.9))
        self.figure(x, self.y(d), self.person_height(d), PERSON, walking=True)

    def figure(self, x: float, yb: float, H: float, cls: int, walking: bool) -> None:
        """A person of height H (pixels) with the feet at (x, yb): head, torso, arms, legs."""
        rng, c = self.rng, self.canvas
        top = _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))])
        legs = _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))])
        skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 8)
        r = 0.075 * H
        stride = 0.1 * H * rng.uniform(-1, 1) if walking else 0.0
        limb = max(1.0, 0.07 * H)
        c.line(x - 0.05 * H, yb - 0.5 * H, x - 0.06 * H - stride, yb, limb, cls, legs, T_CLOTH)
        c.line(x + 0.05 * H, yb - 0.5 * H, x + 0.06 * H + stride, yb, limb, cls, legs, T_CLOTH)
        c.ellipse(x, yb - 0.68 * H, 0.13 * H, 0.2 * H, cls, top, T_CLOTH)
        for side in (-1, 1):
            arm = (x + side * 0.11 * H, yb - 0.82 * H, x + side * 0.17 * H, yb - 0.52 * H)
            c.line(*arm, max(1.0, 0.055 * H), cls, top, T_CLOTH)
        c.circle(x, yb - H + r, r, cls, skin, T_CLOTH)

    def two_wheeler(self, d: float, vehicle: int, ridden: bool) -> None:
        """A bicycle or motorcycle; ridden ones go on the road edge and carry a rider."""
        rng, c = self.rng, self.canvas
        if ridden:
            u = rng.uniform(0.04, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 0.96)
            x = self.clamp_x(self.across(self.road_l, self.road_r, d, u))
        else:
            x = self.side_point(d, (0.2, 0.9))
        yb, H = self.y(d), self.person_height(d)
        colour = _jitter(rng, _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))])
        rw = (0.17 if vehicle == BICYCLE else 0.16) * H
        xs = (x - 0.3 * H, x + 0.3 * H)
        wy = yb - rw
        if vehicle == BICYCLE:
            ring = max(1.0, 0.03 * H)
            for wx in xs:
                c.circle(wx, wy, rw, BICYCLE, (30, 30, 30), T_METAL, thickness=int(round(ring)))
            seat, bar = (x - 0.05 * H, yb - 0.5 * H), (x + 0.22 * H, yb - 0.55 * H)
            frame = max(1.0, 0.025 * H)
            for a, b in ((xs[0], wy), seat), (seat, (x, wy)), ((x, wy), bar), (bar, (xs[1], wy)), ((xs[0], wy), (x, wy)):
                c.line(a[0], a[1], b[0], b[1], frame, BICYCLE, colour, T_METAL)
        else:
            for wx in xs:
                c.circle(wx, wy, rw, MOTORCYCLE, (25, 25, 25), T_METAL)
            c.ellipse(x, yb - 0.33 * H, 0.33 * H, 0.12 * H, MOTORCYCLE, colour, T_METAL)
        if ridden:
            self.figure(x - 0.03 * H, yb - 0.2 * H, 0.85 * H, RIDER, walking=False)

    def vehicle(self, d: float, kind: int) -> None:
        """Car, truck, bus or tram on the road, with a shadow, windows and wheels."""
        rng, c = self.rng, self.canvas
        u = 0.5 if kind == TRAIN else rng.uniform(0.12, 0.88)
        x, yb = self.across(self.road_l, self.road_r, d, u), self.y(d)
        scale = {CAR: 0.26, TRUCK: 0.3, BUS: 0.45, TRAIN: 0.7}[kind]
        W = self.w * scale * d * rng.uniform(0.85, 1.1)
        H = W * {CAR: rng.uniform(0.45, 0.6), TRUCK: 0.85, BUS: 0.5, TRAIN: 0.32}[kind]
        colour = _jitter(rng, _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))])
        glass = _jitter(rng, (40, 55, 70), 10)
        c.ellipse(x, yb, 0.55 * W, 0.06 * W, None, (20, 20, 22), None)  # shadow on the road
        if kind == CAR:
            c.rect(x - W / 2, yb - 0.6 * H, x + W / 2, yb - 0.12 * H, CAR, colour, T_METAL)
            cabin = np.array([(-0.38 * W, -0.6 * H), (0.38 * W, -0.6 * H), (0.27 * W, -H), (-0.27 * W, -H)]) + (x, yb)
            c.poly(cabin, CAR, colour, T_METAL)
            c.poly((cabin - (x, yb - 0.8 * H)) * 0.8 + (x, yb - 0.8 * H), None, glass, None)
            for side in (-1, 1):
                lamp = x + side * 0.45 * W
                c.rect(lamp - 0.03 * W, yb - 0.5 * H, lamp + 0.03 * W, yb - 0.42 * H, None, (240, 220, 170), None)
        elif kind == TRUCK:
            c.rect(x - W / 2, yb - H, x + 0.2 * W, yb - 0.15 * H, TRUCK, colour, T_METAL)
            c.rect(x + 0.2 * W, yb - 0.65 * H, x + W / 2, yb - 0.15 * H, TRUCK, _jitter(rng, colour, 30), T_METAL)
            c.rect(x + 0.25 * W, yb - 0.6 * H, x + 0.45 * W, yb - 0.4 * H, None, glass, None)
        else:
            c.rect(x - W / 2, yb - H, x + W / 2, yb - 0.12 * H, kind, colour, T_METAL)
            c.rect(x - 0.46 * W, yb - 0.9 * H, x + 0.46 * W, yb - 0.55 * H, None, glass, None)
            for k in np.linspace(-0.46, 0.46, 7 if kind == BUS else 11)[1:-1]:
                c.line(x + k * W, yb - 0.9 * H, x + k * W, yb - 0.55 * H, max(1.0, 0.008 * W), None, colour, None)
        for side in (-1, 1):
            c.circle(x + side * 0.32 * W, yb - 0.12 * H, 0.12 * H if kind == CAR else 0.09 * H, kind, (20, 20, 20), T_METAL)
