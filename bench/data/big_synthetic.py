"""Generated high-resolution single-object images with given coarse masks (dataset ``big_synthetic``).

The embedded, redistributable default of the refinement track: a BIG-like set (CascadePSP's
protocol: one object per very-high-resolution image, coarse masks given per named source) drawn
from a seed, nothing shipped. Image ``i`` of a split has the size ``SIZES[i % 4]`` at the default
(4096x3072, 2048x1536, 3840x2160 and 2560x1920: every long side at least 2048 px, half of them 4K),
each scaled by ``size / DEFAULT_SIZE`` per axis when ``size`` is given (tests, quick runs).

One object per image, one of five kinds by ``index % 5`` (every kind has thin parts, holes and a
fine boundary): a furry blob (hundreds of 1-3 px hairs, two holes), a branching tree (branches
thinning to 1-2 px, a knot hole, a loop), a serrated leaf (saw-teeth, vein holes, a thin stalk and
tendrils), a wheel frame (two rings, thin spokes) and a fence (a frame holding a grid of thin bars
with a serrated top). The object is the largest 8-connected component of what was drawn. The
background is textured (multi-octave value noise, stripes or tiles) with unlabelled distractors in
the object's colours; the image is softened at the object's edge by a slight blur and gets sensor
noise.

Coarse sources (``Sample.coarse``, (H, W) uint8 {0, 1}, the order of ``coarse_sources``), made as
the papers made theirs (``refinement_track.md`` §1.1: a low-resolution mask, bicubically upsampled,
``> 0.5``):

- ``down8``, ``down16``: the ground truth area-averaged over 8x8 (16x16) blocks (the soft mask a
  segmenter at 1/8 (1/16) resolution would give at best), upsampled bicubically (OpenCV's
  convention: pixel centres aligned, a = -0.75, replicated border) and thresholded at 0.5.
- ``perturbed``: CascadePSP's training perturbation style (its ``boundary_modification``) rewritten
  for this layer: every contour keeps a random tenth of its vertices after losing one run of a
  tenth, the kept vertices are jittered by a few pixels and the polygons refilled (outer contours
  as object, hole contours as background), then a few random rectangles are dilated or eroded
  with a random rectangular or elliptic element. Its kernel sizes and jitter scale with the image.

The fourth source of the track, ``backbone`` (a low-resolution segmenter's output), is the
harness's own coarse pass (the light backbone trained on this set's train split at low resolution).

Exactness: every pixel is made by integer operations (OpenCV drawing, morphology, connected
components, 8-bit fixed-point blur and linear resizing, numpy integer arithmetic) or by element-wise
IEEE float operations in a fixed order (the bicubic upsampling of the coarse sources), so a sample
is identical under every CPU kernel set the drift gate uses. Trigonometry of vertex positions is
done with Python's ``math`` on scalars.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

import cv2
import numpy as np

from bench.core.data_types import DatasetInfo, Sample

INFO = DatasetInfo(
    name="big_synthetic",
    class_names=("background", "object"),
    ignore_index=None,
    palette=((0, 0, 0), (255, 255, 255)),
)

DEFAULT_SIZE = (4096, 3072)
SIZES = ((4096, 3072), (2048, 1536), (3840, 2160), (2560, 1920))  # (w, h) of image i % 4 at the default
COARSE_SOURCES = ("down8", "down16", "perturbed")
KINDS = ("furry", "tree", "leaf", "wheel", "fence")
BLUR = cv2.ALGO_HINT_ACCURATE  # the 8-bit fixed-point Gaussian: bit-exact on every kernel set
LINEAR = cv2.INTER_LINEAR_EXACT

Colour = tuple[int, int, int]


def image_shape(index: int, size: Sequence[int] = DEFAULT_SIZE) -> tuple[int, int]:
    """(w, h) of image ``index`` when the nominal (largest) size is ``size`` (w, h)."""
    bw, bh = SIZES[index % len(SIZES)]
    return max(32, round(bw * size[0] / DEFAULT_SIZE[0])), max(32, round(bh * size[1] / DEFAULT_SIZE[1]))


def _rngs(seed: int, split: str, index: int, size: Sequence[int]) -> list[np.random.Generator]:
    """Independent generators for (image, perturbation) of one sample: a function of its key only."""
    key = [int(seed), zlib.crc32(split.encode()), int(index), int(size[0]), int(size[1])]
    return [np.random.default_rng(s) for s in np.random.SeedSequence(key).spawn(2)]


# ----------------------------------------------------------------------------------------------
# coarse sources


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """(N, 4) weights of OpenCV's bicubic kernel (a = -0.75) at fractional offsets ``t`` (N,) float64."""
    a = -0.75
    x = np.stack([1.0 + t, t, 1.0 - t, 2.0 - t], axis=1)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x <= 1.0, near, far)


