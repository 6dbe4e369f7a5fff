"""The refinement track's generated default (``big_synthetic``): contract, determinism, sizes, the
object's properties (one component, thin parts, holes) and the coarse sources."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.core.data_types import Sample
from bench.data import create_dataset, dataset_info
from bench.data.big_synthetic import (COARSE_SOURCES, KINDS, SIZES, BigSynthetic, downsampled, image_shape,
                                      perturbed)
from bench.evaluation.metrics import boundary_accuracy

SMALL = (1024, 768)  # half of every side of the default... halved again: 1024x768 .. 512x384
MID = (2048, 1536)   # the default scaled by 1/2 per side: 2048x1536 .. 1024x768


@cache
def samples(size: tuple[int, int], n: int = 5, split: str = "val") -> tuple[Sample, ...]:
    """The first ``n`` images of ``split`` at ``size`` (one of each kind), generated once per session."""
    ds = BigSynthetic(split=split, n_images=n, size=size)
    return tuple(ds[i] for i in range(n))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


def digest(ds: BigSynthetic) -> str:
    h = hashlib.sha256()
    for sample in ds:
        for arr in (sample.image, sample.label, *(sample.coarse[k] for k in COARSE_SOURCES)):
            h.update(arr.tobytes())
    return h.hexdigest()


def test_contract() -> None:
    train, val = create_dataset("big_synthetic", split="train"), create_dataset("big_synthetic", split="val")
    assert (len(train), len(val), len(create_dataset("big_synthetic", split="tune"))) == (16, 4, 4)
    assert val.image_size == (4096, 3072)
    info = dataset_info("big_synthetic")
    assert val.info == info and info.class_names == ("background", "object") and info.ignore_index is None
    assert val.coarse_sources == ("down8", "down16", "perturbed") == COARSE_SOURCES
    ds = BigSynthetic(split="val", n_images=2, size=(256, 192))
    assert ds.ids() == ["val_0000", "val_0001"]
    sample = ds[-1]
    assert sample.id == "val_0001"
    assert sample.image.shape == (96, 128, 3) and sample.image.dtype == np.uint8
    assert sample.label.dtype == np.uint8 and set(np.unique(sample.label)) == {0, 1}
    assert list(sample.coarse) == list(COARSE_SOURCES) and len(sample.coarse) == 3
    for name in COARSE_SOURCES:
        c = sample.coarse[name]
        assert c.shape == sample.label.shape and c.dtype == np.uint8 and set(np.unique(c)) <= {0, 1}
    with pytest.raises(KeyError):
        sample.coarse["backbone"]  # the harness's own pass, never given
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError, match="at least 32x32"):
        BigSynthetic(size=(16, 16))
    with pytest.raises(ValueError, match="n_images"):
        BigSynthetic(n_images=-1)


def test_sizes_at_the_default() -> None:
    shapes = [image_shape(i) for i in range(8)]
    assert all(max(s) >= 2048 for s in shapes)
    assert {(4096, 3072), (3840, 2160)} <= set(shapes[:4])  # some at 4K in every four (the val split)
    assert shapes[4:] == shapes[:4]
    assert image_shape(0, (2048, 1536)) == (2048, 1536) and image_shape(2, (1024, 768)) == (960, 540)
    # the generator draws at the shape it reports (the 2048x1536 image: the cheapest default one)
    sample = BigSynthetic(split="val", n_images=2)[1]
    assert sample.image.shape == (1536, 2048, 3) and sample.label.shape == (1536, 2048)
    assert (SIZES[1][1], SIZES[1][0]) == sample.label.shape


def test_sample_depends_only_on_seed_split_index_size() -> None:
    size = (320, 240)
    walked = list(BigSynthetic(split="train", n_images=6, size=size))
    alone = BigSynthetic(split="train", n_images=40, size=size)[5]  # n_images does not matter
    np.testing.assert_array_equal(alone.image, walked[5].image)
    np.testing.assert_array_equal(alone.label, walked[5].label)
    for name in COARSE_SOURCES:
        np.testing.assert_array_equal(alone.coarse[name], walked[5].coarse[name])
    other_seed = BigSynthetic(split="train", n_images=6, size=size, seed=1)[5]
    other_split = BigSynthetic(split="val", n_images=6, size=size)[5]
    assert not np.array_equal(other_seed.label, alone.label)
    assert not np.array_equal(other_split.image, alone.image)
    # the perturbation has its own generator: reading it first changes nothing else
    first = BigSynthetic(split="train", n_images=6, size=size)[5]
    np.testing.assert_array_equal(first.coarse["perturbed"], alone.coarse["perturbed"])
    np.testing.assert_array_equal(first.image, alone.image)
    again = pickle.loads(pickle.dumps(alone))
    np.testing.assert_array_equal(again.coarse["perturbed"], alone.coarse["perturbed"])


def test_identical_under_the_drift_gates_kernel_sets() -> None:
    """numpy without AVX2/AVX-512 and OpenCV at SSE4.2 (``make drift``'s settings) draw the same bytes."""
    ds = BigSynthetic(split="val", n_images=5, size=(512, 384))
    code = ("from bench.data.big_synthetic import BigSynthetic;"
            "from tests.test_big_synthetic import digest;"
            "print(digest(BigSynthetic(split='val', n_images=5, size=(512, 384))))")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4", "OPENCV_CPU_DISABLE": "AVX2,FMA3,AVX,FP16"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(ds)


def test_one_object_with_thin_parts_and_holes() -> None:
    """Every kind: one 8-connected object, some of it thinner than 5 px, and at least one hole."""
    opening = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    for index, sample in enumerate(samples(MID)):
        label = sample.label
        n, _ = cv2.connectedComponents(label, connectivity=8)
        assert n == 2, (KINDS[index], n - 1)
        # thin parts: pixels an opening with a 5x5 square removes (parts under 5 px wide)
        thin = 1 - np.count_nonzero(cv2.morphologyEx(label, cv2.MORPH_OPEN, opening)) / np.count_nonzero(label)
        assert thin > 0.005, (KINDS[index], thin)
        # holes: background components (4-connected) that do not touch the image border
        nb, comp = cv2.connectedComponents(1 - label, connectivity=4)
        border = set(np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))) - {0}
        assert nb - 1 - len(border) >= 1, KINDS[index]
        assert 0.005 < label.mean() < 0.5, (KINDS[index], label.mean())


