"""Training pairs for MagNet's refiner (magnet.md §2.1), with exact caches.

A pair is drawn per image: the fine scale S uniformly from the scales the refiner serves, a crop
position ``x ~ randint[0, S.w - c.w)``, ``y ~ randint[0, S.h - c.h)``; the image and label are
resized to S (INTER_LINEAR / INTER_NEAREST), cropped, and resized to n; the box in coarse-map
pixels is ``(x / S.w * n.w, y / S.h * n.h, (x + c.w) / S.w * n.w, (y + c.h) / S.h * n.h)``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.core.interface import Dataset, normalize
from magnet.config import Plan
from magnet.geometry import Size
from magnet.inference import resize
from magnet.roi_align import roi_align


def _resize_label(label: np.ndarray, size: Size) -> np.ndarray:
    if (label.shape[1], label.shape[0]) == tuple(size):
        return label
    return cv2.resize(label, tuple(size), interpolation=cv2.INTER_NEAREST)


class PairSource:
    """Training pairs with exact caching of coarse probabilities and resized images.

    Args:
        train_set: dataset of ``Sample`` s.
        plan: resolved geometry.
        backbone: frozen backbone (eval mode).
        device: where tensors go.
        budget_mb: cache size limit; coarse probabilities are cached first, then resized images.
    """

    def __init__(self, train_set: Dataset, plan: Plan, backbone: torch.nn.Module, device: torch.device,
                 budget_mb: int) -> None:
        self.data, self.plan, self.backbone, self.device = train_set, plan, backbone, device
        self.budget = budget_mb * (1 << 20)
        self._coarse: dict[int, torch.Tensor] = {}
        self._scaled: dict[tuple[int, Size], tuple[np.ndarray, np.ndarray]] = {}
        self._used = 0

    def __len__(self) -> int:
        return len(self.data)

    def _admit(self, nbytes: int) -> bool:
        if self._used + nbytes > self.budget:
            return False
        self._used += nbytes
        return True

    def _load(self, indices: list[int]) -> dict[int, Any]:
        """Read each sample once: cache its resized images (every trained scale) within the budget."""
        samples = {}
        for i in indices:
            sample = self.data[i]
            samples[i] = sample
            for scale in self.plan.scales[1:]:
                nbytes = scale[0] * scale[1] * (sample.image.shape[2] * sample.image.itemsize + sample.label.itemsize)
                if (i, scale) not in self._scaled and self._admit(nbytes):
                    self._scaled[(i, scale)] = (resize(sample.image, scale), _resize_label(sample.label, scale))
        return samples

    @torch.no_grad()
    def coarse(self, indices: list[int]) -> list[torch.Tensor]:
        """(C, nh, nw) coarse softmax per image: backbone on the whole image resized to n (one step)."""
        fresh: dict[int, torch.Tensor] = {}
        missing = [i for i in indices if i not in self._coarse]
        if missing:
            samples = self._load(missing)
            images = np.stack([resize(samples[i].image, self.plan.input_size) for i in missing])
            probs = F.softmax(self.backbone(normalize(images, self.device)).float(), dim=1)
            for i, p in zip(missing, probs):
                fresh[i] = p
                if self._admit(p.numel() * p.element_size()):
                    self._coarse[i] = p
        return [self._coarse[i] if i in self._coarse else fresh[i] for i in indices]

    def scaled(self, index: int, scale: Size) -> tuple[np.ndarray, np.ndarray]:
        """Image (INTER_LINEAR) and label (INTER_NEAREST) resized to ``scale``."""
        key = (index, scale)
        if key in self._scaled:
            return self._scaled[key]
        sample = self.data[index]
        return resize(sample.image, scale), _resize_label(sample.label, scale)

    def warm(self, batch: int = 16) -> None:
        """Fill the caches in batches (while the budget lasts), reading every sample once."""
        for start in range(0, len(self), batch):
            self.coarse(list(range(start, min(start + batch, len(self)))))


def sample_batch(source: PairSource, indices: list[int], scales: tuple[Size, ...],
                 rng: np.random.RandomState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch.

    Returns:
        ``(fine, coarse_crop, target)``: backbone softmax of the fine patches (b, C, nh, nw), RoIAlign
        crops of the coarse softmax at the patches' boxes (b, C, nh, nw), labels (b, nh, nw) int64.
    """
    (cw, ch), (nw, nh) = source.plan.crop, source.plan.input_size
    patches, labels, crops = [], [], []
    coarse = source.coarse(indices)
    for index, probs in zip(indices, coarse):
        sw, sh = scales[rng.randint(len(scales))]
        x, y = rng.randint(0, max(sw - cw, 1)), rng.randint(0, max(sh - ch, 1))
        image, label = source.scaled(index, (sw, sh))
        patches.append(resize(image[y:y + ch, x:x + cw], (nw, nh)))
        labels.append(_resize_label(label[y:y + ch, x:x + cw], (nw, nh)))
        box = torch.tensor([[x / sw * nw, y / sh * nh, (x + cw) / sw * nw, (y + ch) / sh * nh]])
        crops.append(roi_align(probs, box, (nh, nw)))
    with torch.no_grad():
        fine = F.softmax(source.backbone(normalize(np.stack(patches), source.device)).float(), dim=1)
    target = torch.as_tensor(np.stack(labels).astype(np.int64), device=source.device)
    return fine, torch.cat(crops), target
