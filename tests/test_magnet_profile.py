"""perf.magnet_profile on a tiny image with the light backbone (in-process child run)."""

from __future__ import annotations

import pytest
import torch

from perf.magnet_profile import _child, _parser, _table


def test_profile_child_splits_refine_time():
    threads = torch.get_num_threads()
    try:
        args = _parser().parse_args(["--backbone", "light", "--classes", "4", "--image", "256x128", "--input", "32x16",
                                     "--n-points", "256", "--threads", "1", "--child", "3", "--repeats", "3"])
        row = _child(args)
    finally:
        torch.set_num_threads(threads)
    assert row["batch_size"] == 3 and row["patch_forwards"] == 4 + 16 + 64 and row["repeats"] == 3
    assert row["refine_s"] == pytest.approx(row["backbone_s"] + row["refiner_s"] + row["other_s"])
    assert min(row["backbone_s"], row["refiner_s"], row["peak_rss_mb"]) > 0
    assert "| 3 | 84 |" in _table([row])
