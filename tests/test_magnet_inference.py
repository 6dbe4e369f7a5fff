"""The progressive loop and the MagNet methods on the light backbone with random weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.models.coarse import compute_coarse
from bench.core.config import parse_size
from bench.core.interface import Coarse, MethodContext, normalize
from magnet.config import MagNetConfig, MagNetFastConfig, check_coarse_scale, resolve_plan
from magnet.geometry import patch_boxes
from magnet.inference import progressive
from magnet.method import MagNet, MagNetFast
from magnet.refinement import RefinementModule

SCALES = ((32, 16), (64, 32), (128, 64), (256, 128))  # the Cityscapes structure at 1/8 per side


class SpyRefiner(torch.nn.Module):
    """Returns log(fine), so the refined patch is the backbone's softmax; records batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        self.batches.append(fine.shape[0])
        return fine.clamp_min(1e-30).log()


def random_refiner(c: int, seed: int) -> RefinementModule:
    torch.manual_seed(seed)
    module = RefinementModule(c)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is as fast, and immune to a busy shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ctx(tiny_ctx) -> MethodContext:
    return replace(tiny_ctx, image_size=(256, 128))


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 255, (8, 16, 3))
    noise = rng.normal(0, 25, (128, 256, 3))
    return np.clip(np.kron(blocks, np.ones((16, 16, 1))) + noise, 0, 255).astype(np.uint8)


def _cfg(cls: type, **kw) -> MagNetConfig:
    return cls.Config(**{"n_points": 96, "mask_inset": 2, "refiner_batch_size": 0, **kw})


def test_batched_equals_one_at_a_time(ctx, image):
    refiners = [random_refiner(4, s) for s in range(3)]
    coarse = compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device)
    for cls, extra in ((MagNet, {}), (MagNetFast, {"n_patches": 3}), (MagNetFast, {"n_patches": 3, "behaviour": "paper"})):
        outs = []
        for batch, refiner_batch in ((1, 1), (5, 0)):  # 5 leaves partial batches at every stage
            method = cls(_cfg(cls, batch_size=batch, refiner_batch_size=refiner_batch, **extra), ctx, refiners=refiners)
            with torch.inference_mode():
                y = progressive(image, coarse.probs, method.plan, method.opts, ctx.backbone, method.refiners)
            outs.append((y, method.refine(image, coarse)))
        (y1, labels1), (y5, labels5) = outs
        torch.testing.assert_close(y5, y1, atol=1e-6, rtol=0)
        assert torch.equal(labels5, labels1)
        assert torch.equal(labels1, torch.nn.functional.interpolate(y1[None], size=(128, 256), mode="bilinear",
                                                                    align_corners=False)[0].argmax(0))
        plain = cls(_cfg(cls, batch_size=1, fuse_refiner=False, **extra), ctx, refiners=refiners)
        with torch.inference_mode():
            y_plain = progressive(image, coarse.probs, plain.plan, plain.opts, ctx.backbone, plain.refiners)
        torch.testing.assert_close(y_plain, y1, atol=1e-5, rtol=0)  # folded BN: rounding-level only


def test_all_points_with_a_pass_through_refiner_is_patch_inference(ctx, image):
    """n_points = 1.0 replaces every pixel at every stage: the result is the last stage's tiles."""
    spy = SpyRefiner()
    method = MagNet(_cfg(MagNet, n_points=1.0, n_refiners=1, batch_size=4), ctx, refiners=[spy])
    coarse = compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device)
    out = method.refine(image, coarse)
    assert spy.batches == [4] + [4] * 4 + [4] * 16  # 4, 16, 64 patches in batches of 4, one refiner
    with torch.no_grad():
        for x1, y1, x2, y2 in patch_boxes((256, 128), (32, 16)).tolist()[::7]:
            direct = ctx.backbone(normalize(image[y1:y2, x1:x2])).argmax(1)[0]
            assert torch.equal(out[y1:y2, x1:x2], direct)


