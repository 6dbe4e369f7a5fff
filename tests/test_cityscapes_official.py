"""Our Cityscapes per-class IoU and mIoU equal the official evaluation's (cityscapesScripts 2.3.0,
``evalPixelLevelSemanticLabeling.evaluateImgLists``), on generated label maps and on the sample
frames in ../shared/data/cityscapes when present.

The official script compares ``labelIds`` PNGs: ground truth as released, predictions written as
labelIds. Ours maps the ground truth to the 19 trainIds (everything else 255, ignored: the
dataset's ``label_to_train_table``), sums ``confusion_matrix`` over the images and takes
``iou_per_class(cm, "nan")`` and ``mean_iou``: the harness's Cityscapes metric (``absent: nan``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.cityscapes import CLASS_NAMES, LABEL_TO_TRAIN, label_to_train_table
from bench.evaluation.metrics import confusion_matrix, iou_per_class, mean_iou

try:  # a test oracle, not optional: a missing evaluator fails the suite instead of skipping it
    official = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
except ImportError as exc:
    pytest.fail(f"tests/test_cityscapes_official.py: the official Cityscapes evaluator is missing ({exc}); "
                "run `make install`, which installs cityscapesscripts==2.3.0 with --no-deps", pytrace=False)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cityscapes"
TRAIN_TO_LABEL = np.zeros(256, np.uint8)
for _label_id, _train_id in LABEL_TO_TRAIN.items():
    TRAIN_TO_LABEL[_train_id] = _label_id


def _official(gt_files: list[Path], pred_files: list[Path]) -> dict:
    args = official.args
    args.evalInstLevelScore = False  # instance-level iIoU needs instanceIds files; not our metric
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    args.bold = args.nocol = ""
    return official.evaluateImgLists([str(p) for p in pred_files], [str(p) for p in gt_files], args)


def _ours(gt_label_ids: list[np.ndarray], pred_train_ids: list[np.ndarray]) -> tuple[np.ndarray, float]:
    table = label_to_train_table()
    cm = sum(confusion_matrix(table[g], p, len(CLASS_NAMES), 255) for g, p in zip(gt_label_ids, pred_train_ids))
    iou = iou_per_class(cm, "nan")
    return iou, mean_iou(iou)


def _write(folder: Path, stem: str, gt: np.ndarray, pred_train: np.ndarray) -> tuple[Path, Path]:
    gt_path = folder / "gtFine" / "val" / "city" / f"{stem}_gtFine_labelIds.png"
    pred_path = folder / "pred" / f"{stem}_pred.png"
    for path, arr in ((gt_path, gt), (pred_path, TRAIN_TO_LABEL[pred_train])):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.astype(np.uint8)).save(path)
    return gt_path, pred_path


def _check(result: dict, iou: np.ndarray, miou: float) -> None:
    scores = result["classScores"]
    theirs = np.array([scores[name] for name in CLASS_NAMES], dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(theirs), np.isnan(iou))  # absent classes: NaN on both sides
    np.testing.assert_allclose(theirs[~np.isnan(theirs)], iou[~np.isnan(iou)], rtol=0, atol=1e-12)
    assert result["averageScoreClasses"] == pytest.approx(miou, abs=1e-12)


def _blocks(rng: np.random.Generator, h: int, w: int, values: np.ndarray, block: int) -> np.ndarray:
    small = rng.choice(values, size=(h // block, w // block))
    return np.kron(small, np.ones((block, block), dtype=small.dtype))


def test_generated_label_maps_match_the_official_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    gts, preds, gt_files, pred_files = [], [], [], []
    # every labelId 0..33, the ignored ones included; class "train" (labelId 31) never appears, so
    # one class is absent from the ground truth and is predicted on a few pixels only
    ids = np.array([i for i in range(34) if i != 31])
    for k in range(3):
        gt = _blocks(rng, 96, 192, ids, 8).astype(np.uint8)
        pred = label_to_train_table()[gt].astype(np.int64)
        pred[pred == 255] = rng.integers(0, 19, int((pred == 255).sum()))
        flip = rng.random(pred.shape) < 0.2
        pred[flip] = rng.integers(0, 18, int(flip.sum()))
        if k:
            pred[pred == 16] = 0  # trainId 16 ("train") predicted in the first image only
        g, p = _write(tmp_path, f"city_{k:06d}_000019", gt, pred)
        gts.append(gt), preds.append(pred), gt_files.append(g), pred_files.append(p)
    iou, miou = _ours(gts, preds)
    assert iou[16] == 0.0 and np.isnan(iou).sum() == 0  # predicted-only class: IoU 0 on both sides
    _check(_official(gt_files, pred_files), iou, miou)


def test_a_class_absent_everywhere_is_nan_on_both_sides(tmp_path):
    rng = np.random.default_rng(1)
    gt = _blocks(rng, 64, 128, np.array([7, 8, 11, 0]), 8).astype(np.uint8)  # road, sidewalk, building, void
    pred = label_to_train_table()[gt].astype(np.int64)
    pred[pred == 255] = 1
    g, p = _write(tmp_path, "city_000000_000019", gt, pred)
    iou, miou = _ours([gt], [pred])
    assert np.isnan(iou).sum() == 16  # 16 classes neither in ground truth nor in prediction
    _check(_official([g], [p]), iou, miou)


@pytest.mark.data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/cityscapes absent")
def test_sample_frames_match_the_official_evaluation(tmp_path):
    rng = np.random.default_rng(2)
    gts, preds, gt_files, pred_files = [], [], [], []
    for path in sorted(SHARED.glob("gtFine/*/*/*_gtFine_labelIds.png")):
        gt = np.array(Image.open(path))
        train = label_to_train_table()[gt].astype(np.int64)
        # a plausible prediction: the ground truth shifted by 6 px, ignored pixels filled, 5 % noise
        pred = np.roll(train, 6, axis=1)
        pred[pred == 255] = 0
        noise = rng.random(pred.shape) < 0.05
        pred[noise] = rng.integers(0, 19, int(noise.sum()))
        stem = path.name.removesuffix("_gtFine_labelIds.png")
        pred_path = tmp_path / "pred" / f"{stem}_pred.png"
        pred_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(TRAIN_TO_LABEL[pred]).save(pred_path)
        gts.append(gt), preds.append(pred), gt_files.append(path), pred_files.append(pred_path)
    assert gts, f"no *_gtFine_labelIds.png under {SHARED}"
    iou, miou = _ours(gts, preds)
    _check(_official(gt_files, pred_files), iou, miou)
