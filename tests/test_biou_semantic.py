"""Boundary IoU in the semantic tables (issue 22 item 4): per-image band counts in the records
(``score_image``), pooled over the images like the confusion matrix (``aggregate``, ``SegEvaluator``),
the absent and excluded policies of the mIoU, the dilation ratio named in every caption, and
records written before Boundary IoU existed still rendered.

The expected values come from an independent brute-force form of the definition written here
(a pixel is in the band of class c when it is c and some pixel within Chebyshev distance d is not
c or lies outside the image), and from the spec's hand counts of TV6, never from the code under test.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from bench.core.config import build
from bench.core.interface import DatasetInfo
from bench.evaluation.metrics import SegEvaluator, confusion_matrix
from bench.pipeline.unit import score_image
from bench.report.table_format import to_latex, to_markdown
from bench.report.table_model import aggregate
from bench.report.tables import build_all_tables, collect

INFO = DatasetInfo("toy", ("road", "pole", "sky", "car"), 255, ((0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)))
PROV = {"device_name": "Test CPU", "threads": 1}


# --- an independent form of the definition ----------------------------------------------------------

def _d(h, w, ratio):
    return max(1, int(round(ratio * math.sqrt(h * h + w * w))))


def _band(mask, d):
    """Brute force: in the mask, and some pixel of the (2d+1)^2 square around it is outside it or the image."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            y0, y1, x0, x1 = y - d, y + d + 1, x - d, x + d + 1
            inside = y0 >= 0 and x0 >= 0 and y1 <= h and x1 <= w
            out[y, x] = not inside or not mask[y0:y1, x0:x1].all()
    return out


def _counts(gt, pred, classes, ratio, ignore=255):
    d = _d(*gt.shape, ratio)
    valid = gt != ignore
    inter, union = np.zeros(classes, int), np.zeros(classes, int)
    for c in range(classes):
        bg, bp = _band(gt == c, d) & valid, _band(pred == c, d) & valid
        inter[c], union[c] = (bg & bp).sum(), (bg | bp).sum()
    return inter, union


def _pooled(pairs, classes, ratio, absent="nan", excluded=()):
    inter = sum(_counts(g, p, classes, ratio)[0] for g, p in pairs)
    union = sum(_counts(g, p, classes, ratio)[1] for g, p in pairs)
    vals = [inter[c] / union[c] if union[c] else (0.0 if absent == "zero" else None) for c in range(classes)]
    kept = [v for c, v in enumerate(vals) if c not in excluded and v is not None]
    return sum(kept) / len(kept)


# --- a handmade 2-image example ---------------------------------------------------------------------

def _tv6():
    """The spec's TV6 (10x10, classes 0-2): per class I/U 26/42, 10/20, 16/34."""
    gt = np.zeros((10, 10), np.uint8)
    gt[:, 5:] = 2
    gt[2:8, 1:4] = 1
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 6:] = 2
    pred[2:8, 1:5] = 1
    return gt, pred


def _second():
    """60x40 (d = 1 at 0.02: 0.02 * 72.1 = 1.44; d = 3 at 0.05): a sky band, a pole, a car only in the
    prediction, an ignored strip; class 3 is absent from image 1."""
    gt = np.zeros((40, 60), np.uint8)
    gt[:12, :] = 2
    gt[15:35, 20:26] = 1
    gt[36:, 50:] = 255
    pred = np.zeros((40, 60), np.uint8)
    pred[:14, :] = 2
    pred[16:35, 21:28] = 1
    pred[25:30, 40:52] = 3
    return gt, pred


def _pairs():
    return [_tv6(), _second()]


def _records(pairs, ratio=0.02, key="k1", display="Downsample", info=INFO):
    recs = []
    for i, (gt, pred) in enumerate(pairs):
        scored = score_image(SimpleNamespace(label=gt), pred, info, ratio)
        recs.append({"type": "image", "unit_key": key, "image_id": f"img{i}", "status": "ok", "time_ms": 10.0 + i,
                     "mem_peak_delta_mib": 5.0, "mem_method": "rss_hwm_reset", "provenance": PROV,
                     "display_name": display, **scored})
    return recs


