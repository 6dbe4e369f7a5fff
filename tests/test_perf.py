"""``python -m perf``: the FLOP counter on hand-counted models and the script's structure (no timing)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

import perf
from bench.report.perf_render import render
from perf.cli import carry_over


def test_flop_counter_counts_conv_and_linear_by_hand():
    """Conv 3->4, 3x3, 8x8 output, bias: 256 outputs * (2*27 + 1); Linear 256->10 with bias: 10 * (2*256 + 1)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)).eval()
    flops = perf.count_flops(model, torch.randn(1, 3, 8, 8))
    assert flops["conv_linear"] == 256 * 55 + 10 * 513
    assert flops["flop_counter"] == 2 * 256 * 27 + 2 * 256 * 10  # torch's counter: no bias adds
    grouped = nn.Conv2d(4, 8, 1, groups=2, bias=False).eval()
    assert perf.count_flops(grouped, torch.randn(2, 4, 5, 5))["conv_linear"] == 2 * 8 * 25 * 2 * 2


def test_flop_counter_counts_the_model_not_its_inference_copy():
    model = perf.calibrated_backbone("hrnet18_small_v2_ocr", 19, size=(32, 16))
    model.inference_copy = True  # opted in: the counter must still count the model's own layers
    x = torch.randn(1, 3, 16, 32)
    flops = perf.count_flops(model, x)
    assert model.inference_copy is True  # restored
    # the 3x3 270->512 OCR conv alone: 2 * 512 * 270 * 9 per pixel
    assert flops["flop_counter"] > 2 * 512 * 270 * 9 * 16 * 32
    # the hooks see the convolutions only (no attention products), torch's counter no bias adds
    assert flops["conv_linear"] > 2 * 512 * 270 * 9 * 16 * 32
    assert abs(flops["conv_linear"] - flops["flop_counter"]) < 0.05 * flops["flop_counter"]


def test_backbone_variants_and_alternation():
    model = perf.calibrated_backbone("light", 3)
    assert any(isinstance(m, nn.BatchNorm2d) and m.running_var.std() > 0 for m in model.modules())
    x = torch.randn(2, 3, 32, 64)
    fns = perf.backbone_variants(model)
    assert set(fns) == {"reference", "exact", *perf.BACKBONE_VARIANTS, "only_packed_weights", "only_inplace_relu",
                        "only_direct_concat"}
    with torch.inference_mode():
        times, last = perf.alternate({k: (lambda f=f: f(x)) for k, f in fns.items()}, 2)
    for k in fns:
        assert times[k]["n"] == 2 and len(times[k]["all_ms"]) == 2 and times[k]["median"] > 0
        torch.testing.assert_close(last[k], last["reference"], atol=1e-4, rtol=1e-4)
    assert torch.equal(last["exact"], last["reference"])


def _tiny_args(tmp_path) -> argparse.Namespace:
    args = perf.parser().parse_args([
        "--repeats", "1", "--magnet-repeats", "1", "--gf-channels", "2", "--gf-size", "40x24", "--dgf-coarse", "10x6",
        "--backbone", "light", "--classes", "3", "--input", "32x16", "--image", "64x32", "--matmul-n", "64",
        "--no-memory", "--out", str(tmp_path / "perf.json")])
    args.argv, args.sections = ["--tiny"], {"gf", "dgf", "backbone"}
    return args


def test_run_structure_and_render(tmp_path):
    results = perf.run(_tiny_args(tmp_path))
    assert results["fingerprint"] and results["provenance"]["threads"] == 2
    assert torch.get_num_threads() == 1  # restored after the run
    gf = results["guided_filter"]
    assert set(gf["times_ms"]) == {"reference", "ours", "ours_conv_path", "grey_guide_cv2"}
    assert gf["max_abs_diff_vs_reference"] <= 1e-4 and gf["speedup_vs_reference"] > 0
    assert gf["max_abs_err_float64"]["ours"] < 1e-5
    assert results["dgf"]["label_pixels_changed"] <= 2 and results["dgf"]["pixels"] == 40 * 24
    bb = results["backbone"]
    assert set(bb["variants"]) == {"reference", "exact", *perf.BACKBONE_VARIANTS}
    assert bb["variants"]["reference"]["speedup_vs_reference"] == pytest.approx(1.0)
    assert bb["variants"]["exact"]["bitwise_equal"] and bb["variants"]["exact"]["label_pixels_changed"] == 0
    assert all(0 < v["fraction_of_peak"] for v in bb["variants"].values())
    assert len(bb["peak_gflops_per_round"]) == 1 and bb["peak_gflops_per_round"][0] > 0  # one round, one peak
    text = render(json.loads(json.dumps(results, default=str)))
    assert "guided-filter-pytorch" in text and "| fold+channels_last |" in text and "DGF's filtering step" in text
    assert "| exact |" in text


@pytest.mark.slow
def test_magnet_section_structure(tmp_path):
    """MagNet and MagNet-Fast calls on the light backbone (about a minute: oneDNN builds kernels per shape)."""
    args = _tiny_args(tmp_path)
    args.sections = {"magnet"}
    results = perf.run(args)
    methods = results["magnet"]["methods"]
    assert set(methods) == {"magnet", "magnet_fast"}
    for m in methods.values():
        assert m["pixels"] == 64 * 32 and set(m["variants"]) == {"reference", "exact"}
        assert m["variants"]["exact"]["probs_bitwise_equal"] and m["variants"]["exact"]["label_pixels_changed"] == 0
    text = render(results)
    assert "| magnet_fast | exact |" in text and "not measured" in text  # --no-memory


def test_readme_block_renders_from_the_json(tmp_path):
    from bench.cli.readme_blocks import render_into

    results = perf.run(argparse.Namespace(**{**vars(_tiny_args(tmp_path)), "sections": {"gf"}}))
    text = render(results)
    readme = "a\n<!-- bench:perf -->\nold\n<!-- /bench:perf -->\nb\n"
    new, unknown = render_into(readme, {"perf": text})
    assert unknown == [] and text.strip() in new and "old" not in new


def test_sections_not_rerun_are_carried_over_with_their_origin():
    previous = {"command": "python -m perf --old", "provenance": {"git_sha": "abc123"}, "dgf": {"speedup": 3.0},
                "backbone": {"old": True}}
    results = carry_over({"command": "new", "backbone": {"new": True}}, previous)
    assert results["backbone"] == {"new": True}  # rerun: the new one
    assert results["dgf"]["speedup"] == 3.0
    assert results["dgf"]["carried_over_from"] == {"command": "python -m perf --old", "git_sha": "abc123"}
    # carried twice: the origin stays the first run's
    again = carry_over({"command": "newer"}, results)
    assert again["dgf"]["carried_over_from"]["git_sha"] == "abc123"
