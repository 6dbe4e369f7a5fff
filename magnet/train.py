"""Training MagNet's refinement modules on a frozen backbone (magnet.md §2.1).

Per training image and epoch, one random (coarse, fine) pair: the coarse image is the whole image
resized to the input size n; the fine patch is a random crop of size c of the image resized to a
scale S drawn uniformly from the scales the refiner serves, resized to n. The refiner sees the
softmax of the backbone on the fine patch and the RoIAlign crop of the coarse softmax at the
patch's box, and is trained with OHEM cross-entropy against the label crop (nearest resizes).

Exact caches (same maths, less work): the coarse softmax of every image and the resized images
and labels per scale are computed once, within ``cfg.cache_mb``.

Under torchrun (``bench.runtime.distributed``) the refiner trains data-parallel: it is wrapped in
DistributedDataParallel, every rank draws the same batch order and takes its share of each batch
(``batch[rank::world]``, its own random pairs), and rank 0 saves. In one process nothing changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.training import loop, resume
from bench.runtime.distributed import barrier, data_parallel
from bench.core.interface import Dataset, MethodContext
from magnet.config import MagNetConfig, Plan, resolve_plan
from magnet.geometry import Size
from magnet.loss import ohem_cross_entropy, scaled_min_kept
from magnet.pairs import PairSource, sample_batch
from magnet.refinement import RefinementModule

log = logging.getLogger(__name__)

PAPER_MILESTONES = (10, 20, 30, 40, 45)
PAPER_EPOCHS = 50


def milestones(cfg: MagNetConfig) -> list[int]:
    """MultiStepLR epochs: ``cfg.milestones``, or the paper's scaled by ``epochs / 50``."""
    if cfg.milestones:
        return sorted(int(m) for m in cfg.milestones)
    return [max(1, round(m * cfg.epochs / PAPER_EPOCHS)) for m in PAPER_MILESTONES]


def refiner_filename(plan: Plan, index: int) -> str:
    """``magnet_refiner_<WxH>[_<WxH>...].pt``: the scales of the stages the refiner serves."""
    return "magnet_refiner_" + "_".join(f"{w}x{h}" for w, h in plan.stages_of_refiner(index)) + ".pt"


def steps_per_epoch(cfg: MagNetConfig, n: int) -> int:
    """Optimiser steps of one epoch over ``n`` training images (see :func:`_epoch_batches`)."""
    return cfg.iterations_per_epoch or math.ceil(n / cfg.train_batch_size)


def _epoch_batches(rng: np.random.RandomState, n: int, batch: int, iterations: int,
                   stream: list[int]) -> list[list[int]]:
    """One epoch of index batches: a shuffled pass (last batch partial) when ``iterations`` is 0,
    else ``iterations`` full batches from a stream of shuffled passes carried across epochs."""
    if iterations == 0:
        perm = rng.permutation(n).tolist()
        return [perm[i:i + batch] for i in range(0, n, batch)]
    out = []
    for _ in range(iterations):
        while len(stream) < batch:
            stream += rng.permutation(n).tolist()
        out.append(stream[:batch])
        del stream[:batch]
    return out


def _rank_share(batch: list[int], rank: int, world: int) -> tuple[list[int], float]:
    """This rank's pairs of a global batch and the weight of its mean loss.

    DDP averages the gradients over ranks, so weighting each rank's mean loss by
    ``world * len(share) / len(batch)`` makes the update the mean over the global batch. A rank
    left without pairs (a short last batch) takes one with weight 0: it must still join the
    gradient all-reduce.
    """
    if world == 1:
        return batch, 1.0
    share = batch[rank::world]
    return (share, world * len(share) / len(batch)) if share else (batch[:1], 0.0)