def test_stage_one_is_the_given_coarse_map(ctx, image):
    method = MagNet(_cfg(MagNet, n_patches=0), ctx, refiners=[SpyRefiner()] * 3)
    probs = torch.softmax(torch.randn(4, 16, 32), 0)
    up = torch.nn.functional.interpolate(probs[None], size=(128, 256), mode="bilinear", align_corners=False)[0]
    assert torch.equal(method.refine(image, Coarse(probs)), up.argmax(0))


def test_each_stage_uses_its_refiner_and_fast_processes_n_patches(ctx, image):
    spies = [SpyRefiner() for _ in range(3)]
    coarse = compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device)
    MagNet(_cfg(MagNet, batch_size=64), ctx, refiners=spies).refine(image, coarse)
    assert [s.batches for s in spies] == [[4], [16], [64]]
    spies = [SpyRefiner() for _ in range(3)]
    MagNetFast(_cfg(MagNetFast, batch_size=64, n_patches=3), ctx, refiners=spies).refine(image, coarse)
    assert [s.batches for s in spies] == [[3], [3], [3]]
    two = [SpyRefiner() for _ in range(2)]
    MagNet(_cfg(MagNet, batch_size=64, n_refiners=2), ctx, refiners=two).refine(image, coarse)
    assert [s.batches for s in two] == [[4], [16, 64]]  # stage i uses min(n, i - 1) - 1


def test_fast_paper_points_stay_inside_processed_patches(ctx, image):
    """Paper Fast with one patch per stage and all its points: only that patch's inner pixels change."""
    coarse = compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device)
    refiners = [random_refiner(4, s) for s in range(3)]
    plan_cfg = _cfg(MagNetFast, n_patches=1, n_points=1.0, behaviour="paper")
    method = MagNetFast(plan_cfg, ctx, refiners=refiners)
    one_stage = replace(method.plan, scales=method.plan.scales[:2], refiner_of_stage=(0,))
    with torch.inference_mode():
        y = progressive(image, coarse.probs, one_stage, method.opts, ctx.backbone, method.refiners)
        up = torch.nn.functional.interpolate(coarse.probs[None], size=(32, 64), mode="bilinear", align_corners=False)[0]
    changed = (y != up).any(0)
    assert changed.any()
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert int(ys.max() - ys.min()) < 16 - 2 * 2 and int(xs.max() - xs.min()) < 32 - 2 * 2  # inside one inset patch


def test_variant_and_label(ctx):
    refiners = [SpyRefiner()] * 3
    assert MagNetFast(_cfg(MagNetFast), ctx, refiners=refiners).label == "MagNet-Fast"
    paper = MagNetFast(_cfg(MagNetFast, behaviour="paper"), ctx, refiners=refiners)
    assert paper.variant == "paper" and paper.label == "MagNet-Fast (paper)"
    assert (MagNet.name, MagNet.display_name, MagNetFast.name) == ("magnet", "MagNet", "magnet_fast")


def test_bad_inputs_are_clear_errors(ctx, image):
    method = MagNet(_cfg(MagNet), ctx, refiners=[SpyRefiner()] * 3)
    with pytest.raises(ValueError, match=r"\(C, h, w\) = \(4, 16, 32\)"):
        method.refine(image, Coarse(torch.zeros(4, 32, 64)))
    with pytest.raises(ValueError, match="uint8"):
        method.refine(image.astype(np.float32), Coarse(torch.zeros(4, 16, 32)))
    with pytest.raises(ValueError, match="behaviour"):
        MagNet(_cfg(MagNet, behaviour="fixed"), ctx, refiners=[SpyRefiner()] * 3)
    with pytest.raises(ValueError, match="n_refiners"):
        MagNet(_cfg(MagNet, n_refiners=4), ctx, refiners=[SpyRefiner()] * 4)
    with pytest.raises(ValueError, match=r"scales\[0\]"):
        MagNet(_cfg(MagNet, scales=((64, 32), (256, 128))), ctx, refiners=[SpyRefiner()])


def test_checkpoints_shared_by_magnet_and_magnet_fast(ctx):
    full = MagNet.checkpoints(MagNetConfig(), ctx)
    assert full == MagNetFast.checkpoints(MagNetFastConfig(), ctx)
    assert [p.name for p in full.values()] == [f"magnet_refiner_{w}x{h}.pt" for w, h in SCALES[1:]]
    with pytest.raises(FileNotFoundError):
        MagNet(MagNetConfig(), ctx)


