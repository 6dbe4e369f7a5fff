"""The sweep: train what is missing, then run every (method, input size) unit, appending records.

Each unit runs in a fresh subprocess by default (``isolate``), which is what makes the CPU
peak-memory figure that of the unit alone and keeps one crashing method from ending the sweep.
The worker dies with the sweep's process (``bench.procs``) and reports its status back through
a file. A rerun skips images already recorded with status ok under the same ``unit_key`` (a hash
of the resolved config, method version, input size and the digests of the weights used).

An image that cannot be read (a corrupt file, a label value outside the format, an image and
label of different sizes) is recorded as a failed image record with its reason, and its unit
goes on; every image record carries ``n_expected``, the number of images the unit covers, so
the tables can show a unit that did not cover them all as partial.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench import checkpoint_meta, distributed, measure, procs, records, reference
from bench.coarse import compute_coarse, resize_image
from bench.config import BenchConfig, build, file_digest, format_size, method_config_values, parse_size, stable_hash
from bench.datasets import create_dataset, dataset_class, dataset_info
from bench.interface import DatasetInfo, MethodContext, config_from_mapping
from bench.metrics import boundary_accuracy_radii, confusion_matrix
from bench.predictions import save_unit_predictions
from bench.registry import MethodUnavailable, resolve


class MissingCheckpoint(RuntimeError):
    """A learned method's weights are absent and training was not requested or not possible."""


def records_file(cfg: BenchConfig) -> Path:
    """This process's record file: ``records.jsonl``, or one per rank under torchrun."""
    rank, _, world = distributed.env_world()
    return cfg.out_path / (f"records-rank{rank}.jsonl" if world > 1 or rank != 0 else "records.jsonl")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_torch(cfg: BenchConfig) -> torch.device:
    """Threads, seeds and the device, as the config says (under torchrun, ``cuda`` is cuda:LOCAL_RANK)."""
    distributed.bind_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        import cv2  # OpenCV's own pool (resizes, guided filter) obeys the same thread count

        cv2.setNumThreads(cfg.threads)
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    return device


def split_image_size(cfg: BenchConfig, split: str) -> tuple[int, int] | None:
    """Nominal (w, h) of a split's images from the config and the dataset class, without opening it.

    The same value :func:`image_size` gives for an opened split: ``data.size`` (with
    ``train_data.size`` on the training split), else the class's default or nominal size;
    None when the class has neither (its images vary).
    """
    size = cfg.data.get("size")
    if split == cfg.train_split:
        size = cfg.train_data.get("size", size)
    if size is not None:
        return parse_size(size)
    klass = dataset_class(cfg.dataset)
    nominal = getattr(klass, "default_size", None) or getattr(klass, "nominal_size", None)
    return tuple(nominal) if nominal else None


def open_split(cfg: BenchConfig, split: str) -> Any:
    """The dataset split, with ``train_data.*`` kwargs applied to the training split."""
    kwargs = dict(cfg.data)
    if split == cfg.train_split:
        kwargs.update(cfg.train_data)
    if kwargs.get("size") is not None:
        kwargs["size"] = parse_size(kwargs["size"])
    return create_dataset(cfg.dataset, root=cfg.data_root, split=split, **kwargs)


def image_size(dataset: Any) -> tuple[int, int]:
    """Nominal (w, h) of a dataset's images (the first image's size when it has none)."""
    size = getattr(dataset, "image_size", None)
    if size:
        return tuple(size)
    first = dataset[0].image
    return first.shape[1], first.shape[0]


def load_backbone(cfg: BenchConfig, info: DatasetInfo, device: torch.device) -> torch.nn.Module:
    """The trained backbone in eval mode on ``device``.

    Raises:
        MissingCheckpoint: no weights at ``cfg.backbone_path``.
        StaleCheckpoint: their sidecar says they were trained under other options than ``cfg``'s.
    """
    from bench.backbones import create_backbone

    if not cfg.backbone_path.is_file():
        raise MissingCheckpoint(f"backbone weights not found at {cfg.backbone_path}: run `make train DATASET={cfg.dataset}` "
                                f"or give backbone_checkpoint=PATH")
    checkpoint_meta.check_backbone(cfg)
    model = create_backbone(cfg.backbone, info.num_classes, checkpoint=cfg.backbone_path, **dict(cfg.backbone_options))
    return model.to(device).eval()


