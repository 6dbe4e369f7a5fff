"""``make smoke``: every registered method once on the real samples of ``../shared/data``, at native size.

The aim is to show that the real loaders and every method run at real image sizes, and to measure
what that costs. Accuracy is not the aim. The samples: one Cityscapes frame (2048x1024, also run
halved to 1024x512 to give the growth factor for a 2x side on the same content), the DeepGlobe tile
(2448x2448) and the Inria crop (1000x1000).

Weights: the synthetic benchmark's, with its config (``configs/datasets/synthetic.yaml``, the
light backbone, its method options). The backbone comes from ``cfg.backbone_path`` and the methods'
weights from ``cfg.method_checkpoint_path(input size, backbone digest)``. Nothing is trained here:
missing weights, or weights whose training sidecar (``bench.weights.sidecar``) disagrees with the
config, are an error that says to run ``make train`` first (the default is the reference set,
weights/synthetic, which is always there).

Geometry: the input size is the synthetic one (128x64) with its long side kept and its short side
following the image's aspect ratio (128x128 for the square tiles). MagNet's scales double from
the input size (its crop) up to the image size (:data:`GEOMETRY`). The synthetic config stops
them at its own 1024x512, and a MagNet that stops there would not run at real size. At 2048x1024
the plan has one more stage than at 1024x512, and that stage uses the last refiner. The plan then
names its weight files differently, so each weight is taken by its key (``refiner_0``, ...) from
the trained files.

Each (method, image) runs in a fresh subprocess, as the runner's units do, so the memory figure
is that method's alone. Per image: one untimed warm-up call (``--warmup``), then ``--repeats``
timed calls through the runner's own measurement (``bench.pipeline.unit.predict``). Time is the median
over the repeats of the coarse pass plus ``refine()``, in ms of wall clock. CPU time is the
process's CPU time over the same calls (all threads); it barely moves when other processes share
the cores, so it gives the more reliable growth factor on a busy machine. Memory is the largest
resident-set growth over the resident set after setup (method built, weights loaded, image
decoded), in MiB.

Accuracy (mIoU over the classes present, mBA) is reported only where the dataset's class set is
the model's (Cityscapes: the synthetic scenes use its 19 classes). The model knows nothing of
DeepGlobe's 7 or Inria's 2 classes. On those images the method still runs for time and memory,
and the real loader still decodes the label, but no accuracy is reported.

Outputs, rewritten on every run: ``results/smoke/smoke.jsonl`` (one record per method and image)
and ``results/smoke/smoke.md`` (the tables). If the data folder is absent the command skips and
exits 0. It exits 1 if any method failed and 2 if the weights are missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.evaluation import records
from bench.weights import reference
from bench.core.config import BenchConfig, build, format_size, parse_overrides, parse_size
from bench.pipeline.configure import load

if TYPE_CHECKING:  # bench.core.interface imports torch, which the smoke parent process never needs
    from bench.core.interface import Method

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_OUT = Path("results/smoke")


class SmokeError(RuntimeError):
    """The smoke run cannot start (weights missing); the message says what to do."""


@dataclass(frozen=True)
class SmokeImage:
    """One real sample: which loader reads it, from where, and at what scale.

    Attributes:
        dataset: registry key of the real loader (``bench.data``).
        folder: the loader's root, relative to the data folder.
        split: split passed to the loader.
        index: sample index in that split.
        scale: per-side factor applied after loading (0.5: image INTER_AREA, label INTER_NEAREST).
    """

    dataset: str
    folder: str
    split: str
    index: int = 0
    scale: float = 1.0


SAMPLES = (
    SmokeImage("cityscapes", "cityscapes", "train", 0, 0.5),
    SmokeImage("cityscapes", "cityscapes", "train", 0),
    SmokeImage("deepglobe", "deepglobe", "all", 0),
    SmokeImage("inria", "inria", "all", 0),
)


def input_size_for(image_wh: tuple[int, int], trained: tuple[int, int]) -> tuple[int, int]:
    """The trained input size with its long side kept and the other following the image's aspect.

    (2048, 1024) with (128, 64) -> (128, 64); (2448, 2448) -> (128, 128). Sides are multiples of 8.
    """
    (w, h), long_side = image_wh, max(trained)
    if w >= h:
        return long_side, max(8, int(round(long_side * h / w / 8)) * 8)
    return max(8, int(round(long_side * w / h / 8)) * 8), long_side


# MagNet's stages must reach the image to run it at real size: the synthetic config fixes its
# scales at 128x64..1024x512 (its own images), so the smoke run derives them from the input size
# doubling up to each image's size, with the input size as the crop. magnet_fast and
# magnet_fast_paper inherit these (configs/methods/magnet_fast.yaml).
GEOMETRY: dict[str, Any] = {"magnet.scales": [], "magnet.crop_size": None}


def trained_image_size(cfg: BenchConfig) -> tuple[int, int]:
    """(w, h) of the images the synthetic weights were trained on (``data.size``)."""
    from bench.data import dataset_class

    size = cfg.data.get("size") or getattr(dataset_class(cfg.dataset), "default_size", None)
    if not size:
        raise SmokeError(f"config of {cfg.dataset!r} has no data.size: cannot locate its trained weights")
    return parse_size(size)


def trained_weights(cfg: BenchConfig, name: str) -> dict[str, Path]:
    """The synthetic weight files ``name`` loads, by key (backbone under ``backbone``): the sweep's own
    ``bench.pipeline.unit.checkpoint_files`` at the geometry the weights were trained for.

    Raises:
        KeyError / MethodUnavailable: from the registry.
    """
    import torch

    from bench.data import dataset_info
    from bench.core.registry import resolve
    from bench.pipeline.unit import checkpoint_files, make_context, method_config

    cls = resolve(name)
    w, h = cfg.input_size
    ctx = make_context(cfg, dataset_info(cfg), (w, h), torch.device("cpu"), None, trained_image_size(cfg))
    return checkpoint_files(cfg, cls, method_config(cfg, cls, name), ctx)


def _stale(cfg: BenchConfig, name: str, paths: dict[str, Path]) -> str | None:
    """Why ``name``'s weights were trained under other options than ``cfg`` asks for (their sidecars), or None."""
    from bench.weights import sidecar
    from bench.core.registry import resolve
    from bench.pipeline.unit import method_config

    cls = resolve(name)
    options = sidecar.training_options(cls, method_config(cfg, cls, name), cfg.backbone_path, cfg.seed)
    try:
        sidecar.check({k: p for k, p in paths.items() if k != "backbone"}, options, name)
    except sidecar.StaleCheckpoint as err:
        return str(err)
    return None