# The released scripts' settings (magnet.md §1.1), an oracle for the dataset files that hold them.
RELEASED_SETTINGS = {
    "cityscapes": {"magnet": {"scales": ["256x128", "512x256", "1024x512", "2048x1024"], "crop_size": "256x128",
                              "n_points": 32768, "blur_kernel": 5, "n_refiners": 3},
                   "magnet_fast": {"n_patches": 4, "n_points": 0.9}},
    "deepglobe": {"magnet": {"scales": ["612x612", "1224x1224", "2448x2448"], "crop_size": "612x612",
                             "n_points": 0.75, "blur_kernel": 11, "n_refiners": 1},
                  "magnet_fast": {"n_patches": 3, "n_points": 0.9}},
    "gleason": {"magnet": {"scales": ["625x625", "1250x1250", "2500x2500", "5000x5000"], "crop_size": "625x625",
                           "n_points": 1.0, "blur_kernel": 11, "n_refiners": 1}, "magnet_fast": {}},
}


def _magnet_config(dataset, cls=MagNet):
    from bench.core.config import load
    from bench.pipeline.unit import method_config

    return method_config(load(dataset), cls, cls.name)


@pytest.mark.parametrize("dataset, patches, refiners", [
    ("cityscapes", [1, 4, 16, 64], (0, 1, 2)), ("deepglobe", [1, 4, 16], (0, 0)), ("gleason", [1, 4, 16, 64], (0, 0, 0)),
    ("inria", [1, 4, 16, 64], (0, 0, 0)), ("synthetic", [1, 4, 16, 64], (0, 0, 0)),
])
def test_dataset_settings(dataset, patches, refiners):
    """The dataset files' MagNet settings (their one source) tile exactly and assign the refiners as released."""
    cfg = _magnet_config(dataset)
    crop = parse_size(cfg.crop_size)
    plan = resolve_plan(cfg, (508, 508) if dataset == "deepglobe" else crop, (1, 1))
    check_coarse_scale(plan, crop)  # no warning when the coarse pass goes through S_1
    assert [len(patch_boxes(s, plan.crop)) for s in plan.scales] == patches
    assert plan.refiner_of_stage == refiners


@pytest.mark.parametrize("dataset", sorted(RELEASED_SETTINGS))
def test_dataset_files_hold_the_released_settings(dataset):
    from magnet.method import MagNetFast

    full, fast = _magnet_config(dataset), _magnet_config(dataset, MagNetFast)
    for key, value in RELEASED_SETTINGS[dataset]["magnet"].items():
        got = getattr(full, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, (dataset, key)
    for key, value in RELEASED_SETTINGS[dataset]["magnet_fast"].items():
        assert getattr(fast, key) == value, (dataset, key)


def test_coarse_scale_warning_for_two_step_datasets():
    cfg = MagNetConfig(scales=("612x612", "1224x1224", "2448x2448"), crop_size="612x612")
    plan = resolve_plan(cfg, (508, 508), (2448, 2448))
    with pytest.warns(UserWarning, match="coarse_scale: 612x612"):
        check_coarse_scale(plan, None)


def test_method_yaml_files_match_the_dataclass_defaults():
    from bench.core.config import BenchConfig, method_config_values
    from magnet.config import MagNetFastPaperConfig

    for name, config in (("magnet", MagNetConfig), ("magnet_fast", MagNetFastConfig),
                         ("magnet_fast_paper", MagNetFastPaperConfig)):
        values = method_config_values(BenchConfig(), name)
        assert config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}) == config()