def make_context(cfg: BenchConfig, info: DatasetInfo, size: tuple[int, int], device: torch.device,
                 backbone: Any, full_size: tuple[int, int]) -> MethodContext:
    method_dir = cfg.method_checkpoint_path(size, file_digest(cfg.backbone_path, length=8))
    return MethodContext(num_classes=info.num_classes, input_size=tuple(size), device=device, backbone=backbone,
                         checkpoint_dir=method_dir, dataset=info, image_size=tuple(full_size),
                         options={"coarse_scale": cfg.coarse_scale, "seed": cfg.seed})


def context_for(cfg: BenchConfig, cls: type, size: tuple[int, int] | None = None) -> MethodContext:
    """A ready context for one method: the config's device and input size, the trained backbone."""
    device = torch.device(cfg.device)
    info = dataset_info(cfg)
    klass = dataset_class(cfg.dataset)
    nominal = getattr(klass, "default_size", None) or getattr(klass, "nominal_size", None) or (0, 0)
    full = parse_size(cfg.data["size"]) if cfg.data.get("size") else tuple(nominal)
    backbone = load_backbone(cfg, info, device) if (cls.needs_backbone or cls.uses_coarse) else None
    return make_context(cfg, info, tuple(size or cfg.input_size), device, backbone, full)


def method_config(cfg: BenchConfig, cls: type, name: str) -> Any:
    """The method's frozen Config: dataclass defaults < configs/methods/<name>.yaml < sweep overrides."""
    return config_from_mapping(cls.Config, method_config_values(cfg, name))


def unit_key(cfg: BenchConfig, name: str, cls: type, mcfg: Any, size: tuple[int, int], ctx: MethodContext) -> str:
    """Hash of everything a unit's results depend on."""
    weights = {k: file_digest(p) for k, p in cls.checkpoints(mcfg, ctx).items()}
    if cls.needs_backbone or cls.uses_coarse:
        weights["backbone"] = file_digest(cfg.backbone_path)
    return stable_hash({
        "bench_version": cfg.version, "dataset": cfg.dataset, "data_root": cfg.data_root, "split": cfg.split,
        "data": dict(cfg.data), "limit": cfg.limit, "method": name, "method_version": cls.version,
        "method_config": dataclasses.asdict(mcfg), "size": list(size), "coarse_scale": cfg.coarse_scale,
        "backbone": cfg.backbone, "backbone_options": dict(cfg.backbone_options), "weights": weights,
        "device": cfg.device,
    })


def checkpoint_files(cfg: BenchConfig, cls: type, mcfg: Any, ctx: MethodContext) -> dict[str, Path]:
    """The weight files a method loads in ``ctx``, by key (the backbone under ``backbone``)."""
    paths = dict(cls.checkpoints(mcfg, ctx))
    if cls.needs_backbone or cls.uses_coarse:
        paths["backbone"] = cfg.backbone_path
    return paths


def unit_weights(cfg: BenchConfig, name: str, size: tuple[int, int]) -> dict[str, Path]:
    """The weight files of unit (``name``, ``size``) at the config's nominal image size."""
    cls = resolve(name)
    full = parse_size(cfg.data["size"]) if cfg.data.get("size") else (0, 0)
    ctx = make_context(cfg, dataset_info(cfg), size, torch.device("cpu"), None, full)
    return checkpoint_files(cfg, cls, method_config(cfg, cls, name), ctx)


def unit_keys(cfg: BenchConfig) -> dict[tuple[str, tuple[int, int]], str | None]:
    """The current key of every unit (None where the method cannot be resolved)."""
    info = dataset_info(cfg)
    device = torch.device("cpu")
    full = parse_size(cfg.data["size"]) if cfg.data.get("size") else (0, 0)  # "WxH" or [w, h]
    keys: dict[tuple[str, tuple[int, int]], str | None] = {}
    for name, size in cfg.units():
        try:
            cls = resolve(name)
        except (KeyError, MethodUnavailable):
            keys[(name, size)] = stable_hash({"unresolved": name, "size": list(size), "dataset": cfg.dataset})
            continue
        mcfg = method_config(cfg, cls, name)
        ctx = make_context(cfg, info, size, device, None, full)
        keys[(name, size)] = unit_key(cfg, name, cls, mcfg, size, ctx)
    return keys