def test_tv6_counts_in_the_record():
    # the spec's hand counts, through the record the runner writes
    gt, pred = _tv6()
    rec = score_image(SimpleNamespace(label=gt), pred, INFO)
    assert rec["biou_inter"] == [26, 10, 16, 0] and rec["biou_union"] == [42, 20, 34, 0]
    assert rec["biou_ratio"] == 0.02


def test_pooled_equals_an_independent_per_class_computation():
    recs = _records(_pairs())
    res = aggregate(recs, "k1", "downsample", "10x10", INFO, "nan", (), "Downsample")
    expected = _pooled(_pairs(), 4, 0.02)
    assert res.biou == pytest.approx(expected, abs=1e-12)
    assert res.biou_ratio == 0.02 and res.biou_missing == 0
    # catches: a mean of per-image values instead of summed counts (0.363 vs 0.226 here)
    per_image = np.nanmean([_pooled([p], 4, 0.02) for p in _pairs()])
    assert abs(per_image - expected) > 0.01
    # the accumulator of bench.evaluation.metrics pools the same way
    ev = SegEvaluator(4, ignore_index=255)
    for gt, pred in _pairs():
        ev.update(gt, pred)
    out = ev.compute()
    assert out["mbiou"] == pytest.approx(expected, abs=1e-12) and out["biou_images"] == 2


def test_the_dilation_ratio_reaches_the_band_width():
    # second image at 0.05: d = round(3.6) = 4, against 1 at 0.02: catches a ratio ignored (or d fixed)
    pairs = [_second()]
    at_05 = aggregate(_records(pairs, 0.05), "k1", "downsample", "60x40", INFO, "nan", (), "D")
    at_02 = aggregate(_records(pairs, 0.02), "k1", "downsample", "60x40", INFO, "nan", (), "D")
    assert at_05.biou == pytest.approx(_pooled(pairs, 4, 0.05), abs=1e-12)
    assert at_02.biou == pytest.approx(_pooled(pairs, 4, 0.02), abs=1e-12)
    assert abs(at_05.biou - at_02.biou) > 0.02 and at_05.biou_ratio == 0.05


def test_absent_and_excluded_follow_the_miou_policies():
    # class 3 (car) never appears in image 0 and only in image 1's prediction: union > 0, IoU 0.
    # In image 0 alone it is absent from both maps: left out ("nan") or scored 0 ("zero")
    pairs = [_tv6()]
    nan = aggregate(_records(pairs), "k1", "d", "10x10", INFO, "nan", (), "D")
    zero = aggregate(_records(pairs), "k1", "d", "10x10", INFO, "zero", (), "D")
    assert np.isnan(nan.biou_class[3]) and zero.biou_class[3] == 0.0
    assert nan.biou == pytest.approx((26 / 42 + 10 / 20 + 16 / 34) / 3)
    assert zero.biou == pytest.approx((26 / 42 + 10 / 20 + 16 / 34) / 4)
    excl = aggregate(_records(pairs), "k1", "d", "10x10", INFO, "nan", (0,), "D")
    assert excl.biou == pytest.approx((10 / 20 + 16 / 34) / 2)


def _cfg(**over):
    return build({"dataset": "synthetic", "input_size": "64x32", "methods": ["downsample", "magnet"],
                  "table1_methods": ["downsample"], "bootstrap": 0, "data.size": [60, 40], **over})


def _tables(recs_by_key, **over):
    cfg = _cfg(**over)
    keys = {("downsample", (64, 32)): "k1", ("magnet", (64, 32)): "k2"}
    recs = [r for rs in recs_by_key for r in rs]
    return build_all_tables(cfg, INFO, collect(cfg, INFO, keys, recs))


