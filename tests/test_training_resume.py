"""Training that survives: a training killed part-way and run again ends with the weights of an
uninterrupted one, bit for bit; resume states are atomic and never mixed with other options; the
backbone's DataLoader workers draw the crops of the in-process sampler, in its order."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.checks.contract import TinyDataset
from bench.core.config import BackboneTrainConfig
from bench.training import backbone, loop, resume

ROOT = Path(__file__).resolve().parents[1]


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- the backbone, killed

def train_tiny_backbone(out: Path, workers: int = 0) -> None:
    """The training both runs make: the light backbone, 12 SGD steps on the tiny set, a state every step."""
    from bench.checks.contract import TINY_INFO
    from bench.models.backbones import create_backbone
    from bench.training.backbone import train_backbone

    torch.manual_seed(0)
    model = create_backbone("light", TINY_INFO.num_classes, width=8)
    cfg = BackboneTrainConfig(iterations=12, batch_size=2, scale_min=0.25, scale_max=1.0, optimizer="sgd")
    train_backbone(model, TinyDataset(4), (64, 32), out, cfg, torch.device("cpu"), sidecar={"what": "test"},
                   runtime=resume.TrainRuntime(checkpoint_every_s=0, workers=workers))


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)  # as tests/conftest.py in the parent
    from bench.training import loop
    from test_training_resume import train_tiny_backbone

    step = loop.Progress.step
    def slowed(self, *a, **k):  # room for the parent to kill it part-way; the sleep changes no number
        step(self, *a, **k)
        time.sleep(0.2)
    loop.Progress.step = slowed
    train_tiny_backbone(Path(sys.argv[1]))
""")


