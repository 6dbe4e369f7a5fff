"""Shared parts of the generated datasets: seeding, noise fields, a labelled canvas, finishing.

A synthetic sample is drawn at its final resolution (never drawn small and upsampled, so thin
structures stay sharp) on a :class:`Canvas` that keeps three aligned layers: the label, a flat
per-object colour and a texture id. :func:`compose` turns colour and texture into the image with
per-texture noise amplitudes, and :func:`finish` adds illumination change, blur and sensor noise.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import cv2
import numpy as np

from bench.core.data_types import DatasetInfo, Sample

Colour = tuple[float, float, float]
MaybeId = int | None  # a label or texture id; None leaves that layer unchanged


def sample_rng(seed: int, split: str, index: int, size: tuple[int, int]) -> np.random.Generator:
    """The generator of one sample: a function of (seed, split, index, size) only."""
    key = [int(seed), zlib.crc32(split.encode()), int(index), int(size[0]), int(size[1])]
    return np.random.default_rng(np.random.SeedSequence(key))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Band-limited noise: a coarse Gaussian grid bicubically upsampled.

    Args:
        rng: generator.
        shape: (H, W) of the result.
        cell: feature size in pixels (grid spacing).

    Returns:
        (H, W) float32, roughly zero mean and unit standard deviation.
    """
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 2), max(2, int(np.ceil(w / cell)) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    # Bicubic interpolation between independent samples lowers the variance; restore about 1.
    return field * np.float32(1.0 / max(float(field.std()), 1e-3))


class Canvas:
    """Three aligned layers drawn together with OpenCV primitives.

    Attributes:
        label: (H, W) uint8 class ids.
        colour: (H, W, 3) uint8 flat RGB colour of each object.
        texture: (H, W) uint8 texture id (an index into the amplitude table of :func:`compose`).
    """

    def __init__(self, width: int, height: int, label: int, colour: Colour, texture: int) -> None:
        self.width, self.height = width, height
        self.label = np.full((height, width), label, np.uint8)
        self.colour = np.empty((height, width, 3), np.uint8)
        self.colour[:] = np.clip(colour, 0, 255)
        self.texture = np.full((height, width), texture, np.uint8)

    def poly(self, pts: np.ndarray | Sequence, label: MaybeId, colour: Colour, texture: MaybeId) -> None:
        """Fill polygon(s) ``pts`` ((N, 2) x, y or a list of them). None leaves that layer unchanged."""
        arr = np.asarray(pts, dtype=np.float64)
        polys = [np.round(p).astype(np.int32) for p in (arr if arr.ndim == 3 else [arr])]
        self._draw(lambda img, v: cv2.fillPoly(img, polys, v), label, colour, texture)

    def rect(self, x0: float, y0: float, x1: float, y1: float, label: MaybeId, colour: Colour, texture: MaybeId) -> None:
        """Fill the axis-aligned box with corners (x0, y0) and (x1, y1), inclusive of both."""
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1)))
        self._draw(lambda img, v: cv2.rectangle(img, p0, p1, v, -1), label, colour, texture)

    def circle(
        self, x: float, y: float, r: float, label: MaybeId, colour: Colour, texture: MaybeId, thickness: int = -1
    ) -> None:
        """Filled disc (thickness -1) or ring of radius ``r``."""
        c, rad = (int(round(x)), int(round(y))), max(1, int(round(r)))
        self._draw(lambda img, v: cv2.circle(img, c, rad, v, thickness), label, colour, texture)

    def ellipse(
        self, x: float, y: float, ax: float, ay: float, label: MaybeId, colour: Colour, texture: MaybeId, angle: float = 0.0
    ) -> None:
        """Filled ellipse with half axes ``ax``, ``ay``, rotated by ``angle`` degrees."""
        c, axes = (int(round(x)), int(round(y))), (max(1, int(round(ax))), max(1, int(round(ay))))
        self._draw(lambda img, v: cv2.ellipse(img, c, axes, angle, 0, 360, v, -1), label, colour, texture)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, thickness: float, label: MaybeId, colour: Colour, texture: MaybeId
    ) -> None:
        """Straight stroke ``thickness`` pixels wide (at least 1)."""
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1)))
        t = max(1, int(round(thickness)))
        self._draw(lambda img, v: cv2.line(img, p0, p1, v, t), label, colour, texture)

    def _draw(
        self, fn: Callable[[np.ndarray, Any], object], label: MaybeId, colour: Colour | None, texture: MaybeId
    ) -> None:
        if label is not None:
            fn(self.label, int(label))
        if colour is not None:
            fn(self.colour, tuple(float(np.clip(c, 0, 255)) for c in colour))
        if texture is not None:
            fn(self.texture, int(texture))