def test_biou_column_and_ratio_in_every_caption():
    perfect = [(g, np.where(g == 255, 0, g)) for g, _ in _pairs()]
    t1, t2, t3, comp = _tables([_records(_pairs(), key="k1"), _records(perfect, key="k2", display="MagNet")])
    expected = f"{100 * _pooled(_pairs(), 4, 0.02):.2f}"
    for t, col in ((t1, 4), (t3, 3)):
        assert t.header[col] == "BIoU (%)" and t.header[col - 1] == "mBA (%)"
        # the "perfect" row is below 100: its prediction fills the ignored strip, whose pixels still bound
        # the ground truth's class 0 (the spec's geometry), so the class-0 bands differ next to it
        assert t.rows[0][col] == expected and t.rows[-1][col] == f"{100 * _pooled(perfect, 4, 0.02):.2f}" != "100.00"
        assert "dilation ratio 0.02" in t.caption
        assert "BIoU: Boundary IoU" in t.text and "d = 1 px at 60x40" in t.text
    assert t2.header[2] == "BIoU (%)" and t2.rows[0][2] == f"{100 * _pooled(_pairs(), 4, 0.02):.1f}"
    assert "dilation ratio 0.02" in t2.caption
    assert "BIoU (%)" not in comp.header
    assert "| BIoU (%) |" in to_markdown(t3) and "BIoU" in to_latex(t3)


def test_cityscapes_ratio_named_in_the_caption():
    t3 = _tables([_records(_pairs(), 0.005, key="k1")], biou_ratio=0.005)[2]
    assert "dilation ratio 0.005" in t3.caption and t3.rows[0][3] == f"{100 * _pooled(_pairs(), 4, 0.005):.2f}"


def test_old_records_render_without_the_column_and_say_why():
    old = [{k: v for k, v in r.items() if not k.startswith("biou")} for r in _records(_pairs())]
    for t in _tables([old])[:3]:
        assert "BIoU (%)" not in t.header and "dilation ratio" not in t.caption
        assert "BIoU not shown: no row's records hold Boundary IoU counts at dilation ratio 0.02" in t.text
        to_latex(t), to_markdown(t)


def test_a_row_without_counts_shows_a_dash_and_is_named():
    old = [{k: v for k, v in r.items() if not k.startswith("biou")} for r in _records(_pairs(), key="k2",
                                                                                          display="MagNet")]
    t3 = _tables([_records(_pairs(), key="k1"), old])[2]
    assert t3.rows[0][3] != "–" and t3.rows[1][3] == "–"
    assert "for MagNet: records without counts at ratio 0.02" in t3.text


def test_records_at_another_ratio_are_not_shown_as_this_ratio():
    # records scored at 0.02, tables asked for 0.005: never print the 0.02 value under a 0.005 caption
    t3 = _tables([_records(_pairs(), 0.02, key="k1")], biou_ratio=0.005)[2]
    assert "BIoU (%)" not in t3.header and "at dilation ratio 0.005" in t3.text


def test_mixed_ratios_within_a_unit_are_not_pooled():
    recs = _records([_tv6()], 0.02) + [dict(r, image_id="img9") for r in _records([_second()], 0.05)]
    res = aggregate(recs, "k1", "d", "10x10", INFO, "nan", (), "D")
    assert np.isnan(res.biou) and res.biou_ratio is None


def test_record_confusion_matrix_unchanged():
    # the BIoU fields are added beside the confusion matrix, which stays what it was
    gt, pred = _second()
    rec = score_image(SimpleNamespace(label=gt), pred, INFO)
    assert rec["cm"] == confusion_matrix(gt, pred, 4, 255).tolist()


def test_seg_evaluator_ratio_option_and_skip():
    gt, pred = _second()
    skip = SegEvaluator(4, biou_ratio=None)
    skip.update(gt, pred)
    out = skip.compute()
    assert out["biou_images"] == 0 and np.isnan(out["mbiou"]) and out["miou"] == out["miou"]
    wide = SegEvaluator(4, biou_ratio=0.05)
    wide.update(gt, pred)
    assert wide.compute()["mbiou"] == pytest.approx(_pooled([(gt, pred)], 4, 0.05), abs=1e-12)
    with pytest.raises(ValueError, match="biou_ratio"):
        SegEvaluator(4, biou_ratio=0.0)
    with pytest.raises(ValueError, match="absent"):
        SegEvaluator(4, absent="maybe")