def _image_record(ukey: str, name: str, method: Any, size: tuple[int, int], sample: Any, pred: np.ndarray,
                  info: DatasetInfo, times: dict[str, float], mem: dict[str, Any], prov: dict[str, Any]) -> dict[str, Any]:
    cls = type(method)
    cm = confusion_matrix(sample.label, pred, info.num_classes, info.ignore_index)
    radii = boundary_accuracy_radii(sample.label, pred, info.ignore_index)
    mba = float("nan") if any(np.isnan(radii)) else float(np.mean(radii))
    # a method may name its variant (MagNet's "released"/"paper" behaviour) in ``label``
    display = getattr(method, "label", None) or cls.display_name
    return {"type": "image", "unit_key": ukey, "method": name, "display_name": display,
            "method_version": cls.version, "size": format_size(size), "image_id": sample.id, "status": "ok",
            "cm": cm.tolist(), "mba": mba, "mba_radii": radii, **times, **mem, "provenance": prov}


def _predict(method: Any, cls: type, sample: Any, backbone: Any, ctx: MethodContext,
             probe: measure.MemoryProbe) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """One timed coarse + refine; returns (H, W) int64 labels, timings (ms) and memory."""
    probe.start()
    coarse, t_coarse = None, 0.0
    if cls.uses_coarse:
        coarse, t_coarse = measure.timed(lambda: compute_coarse(backbone, sample.image, ctx.input_size, ctx.device,
                                                                ctx.options.get("coarse_scale")), ctx.device)
    pred, t_refine = measure.timed(lambda: method.refine(sample.image, coarse), ctx.device)
    mem = probe.stop()
    labels, t_copy = measure.timed(lambda: pred.to("cpu").numpy(), ctx.device)
    if labels.shape != sample.label.shape:
        raise RuntimeError(f"{cls.name} returned {labels.shape}, expected the image's {sample.label.shape}")
    times = {"time_coarse_ms": t_coarse, "time_refine_ms": t_refine, "time_ms": t_coarse + t_refine,
             "time_e2e_ms": t_coarse + t_refine + t_copy}
    return labels, times, mem


def _unit_failure(cfg: BenchConfig, ukey: str, name: str, size: tuple[int, int], status: str, message: str) -> None:
    records.append(records_file(cfg), {"type": "unit", "unit_key": ukey, "method": name, "size": format_size(size),
                                       "status": status, "message": message[-4000:]})


def _pending(cfg: BenchConfig, dataset: Any, ukey: str) -> list[int]:
    """This rank's image indices that no rank has recorded yet.

    The shard is taken before the recorded images are removed, so it never depends on how far the
    other ranks have got.
    """
    ids = dataset.ids()
    done = records.done_images(records.load(cfg.out_path), ukey)
    return [i for i in _shard(list(range(n_expected(cfg, dataset)))) if ids[i] not in done]


def n_expected(cfg: BenchConfig, dataset: Any) -> int:
    """How many images a unit covers: the split's, or its first ``limit``."""
    n = len(dataset.ids())
    return n if cfg.limit is None else min(cfg.limit, n)


def _shard(indices: list[int]) -> list[int]:
    rank, _, world = distributed.env_world()
    return indices[rank::world]


