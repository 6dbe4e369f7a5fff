"""The shared training pieces: optimisers and schedules as the loops computed them, progress, the atomic save."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
import torch

from bench.weights import sidecar
from bench.training import loop


def _old_backbone_lr(lr: float, it: int, iterations: int) -> float:
    return lr * (1 - it / iterations) ** 0.9  # bench/training/backbone.py before bench.training.loop


def _old_segfix_lr(base: float, it: int, total: int, power: float = 0.9) -> float:
    return base * (1.0 - it / max(1, total)) ** power  # baselines/segfix/train.py before bench.training.loop


def _old_pointrend_lr(base: float, it: int, total: int, power: float = 0.9, min_lr: float = 1e-4) -> float:
    floor = min(min_lr, base)  # baselines/pointrend/train.py before bench.training.loop
    return (base - floor) * (1.0 - it / max(1, total)) ** power + floor


@pytest.mark.parametrize("base", [3e-3, 1e-2, 2e-3, 0.04, 1e-3, 5e-5, 1])
@pytest.mark.parametrize("total", [1, 3, 7, 150, 1200, 6000])
def test_poly_lr_is_bit_identical_to_the_loops_formulas(base, total):
    for it in range(total):
        assert loop.poly_lr(base, it, total) == _old_backbone_lr(base, it, total)
        assert loop.poly_lr(base, it, total) == _old_segfix_lr(base, it, total)
        assert loop.poly_lr(base, it, total, min_lr=1e-4) == _old_pointrend_lr(base, it, total)


@pytest.mark.parametrize("milestones", [[24], [8], [1, 2], [1, 2, 2, 3, 4], [0, 3], [7, 3], [2, 2, 2], []])
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.3])
def test_multistep_lr_is_bit_identical_to_torch_multisteplr(milestones, gamma):
    """MagNet's schedule used torch's MultiStepLR, stepped once per epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=5e-3, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)
    for epoch in range(30):
        assert loop.multistep_lr(5e-3, epoch, milestones, gamma) == opt.param_groups[0]["lr"], epoch
        opt.step()
        sched.step()


def _params(seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]


@pytest.mark.parametrize(("name", "direct"), [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=5e-4)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=5e-4)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=5e-4)),
])
def test_make_optimizer_steps_as_the_direct_constructors(name, direct):
    ours, theirs = _params(), _params()
    a = loop.make_optimizer(ours, name, 0.01, momentum=0.9, weight_decay=5e-4)
    b = direct(theirs)
    assert type(a) is type(b) and a.defaults == b.defaults
    for step in range(3):
        for params, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            sum((p * (step + 1)).pow(2).sum() for p in params).backward()
            opt.step()
    assert all(torch.equal(x, y) for x, y in zip(ours, theirs))


def test_dgf_adam_without_weight_decay_is_torch_default_adam():
    assert loop.make_optimizer(_params(), "adam", 0.01).defaults == torch.optim.Adam(_params(), lr=0.01).defaults


def test_make_optimizer_names_the_config_key():
    with pytest.raises(ValueError, match=r"backbone_train.optimizer must be one of \['sgd', 'adamw'\], got 'adam'"):
        loop.make_optimizer(_params(), "adam", 0.1, allowed=("sgd", "adamw"), what="backbone_train.optimizer")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_without_a_tty_prints_at_most_every_10_s_and_the_last_step():
    """Steps 3 s apart: lines at the first step, then each step 10 s or more after the last line
    (t = 112, 124: steps 5 and 9), and the last step (10); nothing at all when disabled."""
    out, clock = io.StringIO(), _Clock()
    with loop.Progress("x", 10, stream=out, clock=clock, wall=lambda: 0.0) as progress:
        for i in range(10):
            clock.now += 3.0
            progress.step(float(i), acc=0.5)
    lines = out.getvalue().splitlines()
    assert [line.split()[4] for line in lines] == ["1/10,", "5/10,", "9/10,", "10/10,"]
    # 3 s a step over the 9 steps of this process; 1 step left at step 9
    assert lines[-2].endswith(" x: step 9/10, loss 8.0000, acc 0.5, 3.0 s/step, left 3.0 s"), lines[-2]
    assert lines[-1].endswith(" x: step 10/10, loss 9.0000, acc 0.5, 3.0 s/step, left 0 s"), lines[-1]
    assert lines[0].startswith(f"[train] {time.strftime('%H:%M:%S', time.localtime(0.0))} x: step 1/10")
    quiet = io.StringIO()
    with loop.Progress("x", 2, enabled=False, stream=quiet, clock=clock) as off:
        off.step(1.0)
        off.step(1.0)
    assert quiet.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_live_bar_without_plain_lines():
    out = _Terminal()
    with loop.Progress("x", 3, stream=out) as progress:
        for i in range(3):
            progress.step(float(i))
    text = out.getvalue()
    assert "train x" in text and "3/3" in text and "loss=2.0000" in text and "[train]" not in text