def test_a_backbone_training_killed_by_sigkill_resumes_to_the_same_weights(tmp_path, capsys):
    """A child process trains and is SIGKILLed once a resume state is on disk; the same training
    again (here, in this process) says where it resumes and ends with the weights of an
    uninterrupted run (catches any state not saved or not restored: weights, SGD momentum, the
    sampler's generator, the step)."""
    whole, cut = tmp_path / "whole" / "bb.pt", tmp_path / "cut" / "bb.pt"
    state = cut.parent / "bb.pt.resume"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    killed = subprocess.Popen([sys.executable, str(script), str(cut)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    train_tiny_backbone(whole)
    deadline = time.monotonic() + 60
    while not state.is_file() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # one or two more steps
    killed.send_signal(signal.SIGKILL)
    err = killed.communicate()[1]
    assert killed.returncode == -signal.SIGKILL, err
    assert state.is_file() and not cut.exists()
    step = torch.load(state, weights_only=True)["step"]
    assert 0 < step < 12
    capsys.readouterr()
    train_tiny_backbone(cut)
    assert f"[train] resuming backbone from step {step}/12 ({state})" in capsys.readouterr().err
    assert not state.exists()  # removed once the weights are saved
    assert _equal_states(torch.load(whole, weights_only=True), torch.load(cut, weights_only=True))


def test_a_backbone_training_with_workers_resumes_to_the_weights_of_one_without(monkeypatch, capsys, tmp_path):
    """The workers' DataLoader plans batches ahead of the step being trained: the state must hold
    the sampler's generator as it stood after the last trained batch, not as far as it has planned
    (catches saving ``sampler.rng`` itself)."""
    train_tiny_backbone(tmp_path / "whole.pt")
    with monkeypatch.context() as m:
        _interrupt_after(m, 5)
        with pytest.raises(Interrupted):
            train_tiny_backbone(tmp_path / "cut.pt", workers=1)
    capsys.readouterr()
    train_tiny_backbone(tmp_path / "cut.pt", workers=1)
    assert "resuming backbone from step 5/12" in capsys.readouterr().err
    assert _equal_states(torch.load(tmp_path / "whole.pt", weights_only=True),
                         torch.load(tmp_path / "cut.pt", weights_only=True))


# --------------------------------------------------------------------------- run_steps, interrupted

class Interrupted(Exception):
    pass


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)
        self.bn = torch.nn.BatchNorm1d(3)  # running statistics: buffers a resume must carry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.nn.functional.dropout(self.fc(x), 0.3, training=self.training))


def _run_steps(path: Path, stop_at: int | None = None, iterations: int = 9, every_s: float = 0,
               signals: tuple[int, ...] = ()) -> tuple[dict, list[float]]:
    """A loop that draws from every generator a resume must restore: its own numpy Generator and
    torch.Generator, torch's global one (dropout, randn), numpy's and Python's global ones.
    ``stop_at``: raise Interrupted inside that step, or with ``signals`` send them to this process there."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    net = _Net()
    rng, gen = np.random.default_rng(5), torch.Generator().manual_seed(7)
    opt = loop.make_optimizer(net.parameters(), "adam", 1e-2, weight_decay=1e-3)
    calls = [0]

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        calls[0] += 1
        if calls[0] == stop_at:
            if not signals:
                raise Interrupted
            for signum in signals:
                os.kill(os.getpid(), signum)
        x = torch.from_numpy(rng.normal(size=(4, 6)).astype(np.float32)) + torch.randn(4, 6, generator=gen)
        x = x * (1 + random.random()) + float(np.random.rand()) + torch.randn(4, 6) * 0.1
        return net(x).pow(2).mean(), {"calls": calls[0]}

    file = resume.ResumeFile(path, "toy", {"lr": 1e-2}, resume.TrainRuntime(checkpoint_every_s=every_s))
    checkpoint = resume.Checkpointer(file, iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng, "gen": gen})
    with loop.Progress("toy", iterations, enabled=False) as progress:
        losses = loop.run_steps(opt, progress, iterations, lambda it: loop.poly_lr(1e-2, it, iterations), step,
                                checkpoint)
    return {k: v.clone() for k, v in net.state_dict().items()}, losses


@pytest.mark.parametrize("stop_at", [2, 5, 9])
def test_run_steps_interrupted_and_rerun_ends_bit_identical(tmp_path, capsys, stop_at):
    """Interrupted inside step ``stop_at`` (the state of ``stop_at - 1`` steps on disk), then run
    again: same weights, BN buffers and losses as without the interruption (catches a generator,
    the optimiser state, a buffer or the losses so far left out of the state)."""
    whole = _run_steps(tmp_path / "whole.pt")
    with pytest.raises(Interrupted):
        _run_steps(tmp_path / "cut.pt", stop_at=stop_at)
    capsys.readouterr()
    again = _run_steps(tmp_path / "cut.pt")
    assert f"resuming toy from step {stop_at - 1}/9" in capsys.readouterr().err
    assert _equal_states(whole[0], again[0]) and whole[1] == again[1]


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as in a terminal: a shell that starts a job in the background
    (``cmd &``, some CI runners) makes it ignore SIGINT, and Python then keeps SIG_IGN."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_ends_the_running_step_writes_its_state_then_stops(tmp_path, capsys, python_sigint):
    """SIGINT inside step 4, no state due (every 300 s): the step ends, its state is written, then
    KeyboardInterrupt; the rerun resumes from step 4 to the uninterrupted weights (catches a
    signal that stops the loop before the state is written, losing the steps since the last one)."""
    whole = _run_steps(tmp_path / "whole.pt", every_s=300)
    with pytest.raises(KeyboardInterrupt):
        _run_steps(tmp_path / "cut.pt", stop_at=4, every_s=300, signals=(signal.SIGINT,))
    assert "[train] SIGINT: stopping after this step" in capsys.readouterr().err
    assert torch.load(tmp_path / "cut.pt.resume", weights_only=True)["step"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    again = _run_steps(tmp_path / "cut.pt", every_s=300)
    assert "resuming toy from step 4/9" in capsys.readouterr().err
    assert _equal_states(whole[0], again[0]) and whole[1] == again[1]


def test_sigterm_goes_on_to_the_harness_handler_after_the_state(tmp_path):
    """Under ``exit_on_signals`` (``bench run``: exit 143 on SIGTERM) the held signal reaches it."""
    from bench.runtime.procs import Interrupted as Stopped, exit_on_signals

    with pytest.raises(Stopped) as stopped, exit_on_signals():
        _run_steps(tmp_path / "cut.pt", stop_at=3, every_s=300, signals=(signal.SIGTERM,))
    assert stopped.value.code == 143
    assert torch.load(tmp_path / "cut.pt.resume", weights_only=True)["step"] == 3


def test_a_second_ctrl_c_stops_at_once(tmp_path, python_sigint):
    with pytest.raises(KeyboardInterrupt):
        _run_steps(tmp_path / "cut.pt", stop_at=2, every_s=300, signals=(signal.SIGINT, signal.SIGINT))
    assert not (tmp_path / "cut.pt.resume").exists()  # step 1's state was not due; step 2 never ended


# --------------------------------------------------------------------------- the file

def test_a_state_of_other_options_is_discarded_with_one_line_naming_them(tmp_path, capsys):
    weights = tmp_path / "m.pt"
    resume.ResumeFile(weights, "m", resume.identity_of({"lr": 0.1, "crop": (8, 8)}, None, steps=4)).write({"step": 2})
    assert resume.ResumeFile(weights, "m", resume.identity_of({"lr": 0.1, "crop": [8, 8]}, None, steps=4)).load()
    assert resume.ResumeFile(weights, "m", resume.identity_of({"lr": 0.2, "crop": [8, 8]}, None, steps=4)).load() is None
    assert resume.ResumeFile(weights, "m", resume.identity_of({"lr": 0.1, "crop": [8, 8]}, None, steps=5)).load() is None
    assert resume.ResumeFile(weights, "other", resume.identity_of({"lr": 0.1, "crop": [8, 8]}, None, steps=4)).load() is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"[train] discarding {weights}.resume: written by a training with other options ({what}); "
                     "starting at step 0" for what in ("sidecar.lr", "steps", "what")]


def test_an_unreadable_state_is_discarded_and_resume_false_ignores_the_file(tmp_path, capsys):
    weights = tmp_path / "m.pt"
    resume.resume_path(weights).write_text("not a state")
    assert resume.ResumeFile(weights, "m", {}).load() is None
    assert "discarding" in capsys.readouterr().err
    resume.ResumeFile(weights, "m", {}).write({"step": 1})
    assert resume.ResumeFile(weights, "m", {}, resume.TrainRuntime(resume=False)).load() is None
    assert resume.ResumeFile(weights, "m", {}).load()["step"] == 1


def test_a_failed_write_keeps_the_previous_state_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    file = resume.ResumeFile(tmp_path / "m.pt", "m", {})
    file.write({"step": 1})

    def broken(obj, f, *a, **k):
        Path(f).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        file.write({"step": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt.resume"]
    assert resume.ResumeFile(tmp_path / "m.pt", "m", {}).load()["step"] == 1


def test_the_temporary_file_of_a_killed_write_is_removed_by_the_next_run(tmp_path):
    file = resume.ResumeFile(tmp_path / "m.pt", "m", {})
    file.write({"step": 1})
    (tmp_path / ".m.pt.resume.k1ll3d.tmp").write_bytes(b"half")  # what SIGKILL inside torch.save leaves
    (tmp_path / ".other.pt.resume.x.tmp").write_bytes(b"not ours")
    assert resume.ResumeFile(tmp_path / "m.pt", "m", {}).load()["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.resume.x.tmp", "m.pt.resume"]


def test_states_are_written_when_due_and_after_the_last_step():
    now = [0.0]
    written = []

    class File(resume.ResumeFile):
        def write(self, payload):  # type: ignore[override]
            written.append(payload["step"])
            self.last = self.clock()

    file = File(Path("/nonexistent/m.pt"), "m", {}, resume.TrainRuntime(checkpoint_every_s=300), clock=lambda: now[0])
    net = torch.nn.Linear(1, 1)
    checkpoint = resume.Checkpointer(file, 10, modules={"net": net}, optimizers={})
    for step in range(1, 11):
        now[0] += 80.0
        checkpoint.after_step(step, [])
    assert written == [4, 8, 10]  # 320 s, 640 s, and the last step (160 s after the one before)


def test_runtime_comes_from_the_context_and_checks_its_values(tiny_ctx):
    assert resume.runtime_of(tiny_ctx) == resume.TrainRuntime()
    ctx = resume.with_runtime(tiny_ctx, resume.TrainRuntime(checkpoint_every_s=0, workers=2))
    assert resume.runtime_of(ctx).workers == 2
    assert resume.runtime_of(dataclasses.replace(ctx, options={resume.RUNTIME_OPTION: {"workers": 1}})).workers == 1
    with pytest.raises(ValueError, match="workers"):
        resume.TrainRuntime(workers=-1)
    with pytest.raises(ValueError, match="checkpoint_every_s"):
        resume.TrainRuntime(checkpoint_every_s=float("nan"))


def test_a_loop_that_reads_in_process_says_so_when_workers_are_asked(capsys, tiny_ctx, tiny_dataset, tmp_path):
    """DGF with workers=2: one line saying they are not used and why, and the weights of workers=0."""
    from baselines.dgf import DeepGuidedFilter

    cfg = DeepGuidedFilter.Config(iterations=2, batch_size=2, crop_size=(48, 32), hidden=8)
    ctx = dataclasses.replace(tiny_ctx, checkpoint_dir=tmp_path / "w")
    DeepGuidedFilter.train(cfg, ctx, tiny_dataset, DeepGuidedFilter.checkpoints(cfg, ctx))
    assert "workers" not in capsys.readouterr().err
    asked = resume.with_runtime(dataclasses.replace(ctx, checkpoint_dir=tmp_path / "w2"), resume.TrainRuntime(workers=2))
    DeepGuidedFilter.train(cfg, asked, tiny_dataset, DeepGuidedFilter.checkpoints(cfg, asked))
    lines = [x for x in capsys.readouterr().err.splitlines() if "workers" in x]
    assert lines == ["[train] dgf: workers=2 not used, the samples are made in the training process: each window "
                     "needs the frozen backbone's coarse map of its image, computed on the training device"]
    assert _equal_states(torch.load(tmp_path / "w" / "dgf.pt", weights_only=True),
                         torch.load(tmp_path / "w2" / "dgf.pt", weights_only=True))


# --------------------------------------------------------------------------- the backbone's data order

def _old_random_crop(image, label, width, crop, rng):
    """The crop of bench/train_backbone.py before DataLoader workers (no thin classes)."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    if (width, height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    cw, ch = crop
    pad_h, pad_w = max(ch - height, 0), max(cw - width, 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=255)
    y = int(rng.integers(0, image.shape[0] - ch + 1))
    x = int(rng.integers(0, image.shape[1] - cw + 1))
    image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def _old_batches(dataset, crop, cfg, seed, size, count):
    """The old sampler's batches: index, log-uniform width, thin draw, crop, flip, one generator."""
    rng = np.random.default_rng(seed)
    lo, hi = math.log(cfg.scale_min), math.log(cfg.scale_max)
    out = []
    for _ in range(count):
        images, labels = [], []
        for _ in range(size):
            sample = dataset[int(rng.integers(len(dataset)))]
            width = max(1, round(sample.image.shape[1] * math.exp(rng.uniform(lo, hi))))
            assert not rng.random() < cfg.thin_crop_prob
            image, label = _old_random_crop(sample.image, sample.label, width, crop, rng)
            images.append(image)
            labels.append(label)
        out.append((np.stack(images), np.stack(labels), rng.bit_generator.state))
    return out


@pytest.mark.parametrize("workers", [0, 1])
def test_the_backbone_crops_with_workers_are_the_old_samplers_in_its_order(workers):
    """Scales down to 1/8 (padding) and up to 2x: every batch and the generator state after it
    equal the old in-process sampler's (catches a draw planned out of order or with another bound)."""
    cfg = BackboneTrainConfig(scale_min=0.125, scale_max=2.0)
    dataset = TinyDataset(5)
    expected = _old_batches(dataset, (48, 40), cfg, 3, 3, 6)
    sampler = backbone.CropSampler(dataset, (48, 40), cfg, seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    got = list(sampler.batches(3, 6, workers=workers))
    assert torch.equal(torch.get_rng_state(), before)  # the DataLoader draws no seed from torch's generator
    assert len(got) == 6
    for (images, labels, state), (old_images, old_labels, old_state) in zip(got, expected):
        assert np.array_equal(np.asarray(images), old_images) and np.array_equal(np.asarray(labels), old_labels)
        assert state == old_state


def test_thin_class_crops_are_read_in_process_with_one_line(capsys):
    cfg = BackboneTrainConfig(thin_crop_prob=0.5)
    dataset = TinyDataset(3)
    direct = backbone.CropSampler(dataset, (32, 32), cfg, seed=0)
    expected = [direct.batch(2) for _ in range(3)]
    got = list(backbone.CropSampler(dataset, (32, 32), cfg, seed=0).batches(2, 3, workers=2))
    assert all(np.array_equal(g[0], e[0]) and np.array_equal(g[1], e[1]) for g, e in zip(got, expected))
    assert "workers=2 ignored" in capsys.readouterr().err


# --------------------------------------------------------------------------- loops with their own state

def _interrupt_after(monkeypatch, steps: int) -> None:
    """Raise Interrupted right after the ``steps``-th state is written (counted over the whole training)."""
    original, count = resume.Checkpointer.after_step, [0]

    def after(self, step, losses, extra=None, **kw):
        original(self, step, losses, extra, **kw)
        count[0] += 1
        if count[0] == steps:
            raise Interrupted

    monkeypatch.setattr(resume.Checkpointer, "after_step", after)


def _trained(cls, cfg, ctx, data, folder: Path) -> dict[str, dict]:
    ctx = resume.with_runtime(dataclasses.replace(ctx, checkpoint_dir=folder), resume.TrainRuntime(checkpoint_every_s=0))
    paths = cls.checkpoints(cfg, ctx)
    cls.train(cfg, ctx, data, paths)
    assert not list(folder.glob("*.resume"))
    return {k: torch.load(p, weights_only=False) for k, p in paths.items()}


def _same(a: dict, b: dict) -> bool:
    def state(x):
        return x if isinstance(x, dict) else x.state_dict()
    return a.keys() == b.keys() and all(_equal_states(state(a[k]), state(b[k])) for k in a)


def _resumed(monkeypatch, capsys, cls, cfg, ctx, data, folder: Path, stop: int) -> tuple[dict, str]:
    with monkeypatch.context() as m:
        _interrupt_after(m, stop)
        with pytest.raises(Interrupted):
            _trained(cls, cfg, ctx, data, folder)
    capsys.readouterr()
    out = _trained(cls, cfg, ctx, data, folder)
    return out, capsys.readouterr().err


def test_glnet_resumes_in_the_stage_it_was_interrupted(monkeypatch, capsys, tiny_ctx, tiny_dataset, tmp_path):
    """Stage 2 of 3 interrupted: the rerun skips stage 1 (its weights are on disk), continues stage
    2 with the frozen stage-1 copy from the state, and all three files equal an uninterrupted run's
    (catches the frozen copy taken from the resumed model, or a stage trained twice)."""
    from baselines.glnet.method import GLNetMethod, GLNetConfig

    cfg = GLNetConfig(iterations_global=2, iterations_local=3, iterations_l2g=2, batch_size=2, min_overlap=0)
    whole = _trained(GLNetMethod, cfg, tiny_ctx, tiny_dataset, tmp_path / "whole")
    again, err = _resumed(monkeypatch, capsys, GLNetMethod, cfg, tiny_ctx, tiny_dataset, tmp_path / "cut", 4)
    assert "resuming glnet global2local from step 2/3" in err and "glnet global: step" not in err
    assert _same(whole, again)


def test_magnet_resumes_mid_epoch_and_keeps_finished_refiners(monkeypatch, capsys, tiny_ctx, tiny_dataset, tmp_path):
    """Refiner 1 interrupted in its second epoch (the epoch's batches were drawn before): both
    refiners equal an uninterrupted run's; refiner 0 resumes at its last step (catches the epoch's
    batch list redrawn, the stream lost, or a finished refiner's state removed too early)."""
    from magnet.method import MagNet

    cfg = MagNet.Config(scales=((32, 16), (64, 32), (128, 64)), n_points=128, mask_inset=2, epochs=2,
                        train_batch_size=3)
    ctx = dataclasses.replace(tiny_ctx, options={"seed": 0})
    whole = _trained(MagNet, cfg, ctx, tiny_dataset, tmp_path / "whole")
    again, err = _resumed(monkeypatch, capsys, MagNet, cfg, ctx, tiny_dataset, tmp_path / "cut", 7)
    assert "resuming magnet refiner_0 from step 4/4" in err and "resuming magnet refiner_1 from step 3/4" in err
    assert _same(whole, again)


def test_dgf_resumes_its_own_loop(monkeypatch, capsys, tiny_ctx, tiny_dataset, tmp_path):
    from baselines.dgf import DeepGuidedFilter

    cfg = DeepGuidedFilter.Config(iterations=4, batch_size=2, crop_size=(48, 32), hidden=8)
    whole = _trained(DeepGuidedFilter, cfg, tiny_ctx, tiny_dataset, tmp_path / "whole")
    again, err = _resumed(monkeypatch, capsys, DeepGuidedFilter, cfg, tiny_ctx, tiny_dataset, tmp_path / "cut", 2)
    assert "resuming dgf from step 2/4" in err
    assert _same(whole, again)


# --------------------------------------------------------------------------- torchrun

DDP_CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from bench.training import resume
    from test_training_resume import train_tiny_backbone

    stop = int(sys.argv[2])
    if stop:  # both ranks stop after the same step, as a job killed between two steps
        original = resume.Checkpointer.after_step
        def after(self, step, losses, extra=None, **kw):
            original(self, step, losses, extra, **kw)
            if step == stop:
                os._exit(3)
        resume.Checkpointer.after_step = after
    train_tiny_backbone(Path(sys.argv[1]))
""")


@pytest.mark.slow
def test_a_data_parallel_backbone_training_resumes_on_every_rank(tmp_path):
    """Two CPU ranks (gloo), stopped after step 5 and run again: each rank resumes its own sampler
    and the weights equal an uninterrupted two-rank run's (catches one rank's generator saved for
    both, or ranks deciding apart when a state is due)."""
    import socket

    script = tmp_path / "ddp.py"
    script.write_text(DDP_CHILD)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])

    def torchrun(out: Path, stop: int) -> subprocess.CompletedProcess:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={port}", str(script), str(out), str(stop)]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    whole, cut = tmp_path / "whole" / "bb.pt", tmp_path / "cut" / "bb.pt"
    assert torchrun(whole, 0).returncode == 0
    stopped = torchrun(cut, 5)
    assert stopped.returncode != 0 and not cut.exists()
    assert sorted(p.name for p in cut.parent.iterdir()) == ["bb.pt.rank0of2.resume", "bb.pt.rank1of2.resume"]
    again = torchrun(cut, 0)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resuming backbone from step 5/12") == 2
    assert sorted(p.name for p in cut.parent.iterdir()) == ["bb.pt", "bb.pt.train.json"]
    assert _equal_states(torch.load(whole, weights_only=True), torch.load(cut, weights_only=True))