def compose(canvas: Canvas, amplitudes: np.ndarray, fields: Sequence[np.ndarray]) -> np.ndarray:
    """Modulate the flat colours by per-texture mixtures of noise fields.

    Args:
        canvas: the drawn scene.
        amplitudes: (T, F) float32, amplitude of field f for texture t (relative brightness).
        fields: F arrays (H, W) float32 of unit-variance noise.

    Returns:
        (H, W, 3) float32 image in 0..255 (not clipped).
    """
    mod = np.ones(canvas.label.shape, np.float32)
    for f, field in enumerate(fields):
        amp = amplitudes[:, f].astype(np.float32)
        if np.any(amp):
            mod += amp[canvas.texture] * field
    np.clip(mod, 0.05, 3.0, out=mod)
    return canvas.colour.astype(np.float32) * mod[..., None]


def finish(image: np.ndarray, rng: np.random.Generator, scale: float, light: np.ndarray | None = None) -> np.ndarray:
    """Illumination change, slight blur and Gaussian sensor noise.

    Args:
        image: (H, W, 3) float32 in about 0..255.
        rng: generator.
        scale: image width / reference width; the blur radius follows it.
        light: optional (H, W) float32 multiplicative shading (soft shadows), about 1.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    image *= gain.astype(np.float32)
    if light is not None:
        image *= light[..., None]
    sigma = float(rng.uniform(0.5, 0.9)) * max(scale, 0.5)
    blurred: np.ndarray = cv2.GaussianBlur(image, (0, 0), sigma)  # float32 like its input
    noise = rng.standard_normal(blurred.shape, dtype=np.float32)
    blurred += noise * np.float32(rng.uniform(2.0, 7.0))
    return np.clip(blurred, 0, 255).astype(np.uint8)


class SyntheticDataset:
    """Base of the generated datasets: deterministic, lazy, no files.

    Subclasses set ``info``, ``default_size``, ``default_counts`` and implement :meth:`render`.

    Args:
        root: ignored (accepted so every dataset is built the same way); generated data has no root.
        split: any split name; ``default_counts`` gives the size of the known ones.
        n_images: number of samples (default from ``default_counts``, else the ``val`` count).
        size: (w, h) in pixels.
        seed: base seed.
    """

    info: ClassVar[DatasetInfo]
    default_size: ClassVar[tuple[int, int]] = (1024, 512)
    default_counts: ClassVar[dict[str, int]] = {"train": 8, "val": 2}
    generated: ClassVar[bool] = True  # reads no files: a data_root given for it is a mistake (bench.pipeline.validate)

    def __init__(
        self,
        root: object = None,
        split: str = "val",
        n_images: int | None = None,
        size: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        w, h = (int(v) for v in (size if size is not None else self.default_size))
        if w < 32 or h < 32:
            raise ValueError(f"{type(self).__name__}: size must be at least 32x32 (w, h), got {(w, h)}")
        n = self.default_counts.get(split, self.default_counts["val"]) if n_images is None else int(n_images)
        if n < 0:
            raise ValueError(f"{type(self).__name__}: n_images must be >= 0, got {n}")
        self.split, self.seed, self.n_images = split, int(seed), n
        self.image_size: tuple[int, int] | None = (w, h)

    def __len__(self) -> int:
        return self.n_images

    def ids(self) -> list[str]:
        """``<split>_<index>`` for every sample."""
        return [f"{self.split}_{i:04d}" for i in range(self.n_images)]

    def __getitem__(self, index: int) -> Sample:
        """Generate sample ``index``: image (H, W, 3) uint8 RGB, label (H, W) uint8."""
        if not -self.n_images <= index < self.n_images:
            raise IndexError(f"index {index} out of range for {self.n_images} samples")
        index %= self.n_images
        assert self.image_size is not None
        rng = sample_rng(self.seed, self.split, index, self.image_size)
        image, label = self.render(rng, *self.image_size, index=index)
        return Sample(f"{self.split}_{index:04d}", image, label)

    def render(self, rng: np.random.Generator, width: int, height: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw one sample: ((H, W, 3) uint8 RGB, (H, W) uint8 labels)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, n={self.n_images}, size={self.image_size}, seed={self.seed})"
