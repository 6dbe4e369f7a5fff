"""A learned method whose training records which rank ran it (for the torchrun tests).

Registered through ``MAGNET_BENCH_METHODS="rank_trained=rank_method:RankTrained"``. ``train``
sleeps, so a rank that did not wait for rank 0 would reach the sweep before the weights exist and
record ``missing_checkpoint``; it appends ``RANK`` to ``trained_by.txt`` next to the weights.
"""

import os
import time
from pathlib import Path

import torch

from baselines.downsample import Downsample


class RankTrained(Downsample):
    name = "rank_trained"
    display_name = "Rank-trained Downsample"

    @classmethod
    def checkpoints(cls, cfg, ctx):  # noqa: ANN001, ANN206
        return {"weights": Path(ctx.checkpoint_dir) / "rank_trained.pt"}

    @classmethod
    def train(cls, cfg, ctx, train_set, paths):  # noqa: ANN001, ANN206
        time.sleep(2.0)
        with open(Path(paths["weights"]).parent / "trained_by.txt", "a") as fh:
            fh.write(os.environ.get("RANK", "none") + "\n")
        torch.save({"scale": torch.ones(1)}, paths["weights"])