def run_unit(cfg: BenchConfig, name: str, size: tuple[int, int]) -> str:
    """Run one (method, input size) in this process; returns a status string."""
    device = setup_torch(cfg)
    dataset = open_split(cfg, cfg.split)
    info, full = dataset.info, image_size(dataset)
    ukey = stable_hash({"unresolved": name, "size": list(size), "dataset": cfg.dataset})
    try:
        cls = resolve(name)
        mcfg = method_config(cfg, cls, name)
        ukey = unit_key(cfg, name, cls, mcfg, size, make_context(cfg, info, size, device, None, full))
        pending = _pending(cfg, dataset, ukey)
        if not pending:
            return "done"
        needed = checkpoint_files(cfg, cls, mcfg, make_context(cfg, info, size, device, None, full)).values()
        reference.verify(cfg.checkpoint_path, [p for p in needed if Path(p).is_file()])  # before any is loaded
        probe = measure.MemoryProbe(device)
        backbone = load_backbone(cfg, info, device) if (cls.needs_backbone or cls.uses_coarse) else None
        ctx = make_context(cfg, info, size, device, backbone, full)
        paths = cls.checkpoints(mcfg, ctx)
        missing = [str(p) for p in paths.values() if not Path(p).is_file()]
        if missing:
            raise MissingCheckpoint(f"{name} weights not found: {missing}; run `make train DATASET={cfg.dataset}`")
        checkpoint_meta.check(paths, checkpoint_meta.training_options(cls, mcfg, cfg.backbone_path, cfg.seed), name)
        method = cls(mcfg, ctx)
        probe.setup_done()
    except MethodUnavailable as err:
        _unit_failure(cfg, ukey, name, size, "unavailable", str(err))
        return "unavailable"
    except MissingCheckpoint as err:
        _unit_failure(cfg, ukey, name, size, "missing_checkpoint", str(err))
        return "missing_checkpoint"
    except checkpoint_meta.StaleCheckpoint as err:
        _unit_failure(cfg, ukey, name, size, "stale_checkpoint", str(err))
        return "stale_checkpoint"
    except reference.ReferenceMismatch as err:
        _unit_failure(cfg, ukey, name, size, "reference_mismatch", str(err))
        return "reference_mismatch"
    return _sweep_images(cfg, name, cls, size, ukey, dataset, pending, method, backbone, ctx, probe)


def _load_sample(dataset: Any, index: int) -> tuple[Any, str | None]:
    """``(sample, None)``, or ``(None, reason)`` when the image or its label cannot be read.

    Any exception of the reader counts: a corrupt PNG, a label value outside the format or a
    size mismatch is the data's fault, and the unit goes on with the next image.
    """
    try:
        return dataset[index], None
    except Exception as err:  # noqa: BLE001 - the reason is recorded and shown in the tables
        return None, f"{type(err).__name__}: {err}"


def _failed_image(cfg: BenchConfig, ukey: str, name: str, size: tuple[int, int], image_id: str, reason: str,
                  expected: int) -> None:
    records.append(records_file(cfg), {"type": "image", "unit_key": ukey, "method": name, "size": format_size(size),
                                       "image_id": image_id, "status": "error", "message": reason[-2000:],
                                       "n_expected": expected})
    print(f"[bench] {name} @ {format_size(size)}: image {image_id} failed, recorded, going on: {reason}",
          file=sys.stderr, flush=True)


def _sweep_images(cfg: BenchConfig, name: str, cls: type, size: tuple[int, int], ukey: str, dataset: Any,
                  pending: list[int], method: Any, backbone: Any, ctx: MethodContext, probe: measure.MemoryProbe) -> str:
    """Every pending image of one unit; returns ``ok``, ``partial`` (some image failed) or ``oom``."""
    prov = measure.provenance(ctx.device, cfg.seed)
    prov["warmup"] = cfg.warmup
    from bench.released import provenance as released_provenance  # issue 12: the released files' sha256

    prov.update(released_provenance(cfg))  # {} unless released_weights= is set
    out, ids, expected = records_file(cfg), dataset.ids(), n_expected(cfg, dataset)
    status, warm = "ok", False
    with torch.inference_mode():
        for index in tqdm(pending, desc=f"{name} @ {format_size(size)}", disable=not sys.stderr.isatty()):
            sample, reason = _load_sample(dataset, index)
            if sample is None:
                _failed_image(cfg, ukey, name, size, ids[index], reason or "", expected)
                status = "partial"
                continue
            if not warm:  # warm up on the first image that loads, so a bad first image spoils nothing
                for _ in range(cfg.warmup):
                    _predict(method, cls, sample, backbone, ctx, probe)
                warm = True
            try:
                labels, times, mem = _predict(method, cls, sample, backbone, ctx, probe)
            except torch.OutOfMemoryError as err:
                _unit_failure(cfg, ukey, name, size, "oom", f"{sample.id}: {err}")
                return "oom"
            record = _image_record(ukey, name, method, size, sample, labels, dataset.info, times, mem, prov)
            records.append(out, {**record, "n_expected": expected})
            # label maps for the pictures (bench.panels); after the record, outside every measurement
            save_unit_predictions(cfg, name, size, ukey, index, sample, labels, method, backbone, ctx)
    return status


