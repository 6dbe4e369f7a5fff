"""Small BIG-style folders in both layouts, generated for the refinement-track tests (no BIG data needed).

Each object is a disc (plus a hole and a thin bar, so boundaries are not trivial) on a textured
background; the image is brighter inside the object, so that image-guided refiners have an edge to
follow. Coarse sources are made the way CascadePSP made BIG's (the ground truth at low resolution,
brought back bicubically, thresholded): ``fcn`` at 1/4 and ``psp`` at 1/8 of the size, so the two
sources give different masks. One ground-truth pixel holds exactly 128 (object under ``>= 128``
only).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SOURCES = {"fcn": 4, "psp": 8}  # source name -> downsampling factor of its coarse masks
STEMS = ("obj_a", "obj_b", "obj_c")
SIZE = (96, 72)  # (w, h)


def objects(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """stem -> (image (H, W, 3) uint8 RGB, ground truth (H, W) uint8 0/255 (one pixel 128), {source: coarse 0/255})."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    out = {}
    for i, stem in enumerate(STEMS):
        gt = np.zeros((h, w), np.uint8)
        cv2.circle(gt, (w // 2 + 4 * i, h // 2), 18 + 3 * i, 255, -1)
        cv2.circle(gt, (w // 2 + 4 * i, h // 2), 4, 0, -1)  # a hole
        gt[h // 2 - 1: h // 2 + 1, 5:w // 2] = 255  # a thin bar
        gt[2, 2] = 128  # the rule's edge case: object under ge128 only
        texture = rng.integers(0, 60, (h, w, 3))
        image = np.clip(texture + np.where(gt[..., None] > 128, 150, 40), 0, 255).astype(np.uint8)
        coarse = {}
        for source, factor in SOURCES.items():
            small = cv2.resize(gt, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
            up = cv2.resize(small.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_CUBIC)
            coarse[source] = np.where(up > 0.5, 255, 0).astype(np.uint8)
        out[stem] = (image, gt, coarse)
    return out


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array[..., ::-1] if array.ndim == 3 else array  # OpenCV writes BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise OSError(f"could not write {path}")


def write_big(root: Path, layout: str, seed: int = 0) -> Path:
    """Write the objects under ``root`` in CascadePSP's layout (``<source>/<stem>_{im,gt,seg}``) or
    SegRefiner's (``test/<stem>_{im,gt}`` + ``coarse/<source>/<stem>_seg.png``); images as PNG so
    the test's own reading of them is exact. Returns ``root``."""
    for stem, (image, gt, coarse) in objects(seed).items():
        for source, mask in coarse.items():
            if layout == "cascadepsp":
                _write(root / source / f"{stem}_im.png", image)
                _write(root / source / f"{stem}_gt.png", gt)
                _write(root / source / f"{stem}_seg.png", mask)
            else:
                _write(root / "coarse" / source / f"{stem}_seg.png", mask)
        if layout == "segrefiner":
            _write(root / "test" / f"{stem}_im.png", image)
            _write(root / "test" / f"{stem}_gt.png", gt)
    return root
