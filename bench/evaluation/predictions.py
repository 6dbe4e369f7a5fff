"""Saved label maps for pictures: the predictions of the first images of a split, as lossless PNGs.

Records hold confusion counts only, so qualitative panels (``bench.report.panels``) need the label maps
themselves. While a unit runs, the runner saves the maps of the split's first
``cfg.save_predictions`` images (by dataset index) here::

    <out_dir>/predictions/<method>@<WxH>/<image_id>.png   the method's (H, W) labels
    <out_dir>/predictions/<method>@<WxH>/unit.json        unit key and display name of the method
    <out_dir>/predictions/coarse@<WxH>/<image_id>.png     argmax of the coarse pass at full size

PNGs are single-channel uint8 (every label < 256) or uint16, so they round-trip exactly. Saving
happens after the image is timed, its memory probe stopped and its record written: it never
enters a measurement. The coarse map costs one extra, untimed backbone forward per saved image;
every unit with a backbone rewrites it (same input size, same backbone: the same map), so it
always comes from the backbone of the latest run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.core.config import BenchConfig, format_size

COARSE = "coarse"
"""The pseudo-method name of the coarse map's folder."""


def unit_dir(out_path: Path, method: str, size: tuple[int, int] | str) -> Path:
    """``<out_path>/predictions/<method>@<WxH>``."""
    size_text = size if isinstance(size, str) else format_size(size)
    return Path(out_path) / "predictions" / f"{method}@{size_text}"


def prediction_path(out_path: Path, method: str, size: tuple[int, int] | str, image_id: str) -> Path:
    """Where the label map of ``image_id`` by ``method`` at input ``size`` is saved."""
    return unit_dir(out_path, method, size) / f"{image_id}.png"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a torn PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_label_map(path: Path, labels: np.ndarray) -> None:
    """Save (H, W) integer labels as a lossless single-channel PNG.

    Args:
        path: the ``.png`` file to write (folders are created).
        labels: (H, W) integer array with values in 0..65535; stored as uint8 when every value is
            below 256, else uint16.

    Raises:
        ValueError: not 2-D, not integer, or values outside 0..65535.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"expected an (H, W) integer label map, got shape {labels.shape} dtype {labels.dtype}")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > 65535:
        raise ValueError(f"label values must lie in 0..65535 to be saved as PNG, got {low}..{high}")
    dtype = np.uint8 if high < 256 else np.uint16
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(labels.astype(dtype)))
    if not ok:
        raise OSError(f"OpenCV could not encode a {labels.shape} {dtype.__name__} PNG for {path}")
    _atomic_write(Path(path), buf.tobytes())


def load_label_map(path: Path) -> np.ndarray:
    """(H, W) int64 labels of a PNG written by :func:`save_label_map`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a single-channel 8- or 16-bit PNG.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved label map at {path}")
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
        shape = None if labels is None else (labels.shape, labels.dtype)
        raise ValueError(f"{path}: expected a single-channel uint8/uint16 PNG label map, got {shape}")
    return labels.astype(np.int64)


def coarse_labels(backbone: Any, image: np.ndarray, ctx: Any) -> np.ndarray:
    """(H, W) int64 argmax of the coarse probabilities upsampled to the image's size.

    The same map the Downsample method returns: ``compute_coarse`` at ``ctx.input_size``
    (through ``coarse_scale`` when set), bilinear upsampling of the probabilities, argmax.
    """
    from bench.models.coarse import compute_coarse, upsample_probs

    coarse = compute_coarse(backbone, image, ctx.input_size, ctx.device, ctx.options.get("coarse_scale"))
    probs = upsample_probs(coarse.probs, image.shape[:2])
    return probs.argmax(0).to("cpu").numpy()


def _write_info(folder: Path, info: dict[str, Any]) -> None:
    """``unit.json``: which unit the maps came from and how tables name the method."""
    path = folder / "unit.json"
    if not path.is_file() or json.loads(path.read_text()) != info:
        _atomic_write(path, json.dumps(info, indent=1, sort_keys=True).encode())


def save_unit_predictions(cfg: BenchConfig, name: str, size: tuple[int, int], unit_key: str, index: int,
                          sample: Any, labels: np.ndarray, method: Any, backbone: Any, ctx: Any) -> list[Path]:
    """Save one image's maps if it is among the split's first ``cfg.save_predictions``.

    Called by the runner after the image's record is written (outside every measurement).

    Args:
        cfg: the sweep's config (``out_path``, ``save_predictions``).
        name: method registry key; size: input size (w, h); unit_key: the unit's key.
        index: the image's index in the split; sample: its ``Sample``.
        labels: (H, W) int64 predicted labels of ``method``.
        method: the built method (for its display name); backbone: the shared backbone or None
            (then no coarse map is saved); ctx: the unit's ``MethodContext``.

    Returns:
        The files written (empty when the image is not selected).
    """
    if index >= cfg.save_predictions:
        return []
    folder = unit_dir(cfg.out_path, name, size)
    written = [prediction_path(cfg.out_path, name, size, sample.id)]
    save_label_map(written[0], labels)
    display = getattr(method, "label", None) or type(method).display_name or name
    _write_info(folder, {"unit_key": unit_key, "method": name, "display_name": display, "size": format_size(size)})
    if backbone is not None:
        coarse_path = prediction_path(cfg.out_path, COARSE, size, sample.id)
        save_label_map(coarse_path, coarse_labels(backbone, sample.image, ctx))
        _write_info(coarse_path.parent, {"method": COARSE, "display_name": "Coarse", "size": format_size(size),
                                         "backbone_checkpoint": str(cfg.backbone_path)})
        written.append(coarse_path)
    return written


def read_unit_info(out_path: Path, method: str, size: tuple[int, int] | str) -> dict[str, Any]:
    """The ``unit.json`` of a method's saved maps, or ``{}`` when absent."""
    path = unit_dir(out_path, method, size) / "unit.json"
    return json.loads(path.read_text()) if path.is_file() else {}