def check_weights(cfg: BenchConfig, methods: list[str]) -> dict[str, str]:
    """Fail clearly if a synthetic weight file is missing or stale; returns ``{method: why}`` for unresolvable ones.

    Raises:
        SmokeError: listing the missing (or stale) files and saying how to make them.
    """
    from bench.core.registry import MethodUnavailable

    missing, stale, unresolved = [], [], {}
    for name in methods:
        try:
            paths = trained_weights(cfg, name)
        except (KeyError, MethodUnavailable) as err:
            unresolved[name] = str(err)
            continue
        missing += [f"{name}: {p}" for p in paths.values() if not Path(p).is_file()]
        if not missing:
            try:
                reference.verify(cfg.checkpoint_path, list(paths.values()))
            except reference.ReferenceMismatch as err:
                raise SmokeError(str(err)) from err
        why = None if missing else _stale(cfg, name, paths)
        stale += [why] if why else []
    if missing or stale:
        what = "missing" if missing else "stale"
        raise SmokeError(f"synthetic weights {what} (the smoke run uses the synthetic benchmark's weights):\n  "
                         + "\n  ".join(dict.fromkeys(missing or stale))
                         + "\nrun `make train` first (it trains results/checkpoints/synthetic/), or use the reference weights (train: false)")
    return unresolved