def train_missing(cfg: BenchConfig) -> dict[str, str]:
    """Train the backbone and every method checkpoint the sweep needs that is missing.

    Under torchrun the ranks share the work (``bench.distributed.train_all``).

    Returns:
        ``{what: status}`` with status ``trained``, ``present``, ``missing`` (training off) or
        ``unavailable``/``untrainable`` with the reason.
    """
    from bench.train_cli import train_all

    if cfg.train:
        reference.refuse_write(cfg.checkpoint_path)
    return distributed.train_all(cfg) if distributed.env_world()[2] > 1 else train_all(cfg)


def _child(cfg: BenchConfig, name: str, size: tuple[int, int], config_path: Path,
           keep_fds: tuple[int, ...] = ()) -> tuple[int, str, str]:
    """Run one unit in a worker that dies with this process; returns (exit code, stderr, status).

    ``keep_fds`` stay open in the worker (the ``out_dir`` lock, so that it is held until the
    last worker of a killed run is gone).
    """
    status_path = config_path.with_name(f"status-{name}-{format_size(size)}.txt")
    status_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench", "unit", str(config_path), name, format_size(size),
           "--status-file", str(status_path)]
    parent = os.getpid()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=measure.child_env(cfg.allocator),
                          preexec_fn=procs.worker_preexec(parent), pass_fds=keep_fds)
    status = status_path.read_text().strip() if status_path.is_file() else ""
    return proc.returncode, proc.stderr, status or ("ok" if proc.returncode == 0 else "error")


def run_sweep(cfg: BenchConfig, *, lock_fd: int | None = None) -> dict[tuple[str, tuple[int, int]], str]:
    """Every unit of the sweep; a failing unit is recorded and the sweep goes on.

    Returns:
        ``{(method, size): status}``: ``ok``, ``done`` (nothing left to run), ``partial`` (some
        image failed), or a failure status (``error``, ``missing_checkpoint``, ...).
    """
    results: dict[tuple[str, tuple[int, int]], str] = {}
    cfg.out_path.mkdir(parents=True, exist_ok=True)
    # in out_dir, named by pid, so a run killed by SIGKILL leaves it where the next run removes it
    with tempfile.TemporaryDirectory(dir=cfg.out_path, prefix=f"{procs.TEMP_PREFIX}{os.getpid()}-") as tmp:
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(cfg.to_dict()))
        for name, size in cfg.units():
            if not cfg.isolate:
                results[(name, size)] = _run_in_process(cfg, name, size)
                continue
            code, err, status = _child(cfg, name, size, config_path, () if lock_fd is None else (lock_fd,))
            if code != 0:
                key = unit_keys(cfg).get((name, size)) or ""
                _unit_failure(cfg, key, name, size, "error", f"exit code {code}\n{err}")
                print(f"[bench] {name} @ {format_size(size)} failed (exit {code}); recorded, going on", file=sys.stderr)
            results[(name, size)] = status
    return results


def _run_in_process(cfg: BenchConfig, name: str, size: tuple[int, int]) -> str:
    try:
        return run_unit(cfg, name, size)
    except Exception:  # noqa: BLE001 - any failure becomes a recorded status
        key = unit_keys(cfg).get((name, size)) or ""
        _unit_failure(cfg, key, name, size, "error", traceback.format_exc())
        return "error"


def config_from_file(path: Path) -> BenchConfig:
    """A config written by ``run_sweep`` for a child process."""
    return build(json.loads(Path(path).read_text()))
