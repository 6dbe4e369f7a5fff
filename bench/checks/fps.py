"""A published FPS protocol as a named timing mode: ISDNet's ``tools/fps_test.py`` (spec
refinement_track.md §5.4), our own code.

The harness's own timing stays the default everywhere else: per real image, ``refine`` alone,
I/O excluded, with the runner's warm-up (``bench.runtime.measure``). This mode instead times what
the released script times, so that a number can be set beside a paper's FPS:

- the network as its config builds it, *without weights* (``Method.timing_model(cfg, K)``:
  ``forward`` on a (1, 3, H, W) float tensor -> logits, the release's ``forward_dummy``, the whole
  encode-decode with the final upsample), ``eval()``, cuDNN benchmark off, float32;
- one random tensor of shape (1, 3, int(width * s), int(height * s)): the release passes
  ``--width`` where the height goes and ``--height`` where the width goes (``swap``, on by
  default; off gives (int(height * s), int(width * s))), with ``s`` = ``--scale-ratio``, 0.8 by
  default;
- 100 warm-up + 300 timed calls under ``no_grad``, each bracketed by a device synchronisation and
  ``time.perf_counter``; FPS = timed calls / their summed time. No I/O, no pre- or post-processing.

The record names the mode, the requested size, the scale, whether H and W were swapped, and the
(H, W) actually timed; :func:`caption` says the same in one line, for a table or a page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from bench.core.config import BenchConfig, format_size
from bench.core.errors import UserError
from bench.runtime.measure import device_name, provenance, sync

MODE = "published_fps"
SOURCE = "tools/fps_test.py of cedricgsh/ISDNet (ISDNet, CVPR 2022)"


@dataclass(frozen=True)
class FpsProtocol:
    """The released script's settings.

    Attributes:
        scale: ``--scale-ratio`` s (0.8, the script's default).
        warmup: untimed calls first (100).
        timed: timed calls (300); fewer are allowed for tests.
        swap: the script's (width * s, height * s) as (H, W) (True, as released).
        seed: seed of the random input tensor.
    """

    scale: float = 0.8
    warmup: int = 100
    timed: int = 300
    swap: bool = True
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`UserError` naming the bad setting."""
        if not self.scale > 0:
            raise UserError(f"fps: --scale must be > 0, got {self.scale}")
        if self.warmup < 0 or self.timed < 1:
            raise UserError(f"fps: --warmup must be >= 0 and --timed >= 1, got {self.warmup} and {self.timed}")


def timed_hw(size_wh: tuple[int, int], protocol: FpsProtocol) -> tuple[int, int]:
    """(H, W) of the timed tensor for a requested (w, h) size: ``(int(w s), int(h s))`` when
    ``swap`` (the release), else ``(int(h s), int(w s))``."""
    w, h = size_wh
    s = protocol.scale
    return (int(w * s), int(h * s)) if protocol.swap else (int(h * s), int(w * s))


def time_calls(model: torch.nn.Module, shape_hw: tuple[int, int], device: torch.device,
               protocol: FpsProtocol) -> dict[str, float]:
    """Run the protocol's calls on one random (1, 3, H, W) float32 tensor.

    Returns:
        ``total_s`` (summed seconds of the timed calls), ``fps`` (timed / total_s) and
        ``ms_per_call`` (1000 total_s / timed).
    """
    gen = torch.Generator().manual_seed(protocol.seed)
    x = torch.randn(1, 3, *shape_hw, generator=gen).to(device)
    total = 0.0
    with torch.no_grad():
        for j in range(protocol.warmup + protocol.timed):
            sync(device)
            start = time.perf_counter()
            model(x)
            sync(device)
            if j >= protocol.warmup:
                total += time.perf_counter() - start
    return {"total_s": total, "fps": protocol.timed / total, "ms_per_call": 1e3 * total / protocol.timed}


def caption(record: dict[str, Any]) -> str:
    """One line saying what was timed: mode, tensor shape, requested size and scale, calls, result."""
    h, w = record["timed_hw"]
    swap = ", width and height swapped as the release does" if record["swap"] else ""
    return (f"{record['display_name']}, published FPS protocol ({record['source']}): random (1, 3, {h}, {w}) "
            f"tensor = {record['requested_size']} x scale {record['scale']:g}{swap}; {record['warmup']} warm-up + "
            f"{record['timed']} timed forward calls without weights or I/O: {record['fps']:.2f} FPS "
            f"({record['ms_per_call']:.1f} ms per call) on {record['device_name']}, {record['threads']} thread(s). "
            f"Not the harness's per-image time (real images, refine alone).")


def run_fps(cfg: BenchConfig, name: str, protocol: FpsProtocol, size_wh: tuple[int, int] | None = None) -> dict[str, Any]:
    """Time method ``name`` under the protocol on ``cfg``'s device; returns the record (with ``caption``).

    Args:
        cfg: the dataset config (device, the method's options, the class count, ``data.size``).
        name: a registered method whose class has ``timing_model(cfg, num_classes)``.
        protocol: the settings.
        size_wh: requested (w, h); None = the data set's full image size (``data.size``).

    Raises:
        UserError: unknown method, one without ``timing_model``, bad settings or size.
    """
    from bench.core.registry import resolve
    from bench.data import dataset_info
    from bench.pipeline.unit import method_config, nominal_full_size, setup_torch

    protocol.check()
    try:
        cls = resolve(name)
    except KeyError as err:
        raise UserError(str(err.args[0] if err.args else err)) from err
    build = getattr(cls, "timing_model", None)
    if build is None:
        raise UserError(f"fps: method {name!r} has no timing_model (a tensor forward without weights); the "
                        f"published FPS protocol is defined for methods that are whole segmenters, e.g. isdnet")
    size = tuple(size_wh) if size_wh else nominal_full_size(cfg)
    if min(size) <= 0:
        raise UserError(f"fps: no image size for dataset {cfg.dataset!r}; pass --size WxH")
    shape = timed_hw((int(size[0]), int(size[1])), protocol)
    if min(shape) < 32:
        raise UserError(f"fps: the timed tensor {shape[0]}x{shape[1]} (H x W) is below 32 px; raise --size or --scale")
    device = setup_torch(cfg)  # threads and device as the config says
    info = dataset_info(cfg)
    model = build(method_config(cfg, cls, name), info.num_classes).to(device).eval()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # as the released script
    try:
        timing = time_calls(model, shape, device, protocol)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    record: dict[str, Any] = {
        "mode": MODE, "source": SOURCE, "method": name, "display_name": cls.display_name, "dataset": cfg.dataset,
        "requested_size": format_size(size), "scale": protocol.scale, "swap": protocol.swap,
        "timed_hw": [shape[0], shape[1]], "warmup": protocol.warmup, "timed": protocol.timed, **timing,
        "weights": "none (random initialisation, as the released script)", "dtype": "float32",
        "device_name": device_name(device), "threads": torch.get_num_threads(),
        "provenance": provenance(device, protocol.seed),
    }
    record["caption"] = caption(record)
    return record
