"""Paired bootstrap over images: constructed cases whose answer is known."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from bench.evaluation.metrics import iou_per_class, mean_iou
from bench.evaluation.significance import batched_miou, paired_bootstrap, resample_counts, stack_images

C = 3


def _cm(errors: int, per_class: int = 100) -> list[list[int]]:
    """A (C, C) matrix: ``per_class`` GT pixels per class, ``errors`` of them predicted as the next class."""
    cm = np.zeros((C, C), dtype=np.int64)
    for c in range(C):
        cm[c, c] = per_class - errors
        cm[c, (c + 1) % C] = errors
    return cm.tolist()


def _unit(errors, mbas, prefix="img"):
    """``{image_id: record}`` with one record per (errors, mba)."""
    return {f"{prefix}{i:03d}": {"image_id": f"{prefix}{i:03d}", "cm": _cm(e), "mba": m}
            for i, (e, m) in enumerate(zip(errors, mbas))}


def _noisy_pair(n=30, seed=0):
    """A better than B on every image: 5-9 vs 25-29 errors per class, mBA 0.70-0.75 vs 0.55-0.60."""
    rng = np.random.default_rng(seed)
    a = _unit(rng.integers(5, 10, n).tolist(), rng.uniform(0.70, 0.75, n).tolist())
    b = _unit(rng.integers(25, 30, n).tolist(), rng.uniform(0.55, 0.60, n).tolist())
    return a, b


def test_identical_methods_difference_zero():
    a, _ = _noisy_pair()
    res = paired_bootstrap(a, a, n_resamples=500)
    for d in (res.miou, res.mba):
        assert d.diff == 0.0 and d.low == 0.0 and d.high == 0.0
        assert d.low <= 0 <= d.high and not d.excludes_zero
    assert res.n_images == 30 and res.n_only_a == res.n_only_b == 0


def test_better_on_every_image_is_significant_with_the_right_sign():
    a, b = _noisy_pair()
    res = paired_bootstrap(a, b)
    assert res.miou.diff > 0.1 and res.miou.low > 0 and res.miou.excludes_zero
    assert res.mba.diff == pytest.approx(0.15, abs=0.02) and res.mba.low > 0 and res.mba.excludes_zero
    assert res.miou.low <= res.miou.diff <= res.miou.high
    swapped = paired_bootstrap(b, a)
    assert swapped.miou.high < 0 and swapped.miou.excludes_zero
    assert swapped.mba.high < 0 and swapped.mba.excludes_zero
    assert swapped.miou.diff == pytest.approx(-res.miou.diff)


def test_difference_from_a_single_image_is_not_significant():
    n = 40
    errors_a, errors_b = [10] * n, [10] * n
    mba_a, mba_b = [0.6] * n, [0.6] * n
    errors_a[7], errors_b[7] = 0, 60  # one image where A is far better
    mba_a[7], mba_b[7] = 0.95, 0.10
    res = paired_bootstrap(_unit(errors_a, mba_a), _unit(errors_b, mba_b))
    for d in (res.miou, res.mba):
        # the observed difference is clearly positive, but ~36 % of resamples miss that image
        assert d.diff > 0.005
        assert d.low <= 0 <= d.high and not d.excludes_zero


def test_same_seed_same_result_other_seed_other_result():
    a, b = _noisy_pair()
    r0 = paired_bootstrap(a, b, seed=0)
    assert paired_bootstrap(a, b, seed=0) == r0
    r1 = paired_bootstrap(a, b, seed=1)
    assert r1.miou.diff == r0.miou.diff and r1.mba.diff == r0.mba.diff
    assert (r1.miou.low, r1.miou.high) != (r0.miou.low, r0.miou.high)
    assert (r1.mba.low, r1.mba.high) != (r0.mba.low, r0.mba.high)
    assert r1.seed == 1 and r0.n_resamples == 1000


def test_pairing_on_image_ids_not_record_order():
    a, b = _noisy_pair()
    ref = paired_bootstrap(a, b, seed=3)
    recs_a, recs_b = list(a.values()), list(b.values())
    random.Random(1).shuffle(recs_a)
    random.Random(2).shuffle(recs_b)
    assert paired_bootstrap(recs_a, recs_b, seed=3) == ref
    # a reversed dict gives the same pairs too
    assert paired_bootstrap(dict(reversed(list(a.items()))), b, seed=3) == ref
    # pairing by position instead of id would pair A's images with other B images and differ
    by_position = {k: v for k, v in zip(a, recs_b)}
    assert paired_bootstrap(a, by_position, seed=3) != ref


def test_unpaired_images_are_left_out_and_counted():
    a, b = _noisy_pair(n=20)
    extra_a = dict(a, only_a={"cm": _cm(90), "mba": 0.0})
    extra_b = dict(b, only_b1={"cm": _cm(0), "mba": 1.0}, only_b2={"cm": _cm(0), "mba": 1.0})
    res = paired_bootstrap(extra_a, extra_b, seed=5)
    ref = paired_bootstrap(a, b, seed=5)
    assert (res.n_images, res.n_only_a, res.n_only_b) == (20, 1, 2)
    assert (res.miou, res.mba) == (ref.miou, ref.mba)


def test_observed_difference_uses_the_tables_policy():
    a, b = _noisy_pair(n=5)
    cms = lambda unit: np.sum([np.asarray(r["cm"]) for r in unit.values()], axis=0)  # noqa: E731
    for absent in ("nan", "zero"):
        for excluded in ((), (0,)):
            res = paired_bootstrap(a, b, absent=absent, excluded=excluded, n_resamples=10)
            want = (mean_iou(iou_per_class(cms(a), absent), excluded)
                    - mean_iou(iou_per_class(cms(b), absent), excluded))
            assert res.miou.diff == pytest.approx(want, abs=1e-15)


def test_excluded_class_does_not_count():
    # B confuses class 0 with class 2 only; with both excluded, the mean is class 1's IoU, equal
    a = {k: {"cm": [[10, 0, 0], [0, 10, 0], [0, 0, 10]], "mba": 0.5} for k in ("x", "y")}
    b = {k: {"cm": [[4, 0, 6], [0, 10, 0], [0, 0, 10]], "mba": 0.5} for k in ("x", "y")}
    assert paired_bootstrap(a, b, n_resamples=50).miou.diff > 0
    res = paired_bootstrap(a, b, excluded=(0, 2), n_resamples=50)
    assert res.miou.diff == 0.0 and not res.miou.excludes_zero


def test_absent_policy_changes_the_mean():
    # class 2 is absent from every image: "nan" leaves it out, "zero" scores it 0
    a = {"x": {"cm": [[5, 0, 0], [0, 5, 0], [0, 0, 0]], "mba": None}}
    b = {"x": {"cm": [[5, 5, 0], [0, 5, 0], [0, 0, 0]], "mba": None}}
    nan = paired_bootstrap(a, b, absent="nan", n_resamples=20)
    zero = paired_bootstrap(a, b, absent="zero", n_resamples=20)
    assert nan.miou.diff == pytest.approx(1.0 - (0.5 + 0.5) / 2)
    assert zero.miou.diff == pytest.approx((2 - 1.0) / 3)
    assert np.isnan(nan.mba.diff) and np.isnan(nan.mba.low) and not nan.mba.excludes_zero


def test_interval_of_an_enumerable_case():
    # two images, identical cms, mBA differences 0.1 and 0.3: the resampled mean difference is
    # 0.1, 0.2 or 0.3 with probabilities 1/4, 1/2, 1/4, so the 2.5/97.5 percentiles are 0.1, 0.3
    a = {"p": {"cm": _cm(1), "mba": 0.6}, "q": {"cm": _cm(1), "mba": 0.8}}
    b = {"p": {"cm": _cm(1), "mba": 0.5}, "q": {"cm": _cm(1), "mba": 0.5}}
    res = paired_bootstrap(a, b, n_resamples=4000)
    assert res.mba.diff == pytest.approx(0.2)
    assert res.mba.low == pytest.approx(0.1) and res.mba.high == pytest.approx(0.3)
    assert res.mba.excludes_zero


def test_images_without_boundary_are_skipped_in_mba():
    a = {"p": {"cm": _cm(1), "mba": 0.9}, "q": {"cm": _cm(1), "mba": None}, "r": {"cm": _cm(1), "mba": float("nan")}}
    b = {"p": {"cm": _cm(1), "mba": 0.5}, "q": {"cm": _cm(1), "mba": 0.1}, "r": {"cm": _cm(1), "mba": 0.1}}
    res = paired_bootstrap(a, b, n_resamples=200)
    assert res.mba.diff == pytest.approx(0.9 - (0.5 + 0.1 + 0.1) / 3)
    assert np.isfinite(res.mba.low) and np.isfinite(res.mba.high)


def test_resample_counts_match_index_arrays():
    counts = resample_counts(7, 50, seed=4)
    assert counts.shape == (50, 7) and (counts.sum(1) == 7).all()
    idx = np.random.default_rng(4).integers(0, 7, size=(50, 7))
    cms = np.random.default_rng(9).integers(0, 100, (7, C, C))
    np.testing.assert_array_equal(np.einsum("bn,nij->bij", counts, cms), cms[idx].sum(1))


@pytest.mark.parametrize("absent", ["nan", "zero"])
@pytest.mark.parametrize("excluded", [(), (1,), (0, 1, 2, 3)])
def test_batched_miou_matches_metrics(absent, excluded):
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 50, (40, 4, 4))
    cms[::3, 2, :] = 0  # class 2 absent from some matrices
    cms[::3, :, 2] = 0
    cms[5] = 0  # an empty matrix: every class absent
    want = np.array([mean_iou(iou_per_class(m, absent), excluded) for m in cms])
    np.testing.assert_allclose(batched_miou(cms, absent, excluded), want, rtol=0, atol=1e-12, equal_nan=True)


def test_bad_input_is_reported():
    a, b = _noisy_pair(n=3)
    with pytest.raises(ValueError, match="no image in common"):
        paired_bootstrap(a, _unit([1], [0.5], prefix="other"))
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(a, b, n_resamples=0)
    with pytest.raises(ValueError, match="appears twice"):
        paired_bootstrap(list(a.values()) * 2, b)
    with pytest.raises(ValueError, match="classes"):
        paired_bootstrap({"img000": {"cm": [[1, 0], [0, 1]], "mba": 0.5}}, b)
    with pytest.raises(ValueError, match="no confusion matrix"):
        stack_images({"x": {"mba": 0.5}}, ["x"])
    with pytest.raises(ValueError, match="absent"):
        paired_bootstrap(a, b, absent="skip")


def test_fast_enough_for_hundreds_of_images():
    # 1000 resamples of 300 images with 19 classes take ~25 ms here; the bound only catches a
    # fall-back to per-resample Python loops or the (B, N, C, C) intermediate
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 1000, (300, 19, 19))
    a = {f"i{k}": {"cm": cms[k].tolist(), "mba": 0.5} for k in range(300)}
    b = {f"i{k}": {"cm": (cms[k] + np.eye(19, dtype=np.int64) * 50).tolist(), "mba": 0.6} for k in range(300)}
    start = time.perf_counter()
    res = paired_bootstrap(b, a)
    assert time.perf_counter() - start < 3.0
    assert res.miou.excludes_zero and res.mba.excludes_zero


def test_marks_follow_the_sign_of_the_interval():
    from bench.evaluation.significance import DiffInterval
    from bench.report.table_format import HIGHER, LOWER
    from bench.report.table_notes import mark

    a, b = _noisy_pair()
    assert mark(paired_bootstrap(a, b).miou) == HIGHER == "†"
    # A significantly worse than B: never the mark that reads "better"
    assert mark(paired_bootstrap(b, a).miou) == LOWER == "↓"
    assert mark(paired_bootstrap(a, a).mba) == ""
    assert mark(DiffInterval(-0.0702, -0.0879, -0.0502, True)) == LOWER  # MagNet-Fast (paper)'s mBA case
    assert mark(DiffInterval(0.01, -0.002, 0.03, False)) == ""
