"""perf.magnet_profile on a tiny image with the light backbone (in-process child run)."""

from __future__ import annotations

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
    assert min(row["backbone_s"], row["refiner_s"], row["peak_rss_mb"]) > 0
    assert "| 3 | 84 |" in _table([row])


SLEEP_BACKBONE, SLEEP_REFINER = 0.01, 0.002  # s added to every forward: a floor no clock error hides


def test_profile_sections_hold_the_time_spent_in_each_network(monkeypatch):
    """The split checked against what the test itself counts and adds: every backbone forward sleeps
    10 ms and every refiner forward 2 ms (forward pre-hooks), and the test counts the forwards and
    the patches each refine() call runs and times refine() with its own clock. Then, for the reported
    call, backbone_s >= 10 ms x its backbone forwards, refiner_s >= 2 ms x its refiner forwards,
    refine_s (the runner's clock) >= backbone_s + refiner_s, both sections fit in the test's own
    refine() time, the coarse pass holds one backbone forward (and less than refine), and the patch count equals the
    patches the backbone saw. (``other_s`` = refine_s - backbone_s - refiner_s by definition, so it
    is not checked against itself.)"""
    import time

    import bench.models.backbones as backbones
    import magnet.refinement as refinement
    from magnet.method import MagNet

    calls: list[dict] = []  # one per refine() call: its forwards, patches and own wall time
    phase = {"refine": None}

    def sleeper(kind, seconds):
        def hook(module, inputs):
            time.sleep(seconds)
            if phase["refine"] is not None:
                phase["refine"][kind] += 1
                if kind == "backbone":
                    phase["refine"]["patches"] += int(inputs[0].shape[0])
        return hook

    create = backbones.create_backbone

    def hooked_backbone(*a, **k):
        model = create(*a, **k)
        model.register_forward_pre_hook(sleeper("backbone", SLEEP_BACKBONE))
        return model

    module_cls = refinement.RefinementModule

    def hooked_refiner(*a, **k):
        module = module_cls(*a, **k)
        module.register_forward_pre_hook(sleeper("refiner", SLEEP_REFINER))
        return module

    refine = MagNet.refine

    def counted_refine(self, image, coarse):
        phase["refine"] = {"backbone": 0, "refiner": 0, "patches": 0}
        start = time.perf_counter()
        try:
            return refine(self, image, coarse)
        finally:
            phase["refine"]["wall_s"] = time.perf_counter() - start
            calls.append(phase["refine"])
            phase["refine"] = None

    monkeypatch.setattr(backbones, "create_backbone", hooked_backbone)
    monkeypatch.setattr(refinement, "RefinementModule", hooked_refiner)
    monkeypatch.setattr(MagNet, "refine", counted_refine)
    threads = torch.get_num_threads()
    try:
        args = _parser().parse_args(["--backbone", "light", "--classes", "4", "--image", "256x128", "--input", "32x16",
                                     "--n-points", "256", "--threads", "1", "--child", "3", "--repeats", "3"])
        row = _child(args)
    finally:
        torch.set_num_threads(threads)
    timed = calls[1:]  # the first call is the warm-up
    assert len(timed) == 3
    n_backbone, n_refiner, n_patches = timed[0]["backbone"], timed[0]["refiner"], timed[0]["patches"]
    assert all((c["backbone"], c["refiner"], c["patches"]) == (n_backbone, n_refiner, n_patches) for c in timed)
    # 4 + 16 + 64 patches of the three refinement scales, in batches of 3: 2 + 6 + 22 backbone forwards
    assert n_patches == row["patch_forwards"] == 84 and n_backbone == 2 + 6 + 22
    assert row["backbone_s"] >= n_backbone * SLEEP_BACKBONE
    assert row["refiner_s"] >= n_refiner * SLEEP_REFINER > 0
    assert row["refine_s"] >= row["backbone_s"] + row["refiner_s"]
    assert row["backbone_s"] + row["refiner_s"] <= max(c["wall_s"] for c in timed)
    assert SLEEP_BACKBONE <= row["coarse_s"] < row["refine_s"]  # one backbone forward against thirty