def _upsample_axis(low: np.ndarray, factor: int, out_len: int, axis: int) -> np.ndarray:
    """Bicubic upsampling of ``low`` (float32) along ``axis`` by ``factor``, ``out_len`` samples.

    Source coordinate of output j: (j + 0.5) / factor - 0.5 (OpenCV's), taps clamped to the edge.
    Element-wise products and sums in a fixed order: identical on every CPU.
    """
    n = low.shape[axis]
    src = (np.arange(out_len, dtype=np.float64) + 0.5) / factor - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base).astype(np.float32)
    base = base.astype(np.int64)
    out = None
    for tap in range(4):
        idx = np.clip(base - 1 + tap, 0, n - 1)
        w = weights[:, tap]
        taken = np.take(low, idx, axis=axis)
        term = taken * (w[None, :] if axis == 1 else w[:, None])
        out = term if out is None else out + term
    assert out is not None
    return out


def downsampled(label: np.ndarray, factor: int) -> np.ndarray:
    """The ground truth seen at 1/``factor`` resolution, brought back: (H, W) uint8 {0, 1}.

    Block means over ``factor`` x ``factor`` blocks (the last partial blocks padded by replicating
    the edge), bicubic upsampling to (H, W), ``> 0.5``.
    """
    h, w = label.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(label.astype(np.uint8), ((0, ph), (0, pw)), mode="edge")
    blocks = padded.reshape((h + ph) // factor, factor, (w + pw) // factor, factor).sum(axis=(1, 3), dtype=np.int64)
    soft = (blocks.astype(np.float32) / np.float32(factor * factor))
    wide = _upsample_axis(soft, factor, w + pw, axis=1)[:, :w]
    full = _upsample_axis(wide, factor, h + ph, axis=0)[:h]
    return (full > np.float32(0.5)).astype(np.uint8)


def _element(rng: np.random.Generator, size: int) -> np.ndarray:
    """A rectangle or one of three ellipses (round, flat, tall) of ``size`` px, as CascadePSP draws them."""
    choice = int(rng.integers(4))
    half = max(1, size // 2)
    shape = ((size, size), (size, size), (size, half), (half, size))[choice]
    kind = cv2.MORPH_RECT if choice == 0 else cv2.MORPH_ELLIPSE
    return cv2.getStructuringElement(kind, shape)


def perturbed(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boundary-perturbed copy of ``label`` ((H, W) uint8 {0, 1}): (H, W) uint8 {0, 1}.

    See the module docstring; all sizes are relative to the image diagonal (1 unit = diag / 1000).
    """
    h, w = label.shape
    unit = math.hypot(h, w) / 1000.0
    mask = np.ascontiguousarray(label, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    jitter = max(1, round(0.5 * unit))
    outer: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for k, contour in enumerate(contours):
        pts = contour[:, 0, :].astype(np.int32)
        n = len(pts)
        is_hole = hierarchy is not None and hierarchy[0][k][3] >= 0
        if n >= 10:
            cut = n // 10
            start = int(rng.integers(n))
            keep_run = np.roll(np.arange(n), -start)[cut:]  # one run of a tenth removed
            m = len(keep_run)
            chosen = np.sort(rng.choice(m, size=max(3, m // 10), replace=False))
            pts = pts[keep_run[chosen]]
            pts = pts + rng.integers(-jitter, jitter + 1, size=pts.shape).astype(np.int32)
        (holes if is_hole else outer).append(pts.reshape(-1, 1, 2))
    if outer:
        cv2.fillPoly(out, outer, 1)
    if holes:
        cv2.fillPoly(out, holes, 0)
    for _ in range(6):
        rw, rh = int(rng.integers(w // 8, w // 2 + 1)), int(rng.integers(h // 8, h // 2 + 1))
        x0, y0 = int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1))
        size = int(rng.integers(3, 10)) * max(1, round(unit / 4))
        region = out[y0:y0 + rh, x0:x0 + rw]
        op = cv2.dilate if rng.random() < 0.5 else cv2.erode
        out[y0:y0 + rh, x0:x0 + rw] = op(region, _element(rng, size))
    return out


class CoarseMaps(Mapping[str, np.ndarray]):
    """The coarse sources of one sample, each computed from the label on first access and kept.

    Lazy so that training (which reads image and label only) never pays for them; picklable.
    """

    def __init__(self, label: np.ndarray, key: tuple[int, str, int, int, int]) -> None:
        self._label, self._key = label, key
        self._maps: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._maps:
            if name == "down8":
                self._maps[name] = downsampled(self._label, 8)
            elif name == "down16":
                self._maps[name] = downsampled(self._label, 16)
            elif name == "perturbed":
                seed, split, index, w, h = self._key
                self._maps[name] = perturbed(self._label, _rngs(seed, split, index, (w, h))[1])
            else:
                raise KeyError(name)
        return self._maps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COARSE_SOURCES)

    def __len__(self) -> int:
        return len(COARSE_SOURCES)


# ----------------------------------------------------------------------------------------------
# textures (uint8, integer operations only)


def _noise(rng: np.random.Generator, w: int, h: int, cell: float) -> np.ndarray:
    """(H, W) uint8 value noise: a random grid of ``cell``-px spacing, linearly upsampled (bit-exact)."""
    gw, gh = max(2, math.ceil(w / cell) + 1), max(2, math.ceil(h / cell) + 1)
    grid = rng.integers(0, 256, size=(gh, gw), dtype=np.uint8)
    return cv2.resize(grid, (w, h), interpolation=LINEAR)


def _octaves(rng: np.random.Generator, w: int, h: int, cells: Sequence[float]) -> np.ndarray:
    """(H, W) int16 sum of noise octaves, centred on 0, about +-100 at most."""
    acc = np.zeros((h, w), np.int16)
    for k, cell in enumerate(cells):
        acc += (_noise(rng, w, h, cell).astype(np.int16) - 128) >> (k + 1)
    return acc


def _stripes(rng: np.random.Generator, w: int, h: int, period: int) -> np.ndarray:
    """(H, W) int16 in {-1, 1}: oblique stripes of ``period`` px (integer direction)."""
    cx, cy = int(rng.integers(-8, 9)), int(rng.integers(1, 9))
    phase = np.add.outer(np.arange(h, dtype=np.int32) * cy, np.arange(w, dtype=np.int32) * cx)
    norm = max(1, round(math.hypot(cx, cy)))
    return (((phase // (period * norm)) & 1) * 2 - 1).astype(np.int16)


def _tiles(rng: np.random.Generator, w: int, h: int, tile: int) -> np.ndarray:
    """(H, W) int16 tile pattern (bricks: rows offset by half a tile), per-tile brightness and grout lines."""
    rows, cols = h // tile + 2, w // tile + 2
    levels = rng.integers(-30, 31, size=(rows, cols * 2)).astype(np.int16)
    y = np.arange(h, dtype=np.int32) // tile
    x = np.arange(w, dtype=np.int32)
    shift = (y % 2) * (tile // 2)
    col = (x[None, :] + shift[:, None]) // tile
    out = levels[y[:, None], col]
    grout = max(1, tile // 24)
    out[((np.arange(h) % tile) < grout)] = -60
    out[((x[None, :] + shift[:, None]) % tile) < grout] = -60
    return out


def _paint(base: Colour, mod: np.ndarray, gain: Sequence[int] | np.ndarray) -> np.ndarray:
    """(H, W, 3) int16: ``base`` plus ``mod`` * gain_c / 64 per channel."""
    out = np.empty((*mod.shape, 3), np.int16)
    for c in range(3):
        out[..., c] = base[c] + (mod * int(gain[c])) // 64
    return out


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 236) -> Colour:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


# ----------------------------------------------------------------------------------------------
# the object


class _Shape:
    """One object mask under construction: (H, W) uint8 {0, 1} drawn with integer coordinates."""

    def __init__(self, rng: np.random.Generator, w: int, h: int) -> None:
        self.rng, self.w, self.h = rng, w, h
        self.s = math.hypot(w, h) / math.hypot(*DEFAULT_SIZE)  # 1 at 4096x3072
        self.mask = np.zeros((h, w), np.uint8)
        self.cx, self.cy = w * float(rng.uniform(0.42, 0.58)), h * float(rng.uniform(0.42, 0.58))
        self.r = min(w, h) * float(rng.uniform(0.22, 0.3))

    def px(self, value: float) -> int:
        """A length given at 4K in px, scaled to this image, at least 1."""
        return max(1, round(value * self.s))

    def blob(self, cx: float, cy: float, r: float, wobble: float, n: int = 720) -> np.ndarray:
        """(n, 2) int32 vertices of a star-shaped blob: r(θ) = r (1 + Σ a_k cos(kθ + φ_k))."""
        rng = self.rng
        terms = [(k, float(rng.uniform(0, wobble)) / k, float(rng.uniform(0, 2 * math.pi))) for k in range(2, 7)]
        pts = []
        for j in range(n):
            t = 2 * math.pi * j / n
            rr = r * (1 + sum(a * math.cos(k * t + p) for k, a, p in terms))
            pts.append((round(cx + rr * math.cos(t)), round(cy + rr * math.sin(t))))
        return np.array(pts, np.int32)

    def fill(self, pts: np.ndarray, value: int = 1) -> None:
        cv2.fillPoly(self.mask, [np.asarray(pts, np.int32).reshape(-1, 1, 2)], value)

    def stroke(self, pts: Sequence[tuple[float, float]], width: int, value: int = 1) -> None:
        arr = np.array([(round(x), round(y)) for x, y in pts], np.int32).reshape(-1, 1, 2)
        cv2.polylines(self.mask, [arr], False, value, max(1, int(width)))

    def hole(self, x: float, y: float, ax: float, ay: float, angle: float) -> None:
        cv2.ellipse(self.mask, (round(x), round(y)), (max(2, round(ax)), max(2, round(ay))), angle, 0, 360, 0, -1)

    def curve(self, x: float, y: float, angle: float, length: float, bend: float, n: int = 8) -> list[tuple[float, float]]:
        """A gently bending path of ``n`` segments from (x, y)."""
        pts, step = [(x, y)], length / n
        for _ in range(n):
            angle += float(self.rng.normal(0, bend))
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            pts.append((x, y))
        return pts

    def hairs(self, outline: np.ndarray, count: int, length: float, width: float) -> None:
        """Thin strokes rooted on ``outline`` and pointing outwards (away from the centre)."""
        rng = self.rng
        for j in rng.choice(len(outline), size=min(count, len(outline)), replace=False):
            x, y = (float(v) for v in outline[j])
            out = math.atan2(y - self.cy, x - self.cx) + float(rng.normal(0, 0.35))
            start = (x - 4 * self.s * math.cos(out), y - 4 * self.s * math.sin(out))  # rooted inside
            path = self.curve(*start, out, length * float(rng.uniform(0.4, 1.0)), 0.12, n=5)
            self.stroke(path, self.px(width * float(rng.uniform(0.6, 1.4))))

    # the five kinds ------------------------------------------------------------------------

    def furry(self) -> None:
        body = self.blob(self.cx, self.cy, self.r, 0.25)
        self.fill(body)
        for _ in range(2):
            a, d = float(self.rng.uniform(0, 2 * math.pi)), self.r * float(self.rng.uniform(0.2, 0.45))
            self.hole(self.cx + d * math.cos(a), self.cy + d * math.sin(a), self.r * 0.12, self.r * 0.07,
                      float(self.rng.uniform(0, 180)))
        self.hairs(body, int(self.rng.integers(250, 450)), self.r * 0.35, 2.0)

    def tree(self) -> None:
        rng = self.rng
        base = (self.cx, self.cy + self.r * 1.3)
        trunk = self.curve(*base, -math.pi / 2, self.r * 1.2, 0.05, n=6)
        width = max(1, round(self.r / 8))
        self.stroke(trunk, width)
        self.hole(trunk[1][0], trunk[1][1], width * 0.25, width * 0.9, 0.0)
        todo = [(trunk[-1], -math.pi / 2, self.r * 0.8, width)]
        while todo:
            (x, y), ang, length, wd = todo.pop()
            for _ in range(int(rng.integers(2, 4))):
                a = ang + float(rng.uniform(-0.8, 0.8))
                path = self.curve(x, y, a, length, 0.1, n=4)
                child = max(1, round(wd * float(rng.uniform(0.45, 0.65))))
                self.stroke(path, child)
                if child > self.px(1.5) and length > 8:
                    todo.append((path[-1], a, length * 0.7, child))
                elif rng.random() < 0.6:  # twigs of 1-2 px
                    self.stroke(self.curve(*path[-1], a, length * 0.5, 0.2, n=4), self.px(1.5))
        # a loop between two branches: a hole enclosed by thin wood
        cv2.circle(self.mask, (round(trunk[-2][0]), round(trunk[-2][1])), round(self.r * 0.18), 1, self.px(6))

    def leaf(self) -> None:
        rng = self.rng
        n, teeth = 720, int(rng.integers(40, 90))
        depth = self.r * float(rng.uniform(0.03, 0.06))
        pts = []
        for j in range(n):
            t = 2 * math.pi * j / n
            # a leaf outline (pointed at both ends) with saw-teeth: a sawtooth in the angle
            rr = self.r * (0.55 + 0.45 * abs(math.cos(t)) ** 0.7)
            saw = depth * ((j * teeth / n) % 1.0)
            pts.append((round(self.cx + (rr + saw) * math.cos(t)), round(self.cy + 0.6 * (rr + saw) * math.sin(t))))
        outline = np.array(pts, np.int32)
        self.fill(outline)
        for k in range(int(rng.integers(3, 7))):  # holes between the veins
            x = self.cx + self.r * float(rng.uniform(-0.6, 0.6))
            y = self.cy + self.r * 0.35 * float(rng.uniform(-0.6, 0.6))
            self.hole(x, y, self.r * 0.06, self.r * 0.025, float(rng.uniform(0, 180)))
        stalk = self.curve(self.cx + self.r, self.cy, 0.0, self.r * 0.6, 0.15, n=6)
        self.stroke(stalk, self.px(10))
        for _ in range(int(rng.integers(3, 7))):  # tendrils of 2-3 px
            j = int(rng.integers(len(outline)))
            x, y = (float(v) for v in outline[j])
            self.stroke(self.curve(x, y, math.atan2(y - self.cy, x - self.cx), self.r * 0.5, 0.3, n=10),
                        self.px(2.5))

    def wheel(self) -> None:
        rng = self.rng
        rr = self.r * 0.55
        centres = [(self.cx - rr * 1.1, self.cy + rr * 0.3), (self.cx + rr * 1.1, self.cy + rr * 0.3)]
        for x, y in centres:
            cv2.circle(self.mask, (round(x), round(y)), round(rr), 1, self.px(28))
            cv2.circle(self.mask, (round(x), round(y)), self.px(30), 1, -1)
            spokes = int(rng.integers(16, 33))
            for k in range(spokes):
                a = 2 * math.pi * k / spokes + float(rng.uniform(0, 0.05))
                self.stroke([(x, y), (x + rr * math.cos(a), y + rr * math.sin(a))], self.px(3))
        top = (self.cx, self.cy - rr * 0.6)
        for x, y in centres:
            self.stroke([(x, y), top], self.px(40))
        self.stroke([centres[0], centres[1]], self.px(30))
        self.stroke(self.curve(*top, -math.pi / 2, rr * 0.8, 0.1, n=6), self.px(14))
        self.hairs(np.array([[round(top[0]), round(top[1])]] * 60, np.int32), 40, rr * 0.5, 1.5)

    def fence(self) -> None:
        rng = self.rng
        x0, x1 = round(self.cx - self.r * 1.4), round(self.cx + self.r * 1.4)
        y0, y1 = round(self.cy - self.r * 0.8), round(self.cy + self.r * 0.8)
        frame = self.px(36)
        cv2.rectangle(self.mask, (x0, y0), (x1, y1), 1, frame)
        pitch = max(4, round((x1 - x0) / int(rng.integers(14, 30))))
        bar = self.px(float(rng.uniform(2, 6)))
        for x in range(x0, x1, pitch):
            cv2.line(self.mask, (x, y0), (x + pitch // 3, y1), 1, bar)
        for y in range(y0, y1, pitch * 2):
            cv2.line(self.mask, (x0, y), (x1, y), 1, max(1, bar // 2))
        teeth = []  # a serrated top rail
        tooth = max(2, round(pitch / 3))
        for x in range(x0, x1 + 1, tooth):
            teeth += [(x, y0), (x + tooth // 2, y0 - 2 * tooth)]
        teeth += [(x1, y0), (x1, y0 + frame), (x0, y0 + frame)]
        self.fill(np.array(teeth, np.int32))
        for _ in range(int(rng.integers(20, 40))):  # wire ends sticking out
            x = int(rng.integers(x0, x1))
            self.stroke(self.curve(x, y1, math.pi / 2, self.r * 0.25, 0.3, n=6), self.px(1.5))

    def largest_component(self) -> np.ndarray:
        """The largest 8-connected component of the drawing: (H, W) uint8 {0, 1}."""
        n, comp, stats, _ = cv2.connectedComponentsWithStats(self.mask, connectivity=8)
        if n <= 2:
            return self.mask
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        return (comp == best).astype(np.uint8)


def draw_object(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """One object of ``kind`` (one of :data:`KINDS`): (H, W) uint8 {0, 1}, one 8-connected component."""
    shape = _Shape(rng, w, h)
    getattr(shape, kind)()
    return shape.largest_component()


def render(rng: np.random.Generator, w: int, h: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw sample ``index`` at (w, h): ((H, W, 3) uint8 RGB, (H, W) uint8 {0, 1})."""
    label = draw_object(rng, w, h, KINDS[index % len(KINDS)])
    s = math.hypot(w, h) / math.hypot(*DEFAULT_SIZE)
    # background: one of three textures on a random colour, plus unlabelled distractor strokes
    style = int(rng.integers(3))
    bg_colour = _colour(rng)
    mod = _octaves(rng, w, h, [max(4.0, c * s) for c in (400, 90, 20, 5)])
    if style == 1:
        mod += _stripes(rng, w, h, max(2, round(float(rng.uniform(6, 30)) * s))) * np.int16(int(rng.integers(10, 35)))
    elif style == 2:
        mod += _tiles(rng, w, h, max(8, round(float(rng.uniform(60, 240)) * s)))
    background = _paint(bg_colour, mod, rng.integers(32, 80, size=3))
    # the object: its own colour and finer grain; some images give it a colour close to the background's
    fg_colour = _colour(rng)
    if rng.random() < 0.3:
        fg_colour = tuple(int(np.clip(c + rng.integers(-45, 46), 0, 255)) for c in bg_colour)  # type: ignore[assignment]
    fg_mod = _octaves(rng, w, h, [max(4.0, c * s) for c in (150, 12, 3)])
    foreground = _paint(fg_colour, fg_mod, rng.integers(24, 64, size=3))
    distract = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        pts = [(x, y)]
        a = float(rng.uniform(0, 2 * math.pi))
        for _ in range(6):
            a += float(rng.normal(0, 0.4))
            x, y = x + round(0.04 * w * math.cos(a)), y + round(0.04 * w * math.sin(a))
            pts.append((x, y))
        cv2.polylines(distract, [np.array(pts, np.int32).reshape(-1, 1, 2)], False, 1,
                      max(1, round(float(rng.uniform(2, 30)) * s)))
    distract[label > 0] = 0
    image = np.where(label[..., None] > 0, foreground, background)
    image = np.where(distract[..., None] > 0, (foreground + background) // 2, image)
    sigma = 0.6 + 0.6 * s
    soft = cv2.GaussianBlur(np.clip(image, 0, 255).astype(np.uint8), (0, 0), sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101, hint=BLUR)
    noise = rng.integers(-6, 7, size=soft.shape, dtype=np.int16)
    return np.clip(soft.astype(np.int16) + noise, 0, 255).astype(np.uint8), label


class BigSynthetic:
    """Deterministic high-resolution single-object images with coarse masks; see the module docstring.

    Args:
        root: ignored (generated data has no root).
        split: ``train`` (16 images by default), ``val`` (4), ``tune`` (4) or any other name (4).
        n_images: number of images.
        size: (w, h) of the largest image (default 4096x3072); every image is scaled by
            ``size / (4096, 3072)`` per axis (at least 32 px a side).
        seed: base seed; image i of split s depends only on (seed, s, i, size).

    Attributes:
        coarse_sources: names of the coarse maps every sample carries (``Sample.coarse``).
        image_size: the nominal (largest) (w, h); the images vary (:func:`image_shape`).
    """

    info: ClassVar[DatasetInfo] = INFO
    default_size: ClassVar[tuple[int, int]] = DEFAULT_SIZE
    default_counts: ClassVar[dict[str, int]] = {"train": 16, "val": 4, "tune": 4}
    coarse_sources: ClassVar[tuple[str, ...]] = COARSE_SOURCES
    generated: ClassVar[bool] = True  # reads no files: a data_root given for it is a mistake

    def __init__(self, root: object = None, split: str = "val", n_images: int | None = None,
                 size: Sequence[int] | None = None, seed: int = 0) -> None:
        w, h = (int(v) for v in (size if size is not None else DEFAULT_SIZE))
        if w < 32 or h < 32:
            raise ValueError(f"BigSynthetic: size must be at least 32x32 (w, h), got {(w, h)}")
        n = self.default_counts.get(split, self.default_counts["val"]) if n_images is None else int(n_images)
        if n < 0:
            raise ValueError(f"BigSynthetic: n_images must be >= 0, got {n}")
        self.split, self.seed, self.n_images = split, int(seed), n
        self.image_size: tuple[int, int] | None = (w, h)

    def __len__(self) -> int:
        return self.n_images

    def ids(self) -> list[str]:
        """``<split>_<index>`` for every sample."""
        return [f"{self.split}_{i:04d}" for i in range(self.n_images)]

    def __getitem__(self, index: int) -> Sample:
        """Generate sample ``index``: image (H, W, 3) uint8 RGB, label (H, W) uint8 {0, 1}, coarse maps."""
        if not -self.n_images <= index < self.n_images:
            raise IndexError(f"index {index} out of range for {self.n_images} samples")
        index %= self.n_images
        assert self.image_size is not None
        w, h = image_shape(index, self.image_size)
        image, label = render(_rngs(self.seed, self.split, index, self.image_size)[0], w, h, index)
        key = (self.seed, self.split, index, *self.image_size)
        return Sample(f"{self.split}_{index:04d}", image, label, CoarseMaps(label, key))

    def __repr__(self) -> str:
        return f"BigSynthetic(split={self.split!r}, n={self.n_images}, size={self.image_size}, seed={self.seed})"