def link_weights(trained: BenchConfig, cls: type[Method], mcfg: Any, ctx: Any, name: str) -> None:
    """Symlink each weight file ``cls`` wants in ``ctx.checkpoint_dir`` to the trained file of the same key.

    ``trained`` is the config the weights were trained with (without the smoke run's geometry).

    Raises:
        SmokeError: the plan at this image size needs a key the trained weights do not have.
    """
    have = trained_weights(trained, name)
    for key, path in cls.checkpoints(mcfg, ctx).items():
        if key not in have:
            raise SmokeError(f"{name} at {format_size(ctx.image_size)} needs weights {key!r}; the synthetic ones "
                             f"are {sorted(k for k in have if k != 'backbone')}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).symlink_to(Path(have[key]).resolve())


def load_sample(image: SmokeImage, data: Path) -> tuple[Any, Any]:
    """The sample through the real loader, scaled; returns (sample, dataset info).

    Sample: image (H, W, 3) uint8 RGB, label (H, W) uint8 class ids of the real dataset.
    """
    import cv2

    from bench.data import create_dataset
    from bench.core.interface import Sample

    dataset = create_dataset(image.dataset, root=data / image.folder, split=image.split)
    sample = dataset[image.index]
    if image.scale != 1.0:
        h, w = sample.label.shape
        size = (int(round(w * image.scale)), int(round(h * image.scale)))
        sample = Sample(sample.id, cv2.resize(sample.image, size, interpolation=cv2.INTER_AREA),
                        cv2.resize(sample.label, size, interpolation=cv2.INTER_NEAREST))
    return sample, dataset.info


def _accuracy(model_info: Any, data_info: Any, label: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """mIoU (absent classes excluded) and mBA in %, or the reason there is none."""
    from bench.evaluation.metrics import boundary_accuracy_radii, confusion_matrix, iou_per_class, mean_iou

    if tuple(model_info.class_names) != tuple(data_info.class_names):
        return {"miou": None, "mba": None,
                "accuracy_note": f"not scored: the model's {model_info.num_classes} {model_info.name} classes are "
                                 f"not {data_info.name}'s {data_info.num_classes}"}
    cm = confusion_matrix(label, pred, data_info.num_classes, data_info.ignore_index)
    radii = boundary_accuracy_radii(label, pred, data_info.ignore_index)
    return {"miou": 100 * mean_iou(iou_per_class(cm), data_info.excluded_from_mean),
            "mba": None if any(np.isnan(radii)) else 100 * float(np.mean(radii)), "accuracy_note": ""}


def run_unit(spec: dict[str, Any]) -> dict[str, Any]:
    """One method on one image, in this (fresh) process; returns its record."""
    import torch

    from bench.runtime import measure
    from bench.data import dataset_info
    from bench.core.registry import resolve
    from bench.pipeline.unit import load_backbone, make_context, method_config, predict as _predict, setup_torch

    cfg, name, image = build(spec["config"]), spec["method"], SmokeImage(**spec["image"])
    trained = build(spec["trained_config"])
    device = setup_torch(cfg)
    sample, data_info = load_sample(image, Path(spec["data"]))
    full = (sample.image.shape[1], sample.image.shape[0])
    w, h = cfg.input_size
    size = input_size_for(full, (w, h))
    model_info = dataset_info(cfg)
    cls = resolve(name)
    mcfg = method_config(cfg, cls, name)
    probe = measure.MemoryProbe(device)
    backbone = load_backbone(cfg, model_info, device) if (cls.needs_backbone or cls.uses_coarse) else None
    with tempfile.TemporaryDirectory() as weights:
        # the sweep's context at this image's geometry, its weights linked from the trained ones
        ctx = dataclasses.replace(make_context(cfg, model_info, size, device, backbone, full),
                                  checkpoint_dir=Path(weights))
        link_weights(trained, cls, mcfg, ctx, name)
        method = cls(mcfg, ctx)
    probe.setup_done()
    runs = []
    with torch.inference_mode():
        for i in range(spec["warmup"] + spec["repeats"]):
            start = time.process_time()
            labels, times, mem = _predict(method, cls, sample, backbone, ctx, probe)
            # CPU time of the whole call (every thread): unlike wall time, it barely moves when
            # other processes share the cores, so it gives the cleaner growth factor
            times["cpu_ms"] = (time.process_time() - start) * 1e3
            if i >= spec["warmup"]:
                runs.append((times, mem))
    times_ms = [t["time_ms"] for t, _ in runs]
    return {"type": "smoke", "status": "ok", "method": name,
            "display_name": getattr(method, "label", None) or cls.display_name, "dataset": image.dataset,
            "image_id": sample.id, "scale": image.scale, "size": format_size(full), "input_size": format_size(size),
            "time_ms": float(np.median(times_ms)), "times_ms": times_ms,
            "time_coarse_ms": float(np.median([t["time_coarse_ms"] for t, _ in runs])),
            "time_refine_ms": float(np.median([t["time_refine_ms"] for t, _ in runs])),
            "cpu_ms": float(np.median([t["cpu_ms"] for t, _ in runs])),
            "mem_peak_delta_mib": max(m["mem_peak_delta_mib"] for _, m in runs),
            "mem_peak_mib": max(m["mem_peak_mib"] for _, m in runs), "mem_method": runs[0][1]["mem_method"],
            "label_classes": sorted(int(c) for c in np.unique(sample.label)),
            "method_config": dataclasses.asdict(mcfg),
            **_accuracy(model_info, data_info, sample.label, labels),
            "provenance": {**measure.provenance(device, cfg.seed), "warmup": spec["warmup"],
                           "repeats": spec["repeats"]}}


def _child(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``run_unit`` in a fresh ``python -m bench.checks.smoke --unit`` process; a failure becomes an error record."""
    from bench.runtime import measure

    spec_path, out_path = folder / "spec.json", folder / "result.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    env = measure.child_env(spec["config"]["allocator"],
                            dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    proc = subprocess.run([sys.executable, "-m", "bench.checks.smoke", "--unit", str(spec_path)], stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True, env=env)
    if proc.returncode == 0 and out_path.is_file():
        return json.loads(out_path.read_text())
    image = SmokeImage(**spec["image"])
    return {"type": "smoke", "status": "error", "method": spec["method"], "display_name": spec["method"],
            "dataset": image.dataset, "scale": image.scale, "size": None,
            "message": f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"}


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _column(rec: dict[str, Any]) -> str:
    names = {"cityscapes": "Cityscapes", "deepglobe": "DeepGlobe", "inria": "Inria"}
    return f"{names.get(rec['dataset'], rec['dataset'])} {rec['size']}"


def growth(recs: list[dict[str, Any]], method: str, field: str) -> float | None:
    """``field`` of ``method`` on the full Cityscapes frame over the halved one (2x the side)."""
    by_scale = {r["scale"]: r.get(field) for r in recs
                if r["method"] == method and r["dataset"] == "cityscapes" and r["status"] == "ok"}
    full, half = by_scale.get(1.0), by_scale.get(0.5)
    return full / half if full and half else None


def render_markdown(recs: list[dict[str, Any]], repeats: int, warmup: int) -> str:
    """Time, memory and (Cityscapes) accuracy tables of the smoke records."""
    ok = [r for r in recs if r["status"] == "ok"]
    columns = list(dict.fromkeys(_column(r) for r in ok))
    methods = list(dict.fromkeys(r["method"] for r in recs))
    cell = {(r["method"], _column(r)): r for r in ok}
    display = {r["method"]: r["display_name"] for r in recs}
    fails = {r["method"]: r for r in recs if r["status"] != "ok"}
    inputs = ", ".join(dict.fromkeys(f"{_column(r)} -> {r['input_size']}" for r in ok))
    has_growth = any(growth(recs, m, "time_ms") for m in methods)
    out = [f"**Smoke run: every method once per real sample with the synthetic weights (light backbone), "
           f"1 CPU thread. Input sizes: {inputs}. Time: median of {repeats} call(s) after {warmup} warm-up, coarse "
           f"pass plus refine(), ms (wall clock). CPU: the process's CPU time over the same calls, all threads, ms "
           f"(it barely moves when other processes share the cores). Memory: peak resident-set growth over the post-setup resident set (model, "
           f"weights and decoded image), MiB, one fresh process per method and image. ×2 side: the value on the "
           f"2048x1024 frame over the same frame halved to 1024x512 (4x the pixels).**", ""]
    for title, field, digits in (("Time ms", "time_ms", 0), ("CPU ms", "cpu_ms", 0),
                                 ("Memory MiB", "mem_peak_delta_mib", 0)):
        header = ["Method"] + [f"{title}: {c}" if i == 0 else c for i, c in enumerate(columns)]
        header += ["×2 side"] if has_growth else []
        out += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for m in methods:
            row = [display[m]] + [_fmt(cell[(m, c)].get(field), digits) if (m, c) in cell else "error"
                                  for c in columns]
            if has_growth:
                factor = growth(recs, m, field)
                row.append(f"{factor:.2f}" if factor else "–")
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    scored = [c for c in columns if any(cell.get((m, c), {}).get("miou") is not None for m in methods)]
    if scored:
        header = ["Method"] + [f"{k} {c}" for c in scored for k in ("mIoU %", "mBA %")]
        out += ["**Accuracy where the class sets match (Cityscapes' 19 = the synthetic classes), one frame, classes "
                "present only; weights trained on synthetic scenes, so this is no accuracy claim.**", "",
                "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for m in methods:
            vals = [_fmt(cell.get((m, c), {}).get(k), 2) for c in scored for k in ("miou", "mba")]
            out.append("| " + " | ".join([display[m]] + vals) + " |")
        out.append("")
    unscored = sorted({r["dataset"] for r in ok if r.get("miou") is None})
    if unscored:
        out.append(f"No accuracy for {', '.join(unscored)}: their class sets are not the model's 19 classes "
                   f"(the labels were loaded by the real loaders all the same).")
    for m, r in fails.items():
        out.append(f"\n{m} failed: {r.get('message', '').strip().splitlines()[-1] if r.get('message') else r['status']}")
    return "\n".join(out) + "\n"


def select_images(data: Path, datasets: list[str] | None, half: bool) -> list[SmokeImage]:
    """The samples present under ``data``, filtered; says which are skipped."""
    chosen = []
    for image in SAMPLES:
        if (datasets and image.dataset not in datasets) or (image.scale != 1.0 and not half):
            continue
        if not (data / image.folder).is_dir():
            print(f"[smoke] {data / image.folder} absent: {image.dataset} skipped", file=sys.stderr)
            continue
        chosen.append(image)
    return chosen


def run_smoke(args: argparse.Namespace) -> int:
    """The parent: check, then one child per (image, method); write JSONL and Markdown."""
    from bench.core.registry import list_methods

    data = Path(args.data)
    if not data.is_dir():
        print(f"[smoke] {data} does not exist: nothing to smoke-test, skipped (exit 0)")
        return 0
    overrides = parse_overrides(args.overrides)
    trained = load(args.dataset, overrides)  # what the weights were trained with
    cfg = load(args.dataset, {**GEOMETRY, **overrides})  # what the smoke run runs
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list_methods()
    try:
        unresolved = check_weights(trained, methods)
    except SmokeError as err:
        print(f"[smoke] {err}", file=sys.stderr)
        return 2
    images = select_images(data, args.datasets.split(",") if args.datasets else None, args.half)
    if not images:
        print(f"[smoke] no known sample folder under {data}: skipped (exit 0)")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "smoke.jsonl"
    jsonl.write_text("")
    recs = []
    started = time.perf_counter()
    for image in images:
        for name in methods:
            if name in unresolved:
                rec: dict[str, Any] = {"type": "smoke", "status": "unavailable", "method": name, "display_name": name,
                       "dataset": image.dataset, "scale": image.scale, "size": None, "message": unresolved[name]}
            else:
                spec = {"config": cfg.to_dict(), "trained_config": trained.to_dict(), "method": name,
                        "image": dataclasses.asdict(image), "data": str(data.resolve()), "warmup": args.warmup,
                        "repeats": args.repeats}
                with tempfile.TemporaryDirectory() as tmp:
                    rec = _child(spec, Path(tmp))
            recs.append(rec)
            records.append(jsonl, rec)
            print(f"[smoke] {name:14s} {image.dataset} x{image.scale:g} {rec.get('size')}: " + (
                f"{rec['time_ms']:.0f} ms, {rec['mem_peak_delta_mib']:.0f} MiB" if rec["status"] == "ok"
                else f"{rec['status'].upper()}: {rec['message'].strip().splitlines()[-1]}"), file=sys.stderr, flush=True)
    text = render_markdown(recs, args.repeats, args.warmup)
    text += (f"\nThe whole run: {(time.perf_counter() - started) / 60:.1f} min wall clock for {len(recs)} "
             f"(method, image) processes, setup included.\n")
    (out / "smoke.md").write_text(text)
    print(text)
    print(f"[smoke] {jsonl} and {out / 'smoke.md'} written")
    failed = [r for r in recs if r["status"] != "ok"]
    return 1 if failed else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The smoke command's options (``python -m bench smoke`` and ``python -m bench.checks.smoke``)."""
    p.add_argument("overrides", nargs="*", help="key=value overrides of the weights' config (as in `bench run`)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the real samples (default: %(default)s)")
    p.add_argument("--dataset", default="synthetic", help="config whose weights are used (default: synthetic)")
    p.add_argument("--methods", default=None, help="comma-separated method keys (default: every registered one)")
    p.add_argument("--datasets", default=None, help="comma-separated: cityscapes, deepglobe, inria (default: all)")
    p.add_argument("--no-half", dest="half", action="store_false", help="skip the halved Cityscapes frame")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default: 1)")
    p.add_argument("--repeats", type=int, default=1, help="timed calls; time is their median (default: 1)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    p.add_argument("--unit", default=None, help=argparse.SUPPRESS)  # internal: one child's spec file


def run(args: argparse.Namespace) -> int:
    """Parsed options -> exit code (0 ok or skipped, 1 a method failed, 2 weights missing)."""
    if args.unit:
        spec = json.loads(Path(args.unit).read_text())
        try:
            record = run_unit(spec)
        except Exception:  # noqa: BLE001 - the parent records the traceback and goes on
            traceback.print_exc()
            return 1
        Path(spec["out"]).write_text(json.dumps(record))
        return 0
    if args.repeats < 1 or args.warmup < 0:
        print("[smoke] --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    return run_smoke(args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.checks.smoke", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