@pytest.mark.parametrize("dataset", ["cityscapes", "deepglobe", "folder", "gleason", "inria", "synthetic"])
def test_fast_variants_inherit_magnets_geometry_and_training(dataset):
    """magnet_fast and magnet_fast_paper run magnet's geometry and training (and so its refiner files)."""
    import dataclasses

    from bench.core.config import load, option_parent
    from bench.pipeline.unit import method_config
    from magnet.method import MagNetFast, MagNetFastPaper

    assert option_parent("magnet_fast") == "magnet" and option_parent("magnet_fast_paper") == "magnet_fast"
    assert option_parent("magnet") is None and option_parent("downsample") is None
    cfg = load(dataset, {"magnet.epochs": 7})  # a sweep's magnet.* line reaches the variants too
    full = method_config(cfg, MagNet, "magnet")
    assert full.epochs == 7
    for cls in (MagNetFast, MagNetFastPaper):
        fast = method_config(cfg, cls, cls.name)
        same = {f.name for f in dataclasses.fields(MagNetConfig)} - {"n_points", "n_patches", "behaviour"}
        assert {k: getattr(fast, k) for k in same} == {k: getattr(full, k) for k in same}, (dataset, cls.name)
        own = dict(cfg.method_options.get("magnet_fast", {}))
        assert fast.n_patches == own.get("n_patches", 4) and fast.n_points == own.get("n_points", 0.9)
    assert method_config(cfg, MagNetFast, "magnet_fast").behaviour == "released"
    assert method_config(cfg, MagNetFastPaper, "magnet_fast_paper").behaviour == "paper"


def test_method_files_may_not_declare_inherits_or_version(tmp_path, monkeypatch):
    import bench.core.config as bc

    (tmp_path / "methods").mkdir()
    monkeypatch.setattr(bc, "CONFIG_DIR", tmp_path)
    for line, message in (("inherits: magnet\n", "'inherits:' is not read"), ("version: 2\n", "'version:' is not read")):
        (tmp_path / "methods" / "magnet_fast.yaml").write_text(line)
        with pytest.raises(ValueError, match=message):
            bc.method_config_values(bc.BenchConfig(), "magnet_fast")


def test_variant_labels_name_the_behaviour_once():
    from magnet.config import MagNetFastPaperConfig
    from magnet.method import MagNet, MagNetFast, MagNetFastPaper

    cases = [(MagNet, MagNetConfig(), "MagNet"), (MagNetFast, MagNetFastConfig(behaviour="paper"), "MagNet-Fast (paper)"),
             (MagNetFastPaper, MagNetFastPaperConfig(), "MagNet-Fast (paper)"),
             (MagNetFastPaper, MagNetFastPaperConfig(behaviour="released"), "MagNet-Fast")]
    for cls, cfg, label in cases:
        method = object.__new__(cls)
        method.cfg = cfg
        assert method.label == label, (cls.name, cfg.behaviour)


def test_fast_sparse_canvas_is_bit_identical_to_the_zero_filled_one(ctx, image, monkeypatch):
    """Fast mode skips zero-filling the canvas and takes the margin inside the patches only."""
    import magnet.geometry as geometry
    import magnet.inference as inference

    refiners = [random_refiner(4, s) for s in range(3)]
    coarse = compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device)
    for behaviour in ("released", "paper"):
        method = MagNetFast(_cfg(MagNetFast, n_patches=3, behaviour=behaviour), ctx, refiners=refiners)
        with torch.inference_mode():
            sparse = progressive(image, coarse.probs, method.plan, method.opts, ctx.backbone, method.refiners)
        dense_paster = lambda *a, dense=True: geometry.Paster(*a, dense=True)  # noqa: E731
        with monkeypatch.context() as mp, torch.inference_mode():
            mp.setattr(inference, "Paster", dense_paster)
            dense = progressive(image, coarse.probs, method.plan, method.opts, ctx.backbone, method.refiners)
        assert torch.equal(sparse, dense), behaviour
    paster = geometry.Paster(2, (8, 4), inset=0, device="cpu", dense=False)
    paster.add(torch.tensor([[[[0.9, 0.6]], [[0.1, 0.4]]]]).expand(1, 2, 2, 2).contiguous(), torch.tensor([[2, 0, 4, 2]]))
    paster.finish()
    cert = paster.certainty()
    assert cert[:, :2].abs().sum() == 0 and cert[:, 4:].abs().sum() == 0  # 0 outside the patch
    torch.testing.assert_close(cert[0:2, 2:4], torch.tensor([[0.8, 0.2], [0.8, 0.2]]))