def test_progress_after_a_resume_counts_from_the_resumed_step():
    out, clock = io.StringIO(), _Clock()
    with loop.Progress("x", 100, stream=out, clock=clock) as progress:
        progress.skip(90)
        clock.now += 2.0
        progress.step(1.0)
    # one step in this process, 2 s: 9 steps left take 18 s (not 91 steps' worth of the old run)
    assert out.getvalue().splitlines()[0].endswith(" x: step 91/100, loss 1.0000, 2.0 s/step, left 18 s")


STATE = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
OPTIONS = {"lr": 0.01, "crop_size": [64, 32], "backbone_digest": "abc"}


def test_save_writes_weights_and_sidecar_and_nothing_else(tmp_path):
    path = tmp_path / "sub" / "dgf.pt"
    loop.save_checkpoint(STATE, path, OPTIONS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["dgf.pt", "dgf.pt.train.json"]
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == list(STATE) and all(torch.equal(loaded[k], STATE[k]) for k in STATE)
    assert json.loads(sidecar.sidecar(path).read_text()) == OPTIONS
    # the same bytes as a plain torch.save at the path (torch stores the file's stem in the archive),
    # so weight digests (and the method folders named after the backbone's) do not depend on the save
    direct = tmp_path / "direct" / "dgf.pt"
    direct.parent.mkdir()
    torch.save(STATE, direct)
    assert direct.read_bytes() == path.read_bytes()


def test_save_without_sidecar_removes_the_old_one(tmp_path):
    path = tmp_path / "w.pt"
    loop.save_checkpoint(STATE, path, OPTIONS)
    loop.save_checkpoint(STATE, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def _partial_save(obj, f, *args, **kwargs):
    with open(f, "wb") as fh:
        fh.write(b"PK\x03\x04 half an archive")
    raise OSError("disk full")


def test_a_failed_save_leaves_no_weights_and_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _partial_save)
    path = tmp_path / "segfix.pt"
    with pytest.raises(OSError, match="disk full"):
        loop.save_checkpoint(STATE, path, OPTIONS)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_keeps_the_previous_pair(tmp_path, monkeypatch):
    path = tmp_path / "segfix.pt"
    loop.save_checkpoint(STATE, path, OPTIONS)
    before = path.read_bytes(), sidecar.sidecar(path).read_text()
    monkeypatch.setattr(torch, "save", _partial_save)
    with pytest.raises(OSError):
        loop.save_checkpoint({"w": torch.zeros(1)}, path, {**OPTIONS, "lr": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segfix.pt", "segfix.pt.train.json"]
    assert (path.read_bytes(), sidecar.sidecar(path).read_text()) == before


def test_a_crash_between_the_renames_never_leaves_old_weights_beside_the_new_sidecar(tmp_path, monkeypatch):
    path = tmp_path / "pointrend.pt"
    loop.save_checkpoint(STATE, path, OPTIONS)
    real_replace, calls = os.replace, []

    def replace_then_fail(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the sidecar is in place; the weights' rename fails
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="power cut"):
        loop.save_checkpoint({"w": torch.zeros(1)}, path, {**OPTIONS, "lr": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pointrend.pt.train.json"]  # no weights: retrained


def test_write_sidecar_alone_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    sidecar.write_sidecar(path, OPTIONS)
    assert json.loads(sidecar.sidecar(path).read_text()) == OPTIONS
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        sidecar.write_sidecar(path, {"lr": 1.0})
    assert json.loads(sidecar.sidecar(path).read_text()) == OPTIONS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt.train.json"]


def test_sidecar_travels_in_the_context(tiny_ctx):
    assert loop.sidecar_of(tiny_ctx) is None
    ctx = loop.with_sidecar(tiny_ctx, OPTIONS)
    assert loop.sidecar_of(ctx) == OPTIONS and ctx.backbone is tiny_ctx.backbone