def _wrap_ddp(refiner: RefinementModule, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``refiner`` on ``device`` (its CUDA index, or the CPU)."""
    ids = None
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.nn.parallel.DistributedDataParallel(refiner, device_ids=ids)


def train_one(source: PairSource, scales: tuple[Size, ...], cfg: MagNetConfig, num_classes: int, ignore_index: int,
              seed: int, resume_file: resume.ResumeFile | None = None) -> tuple[RefinementModule, list[float]]:
    """Train one refiner on pairs drawn from ``scales``; returns it and the mean loss per epoch.

    Data-parallel under torchrun (see the module docstring); the returned losses are then rank 0's.
    ``resume_file``: where this rank's resumable state is written and read
    (``bench.training.resume``): besides the weights, optimiser and generators it holds the data
    order, i.e. the epoch, the epoch's batch list and position in it, the stream carried across
    epochs and the losses so far. The pairs are drawn in this process: each needs the frozen
    backbone's maps, computed and cached on the training device (``PairSource``).
    """
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    rank, world = data_parallel()
    # the batch order (rng) must be the same on every rank; the pairs each rank draws must not
    pair_rng = rng if world == 1 else np.random.RandomState([seed, rank])
    device = source.device
    refiner = RefinementModule(num_classes).to(device).train()
    net = refiner if world == 1 else _wrap_ddp(refiner, device)
    opt = loop.make_optimizer(refiner.parameters(), "sgd", cfg.lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay)
    steps = milestones(cfg)
    min_kept = scaled_min_kept(cfg.ohem_min_kept, source.plan.input_size)
    stream: list[int] = []
    history: list[float] = []
    name = "magnet refiner " + ",".join(f"{w}x{h}" for w, h in scales)
    total = cfg.epochs * steps_per_epoch(cfg, len(source))
    generators = {"rng": rng} if pair_rng is rng else {"rng": rng, "pair_rng": pair_rng}
    checkpoint = resume.Checkpointer(resume_file, total, modules={"refiner": refiner},
                                     optimizers={"opt": opt}, generators=generators, device=device)
    with loop.Progress(name, total, enabled=rank == 0) as progress:
        snap = checkpoint.restore()
        done, all_losses, at = (0, [], None) if snap is None else (snap.step, snap.losses, snap.extra)
        if at is not None:
            stream, history = list(at["stream"]), list(at["history"])
            progress.skip(done)
        with checkpoint.guard():
            for epoch in range(0 if at is None else int(at["epoch"]), cfg.epochs):
                loop.set_lr(opt, loop.multistep_lr(cfg.lr, epoch, steps, cfg.gamma))
                if at is not None and epoch == int(at["epoch"]):  # the interrupted epoch: its batches were drawn
                    batches, losses, begin = [list(b) for b in at["batches"]], list(at["epoch_losses"]), int(at["pos"])
                else:
                    batches = _epoch_batches(rng, len(source), cfg.train_batch_size, cfg.iterations_per_epoch, stream)
                    losses, begin = [], 0
                for pos in range(begin, len(batches)):
                    share, weight = _rank_share(batches[pos], rank, world)
                    fine, crop, target = sample_batch(source, share, scales, pair_rng)
                    first, second = (fine, crop) if cfg.train_input_order == "matching" else (crop, fine)
                    loss = ohem_cross_entropy(net(first, second), target, ignore_index, cfg.ohem_thresh, min_kept)
                    if world > 1:
                        loss = loss * weight
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    all_losses.append(losses[-1])
                    progress.step(losses[-1], epoch=epoch + 1)
                    done += 1
                    checkpoint.after_step(done, all_losses, {"epoch": epoch, "pos": pos + 1, "batches": batches,
                                                             "epoch_losses": losses, "stream": stream,
                                                             "history": history})
                history.append(float(np.mean(losses)))
                log.info("%s epoch %d/%d loss %.4f", name, epoch + 1, cfg.epochs, history[-1])
    if cfg.bn_recalibration > 0:
        recalibrate_bn(refiner, source, scales, cfg, rng)
    return refiner.eval(), history


@torch.no_grad()
def recalibrate_bn(refiner: RefinementModule, source: PairSource, scales: tuple[Size, ...], cfg: MagNetConfig,
                   rng: np.random.RandomState) -> None:
    """Replace the BN running statistics by their plain average over ``cfg.bn_recalibration`` fresh batches.

    Not in the released recipe (``bn_recalibration: 0``). With BN momentum 0.01 the running
    statistics need thousands of steps to settle; on short schedules they are still near their
    initial values and the eval-mode refiner is far from the trained one.
    """
    norms = [m for m in refiner.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    refiner.train()
    stream: list[int] = []
    for batch in _epoch_batches(rng, len(source), cfg.train_batch_size, cfg.bn_recalibration, stream):
        fine, crop, _ = sample_batch(source, batch, scales, rng)
        refiner(*((fine, crop) if cfg.train_input_order == "matching" else (crop, fine)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def train_refiners(cfg: MagNetConfig, ctx: MethodContext, train_set: Dataset,
                   paths: Mapping[str, Path]) -> dict[str, Any]:
    """Train every refiner of the plan and save plain state dicts to ``paths[f"refiner_{r}"]``
    (each with the sidecar ``make train`` passes in ``ctx``; ``bench.training.loop.save_checkpoint``).

    Returns:
        ``{"refiner_<r>": {"scales": [...], "loss": [per-epoch mean], "seconds": s}}``.
    """
    if ctx.backbone is None:
        raise ValueError("MagNet refiner training needs the trained backbone in ctx.backbone")
    plan = resolve_plan(cfg, ctx.input_size, ctx.image_size)
    ignore = ctx.dataset.ignore_index if ctx.dataset is not None and ctx.dataset.ignore_index is not None else -1
    backbone = ctx.backbone.eval()
    source = PairSource(train_set, plan, backbone, ctx.device, cfg.cache_mb)
    source.warm()
    seed = int(ctx.options.get("seed", 0)) if ctx.options else 0
    rank, world = data_parallel()
    if rank == 0:
        resume.read_in_process(resume.runtime_of(ctx), "magnet", "each pair needs the frozen backbone's maps, "
                               "computed and cached on the training device")
    summary: dict[str, Any] = {}
    files = []
    for r in range(plan.n_refiners):
        key = f"refiner_{r}"
        if key not in paths:
            raise KeyError(f"no path for {key}; expected the keys of MagNet.checkpoints(): {sorted(paths)}")
        start = time.perf_counter()
        scales = plan.stages_of_refiner(r)
        # one state per refiner, kept until every refiner is saved: a rerun restores a finished one
        # at its last step (no step is repeated) and continues the interrupted one
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, seed=seed + r, scales=scales, images=len(source),
                                      steps=cfg.epochs * steps_per_epoch(cfg, len(source)))
        files.append(resume.ResumeFile(Path(paths[key]), f"magnet {key}", identity, resume.runtime_of(ctx),
                                       rank=rank, world=world))
        refiner, history = train_one(source, scales, cfg, ctx.num_classes, ignore, seed + r, files[-1])
        if rank == 0:  # under DDP every rank holds the same weights; one writes them
            loop.save_checkpoint(loop.cpu_state(refiner), Path(paths[key]), loop.sidecar_of(ctx))
        summary[key] = {"scales": [list(s) for s in scales], "loss": history, "seconds": time.perf_counter() - start}
    barrier()  # every rank keeps its states until rank 0 has saved every refiner
    for file in files:
        file.remove()
    return summary
