"""Aggregates over images on fixtures where the mean and the median differ.

With two images the mean and the median of any per-image value coincide, so the tables' other
fixtures (and the drift gate, which runs two images) cannot tell them apart. Here every aggregate
over images sees at least three unequal values, and every expected number is computed by hand in
the comments (no value is read back from the code under test).

Definitions (``bench.runtime.measure`` and ``bench.report.table_model`` docstrings; the paper's
Table 3 reports the median time and the mean mBA over images):

- time: median over images (headline), IQR = q75 - q25 with numpy's default linear percentile
  (Hyndman-Fan type 7), and the mean;
- mBA: arithmetic mean over the images that have one;
- mIoU: from the confusion matrix summed over images (dataset level, not a mean of per-image IoUs);
- memory: the largest per-image peak.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core.interface import DatasetInfo
from bench.report.table_model import aggregate, fmt_time_ms, fmt_time_s
from bench.runtime.measure import summarize

INFO = DatasetInfo("toy", ("a", "b"), 255, ((0, 0, 0), (1, 1, 1)))


def test_summarize_median_iqr_and_mean_by_hand():
    # sorted 10, 11, 13, 40: median (11 + 13) / 2 = 12; mean 74 / 4 = 18.5
    # type-7 quantiles: position p * (n - 1); q25 at 0.75 -> 10 + 0.75 * 1 = 10.75,
    # q75 at 2.25 -> 13 + 0.25 * 27 = 19.75; IQR 9.0
    s = summarize([40.0, 10.0, 11.0, 13.0])
    assert s == {"median": 12.0, "iqr": 9.0, "mean": 18.5, "n": 4}


def test_summarize_odd_count_and_unfinished_values():
    # None and NaN (an image whose time was not taken) are left out: 3, 5, 100 remain
    s = summarize([100.0, None, 3.0, float("nan"), 5.0])  # type: ignore[list-item]
    assert s["n"] == 3 and s["median"] == 5.0 and s["mean"] == pytest.approx(36.0)
    # q25 at position 0.5 -> 3 + 0.5 * 2 = 4; q75 at 1.5 -> 5 + 0.5 * 95 = 52.5; IQR 48.5
    assert s["iqr"] == pytest.approx(48.5)
    empty = summarize([])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("median", "iqr", "mean"))


def _rec(image_id, cm, mba, t, mem):
    return {"type": "image", "unit_key": "k", "image_id": image_id, "status": "ok", "cm": cm, "mba": mba,
            "time_ms": t, "mem_peak_delta_mib": mem, "mem_method": "rss_hwm_reset",
            "provenance": {"device_name": "Test CPU", "threads": 1}, "display_name": "M"}


# three images with unequal values: mean != median for mBA and for time
THREE = [
    _rec("i0", [[4, 0], [0, 4]], 0.2, 10.0, 30.0),
    _rec("i1", [[3, 1], [1, 3]], 0.3, 11.0, 50.0),
    _rec("i2", [[2, 2], [0, 4]], 0.7, 40.0, 20.0),
]


def test_unit_mba_is_the_mean_over_images_and_time_the_median():
    res = aggregate(THREE, "k", "m", "4x2", INFO, "nan", (), "M")
    assert res.n_images == 3
    assert res.mba == pytest.approx((0.2 + 0.3 + 0.7) / 3)  # 0.4; the median would be 0.3
    assert res.time["median"] == 11.0  # the mean would be 61 / 3 = 20.33
    assert res.time["mean"] == pytest.approx(61 / 3)
    assert res.memory == 50.0  # the largest peak, not the last or the mean
    # summed matrix [[9, 3], [1, 11]]: IoU a = 9 / (9 + 3 + 1) = 9/13, IoU b = 11 / (11 + 1 + 3) = 11/15
    assert res.miou == pytest.approx((9 / 13 + 11 / 15) / 2)
    # the printed cells take the median: "11 (IQR)" ms and 0.011 s
    # q25 at 0.5 -> 10.5, q75 at 1.5 -> 25.5: IQR 15
    assert fmt_time_ms(res) == "11 (15)" and fmt_time_s(res) == "0.011"


def test_mba_mean_skips_images_without_one():
    recs = [*THREE, _rec("i3", [[4, 0], [0, 4]], None, 12.0, 10.0), _rec("i4", [[4, 0], [0, 4]], float("nan"), 13.0, 10.0)]
    res = aggregate(recs, "k", "m", "4x2", INFO, "nan", (), "M")
    assert res.mba == pytest.approx(0.4) and res.mba_skipped == 2
    # times 10, 11, 12, 13, 40: median 12 (mean 17.2)
    assert res.time["median"] == 12.0


def test_mean_iou_is_not_a_mean_of_per_image_ious():
    # image 0 all class a (4 px right), image 1 class b missed entirely (4 px of b called a)
    recs = [_rec("i0", [[4, 0], [0, 0]], 0.5, 1.0, 1.0), _rec("i1", [[0, 0], [4, 0]], 0.5, 1.0, 1.0),
            _rec("i2", [[0, 0], [0, 4]], 0.5, 1.0, 1.0)]
    res = aggregate(recs, "k", "m", "4x2", INFO, "nan", (), "M")
    # summed [[4, 0], [4, 4]]: IoU a = 4 / 8, IoU b = 4 / 8 -> 0.5; a mean of per-image mIoUs differs
    assert res.miou == pytest.approx(0.5)
    assert np.allclose(res.iou, [0.5, 0.5])