def test_coarse_sources_are_plausible() -> None:
    """Each source differs from the ground truth but overlaps it; down16 loses more boundary than down8."""
    for index, sample in enumerate(samples(MID)):
        gt = sample.label
        scores = {k: iou(sample.coarse[k], gt) for k in COARSE_SOURCES}
        assert all(0.25 < v < 0.995 for v in scores.values()), (KINDS[index], scores)
        assert scores["down16"] <= scores["down8"], (KINDS[index], scores)
        ba8 = boundary_accuracy(gt, sample.coarse["down8"])
        ba16 = boundary_accuracy(gt, sample.coarse["down16"])
        assert ba16 < ba8, (KINDS[index], ba8, ba16)
        assert boundary_accuracy(gt, sample.coarse["perturbed"]) < 0.9


def test_downsampled_matches_opencv_bicubic_and_keeps_aligned_steps() -> None:
    rng = np.random.default_rng(0)
    # sides divisible by both factors: OpenCV's area + bicubic resizes see the same geometry as ours
    label = (cv2.resize(rng.random((12, 16)), (160, 128), interpolation=cv2.INTER_NEAREST) > 0.6).astype(np.uint8)
    label[40:43, 10:150] = 1  # a 3-px line: gone at 1/16
    for factor in (8, 16):
        # oracle: OpenCV's float bicubic of the block means (pixel centres aligned, a = -0.75)
        soft = cv2.resize(label.astype(np.float32), (160 // factor, 128 // factor), interpolation=cv2.INTER_AREA)
        ref = cv2.resize(soft, (160, 128), interpolation=cv2.INTER_CUBIC)
        ours = downsampled(label, factor)
        decided = np.abs(ref - 0.5) > 1e-4  # away from the threshold the two must agree
        np.testing.assert_array_equal(ours[decided], (ref[decided] > 0.5).astype(np.uint8))
    # a step on a block border survives exactly (symmetric about the border); off-border it moves
    step = np.zeros((64, 64), np.uint8)
    step[:, 32:] = 1
    np.testing.assert_array_equal(downsampled(step, 8), step)
    np.testing.assert_array_equal(downsampled(step, 16), step)
    # sizes that are not multiples of the factor: the edge is replicated, the shape kept
    odd = np.ones((37, 53), np.uint8)
    np.testing.assert_array_equal(downsampled(odd, 16), odd)


def test_perturbed_moves_the_boundary_and_keeps_holes() -> None:
    mask = np.zeros((600, 800), np.uint8)
    cv2.circle(mask, (400, 300), 200, 1, -1)
    cv2.circle(mask, (400, 300), 60, 0, -1)  # a hole
    out = perturbed(mask, np.random.default_rng(3))
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    assert 0.8 < iou(out, mask) < 0.995
    assert out[300, 400] == 0  # the hole stays a hole (hole contours are refilled as background)
    assert out[300, 250] == 1 and out[10, 10] == 0
    np.testing.assert_array_equal(out, perturbed(mask, np.random.default_rng(3)))
    assert not np.array_equal(out, perturbed(mask, np.random.default_rng(4)))


@pytest.mark.slow
def test_full_size_generation_is_fast() -> None:
    """A 4096x3072 image with its three coarse maps in well under the time a method takes on it."""
    import time

    start = time.perf_counter()
    sample = BigSynthetic(split="val", n_images=1)[0]
    maps = [sample.coarse[k] for k in COARSE_SOURCES]
    assert sample.image.shape == (3072, 4096, 3) and len(maps) == 3
    assert time.perf_counter() - start < 30


def test_track_config_sweeps_the_given_sources_and_the_backbone() -> None:
    from bench.pipeline.configure import load

    cfg = load("big_synthetic", {})
    assert cfg.track == "refinement" and cfg.reference_dir == "weights/big_synthetic" and not cfg.train
    given = [s for s in (cfg.coarse_sources or ()) if s != "backbone"]
    assert given == list(BigSynthetic.coarse_sources) and "backbone" in (cfg.coarse_sources or ())
    assert "downsample" in cfg.methods  # the "coarse" column of the track's tables
    ds = create_dataset("big_synthetic", split=cfg.split, **{**dict(cfg.data), "size": tuple(cfg.data["size"])})
    assert all(max(image_shape(i, ds.image_size)) >= 1024 for i in range(len(ds)))
