"""``python -m bench reference``: train a dataset's weights from scratch, evaluate them, write the manifest.

The run lives in a staging folder, ``results/reference/<dataset>-seed<k>/`` by default:
``weights/`` (the checkpoint folder, then its ``manifest.json``), ``run/`` (the sweep's records)
and ``tables/``. ``--install`` then replaces ``weights/<dataset>/`` (the committed reference set)
with the staged weights and manifest. A staging folder whose weights are already trained is
evaluated and described without training again (its manifest says so: ``train_seconds`` null).

``--add METHOD[,METHOD]`` extends the installed reference set by the weights of methods it lacks
(a method added to the harness after the set was made): the set is copied to
``results/reference/<dataset>-add/weights``, only the missing weights are trained there with the
set's own seed, every file of the old set must come out byte-identical, the new methods' units
are evaluated (the others keep the old manifest's metrics: their files did not change) and the
manifest is rewritten with an ``additions`` entry (method, seconds, command, git sha, fingerprint). ``--install`` then installs the extended set.

A seed ``k`` sets the config's ``seed`` (backbone, MagNet) and the ``seed`` option of every method
that has one (DGF, PointRend, SegFix), so two seeds differ in every learned weight.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.runtime import measure
from bench.weights import reference
from bench.core.config import REPO_DIR, BenchConfig, format_size, stable_hash
from bench.pipeline.configure import load

TRAINING_FIELDS = ("dataset", "train_split", "input_size", "backbone", "backbone_options", "backbone_train", "data",
                   "train_data", "seed", "threads")


def staging_dir(dataset: str, seed: int) -> Path:
    return Path("results/reference") / f"{dataset}-seed{seed}"


def seed_overrides(cfg: BenchConfig, seed: int) -> dict[str, Any]:
    """``seed=k`` plus ``<method>.seed=k`` for every swept method whose Config has a seed."""
    from bench.core.registry import resolve

    out: dict[str, Any] = {"seed": seed}
    for name, _ in cfg.units():
        cls = resolve(name)
        if "seed" in {f.name for f in dataclasses.fields(cls.Config)}:
            out[f"{name}.seed"] = seed
    return out


def staged_config(dataset: str, overrides: dict[str, Any], seed: int, staging: Path,
                  config_file: str | None = None) -> BenchConfig:
    """The config that trains into and evaluates ``staging`` with ``seed``."""
    base = load(dataset, overrides, config_file)
    folders = {"train": True, "checkpoint_dir": str(staging / "weights"), "out_dir": str(staging / "run"),
               "tables_dir": str(staging / "tables")}
    return load(dataset, {**overrides, **seed_overrides(base, seed), **folders}, config_file)


def training_config(cfg: BenchConfig) -> dict[str, Any]:
    """The resolved config fields that shape training, plus every learned method's training options."""
    from bench.weights import sidecar
    from bench.core.registry import resolve
    from bench.pipeline.unit import method_config

    out = {k: v for k, v in cfg.to_dict().items() if k in TRAINING_FIELDS}
    out["methods"] = {}
    for name, _ in cfg.units():
        cls = resolve(name)
        if getattr(cls, "train_fields", ()):
            out["methods"][name] = sidecar.training_options(cls, method_config(cfg, cls, name),
                                                                          cfg.backbone_path, cfg.seed)
    return json.loads(json.dumps(out, default=list))


def unit_files(cfg: BenchConfig) -> dict[str, list[Path]]:
    """``{"method@WxH": [weight files it loads]}`` for every unit of the sweep."""
    from bench.pipeline.unit import unit_weights

    return {f"{name}@{format_size(size)}": list(unit_weights(cfg, name, size).values()) for name, size in cfg.units()}


def unit_metrics(cfg: BenchConfig) -> dict[str, dict[str, Any]]:
    """Per unit of the sweep: status, images, mIoU, mBA and per-class IoU (fractions) from its records."""
    from bench.data import dataset_info
    from bench.report.results import load_results

    names = dataset_info(cfg).class_names
    out = {}
    for (method, size), res in load_results(cfg).items():
        entry: dict[str, Any] = {"status": res.status, "n_images": res.n_images, "display": res.display}
        if res.status == "ok":
            entry.update(miou=res.miou, mba=res.mba, iou=dict(zip(names, res.iou)))
        out[f"{method}@{size}"] = entry
    if cfg.track == "refinement":  # every (method, size, source) of the track: pooled IoU, mBA, BIoU
        from bench.report.big_tables import track_units

        for u in track_units(cfg.out_path):
            label = f"{u.method}@{u.size}" + (f"/{u.source}" if u.source != "backbone" else "")
            track = {"status": u.status, "n_images": u.score.n_images if u.score else 0, "display": u.display}
            if u.score is not None:
                track.update(object_iou=u.score.iou, mba=u.score.mba, biou=u.score.biou)
            out[label] = {**out.get(label, {}), **track}
    return json.loads(json.dumps(out), parse_constant=lambda _: None)  # NaN -> null


def build_manifest(cfg: BenchConfig, command: str, train_seconds: float | None, note: str = "",
                   metrics: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest of ``cfg.checkpoint_path`` after training and evaluating ``cfg``.

    ``metrics`` (per unit, as :func:`unit_metrics` gives them) defaults to the records of ``cfg``'s run.
    """
    folder = cfg.checkpoint_path
    uses = unit_files(cfg)
    metrics = unit_metrics(cfg) if metrics is None else metrics
    files = {}
    for path in reference.weight_files(folder):
        rel = path.relative_to(folder).as_posix()
        weights = Path(str(path).removesuffix(".train.json"))
        units = sorted(u for u, paths in uses.items() if any(p.resolve() == weights.resolve() for p in paths))
        files[rel] = {"sha256": reference.sha256(path), "bytes": path.stat().st_size,
                      "what": "sidecar" if rel.endswith(".train.json") else weights.stem,
                      "units": units, "metrics": {u: {k: metrics[u].get(k) for k in ("miou", "mba")} for u in units}}
    tcfg = training_config(cfg)
    return {"schema": reference.SCHEMA, "dataset": cfg.dataset, "command": command,
            "training_command": training_command(cfg), "seed": cfg.seed, "training_config": tcfg,
            "training_digest": stable_hash(tcfg), "torch": torch.__version__, "git_sha": measure.provenance(
                torch.device("cpu"), cfg.seed)["git_sha"], "fingerprint": measure.training_fingerprint(),
            "machine": measure.kernel_set(), "train_seconds": train_seconds, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "note": note, "files": files, "metrics": metrics}


def training_command(cfg: BenchConfig) -> str:
    """The plain ``bench train`` command line equivalent to this staged training."""
    seeds = " ".join(f"{k}={v}" for k, v in seed_overrides(cfg, cfg.seed).items())
    return f"python -m bench train {cfg.dataset} train=true checkpoint_dir={cfg.checkpoint_path} {seeds}"


def _train(cfg: BenchConfig) -> float:
    """Train what ``cfg`` lacks; returns the seconds it took.

    Raises:
        RuntimeError: a learned method could not be trained.
    """
    from bench.pipeline.runner import train_missing
    from bench.pipeline.unit import setup_torch

    setup_torch(cfg)
    start = time.perf_counter()
    status = train_missing(cfg)
    bad = {k: v for k, v in status.items() if v not in ("trained", "present", "none needed")}
    if bad:
        raise RuntimeError(f"training did not complete: {bad}")
    return time.perf_counter() - start


def _sweep_and_render(cfg: BenchConfig) -> None:
    """Evaluate every unit of ``cfg`` and write its tables.

    Raises:
        RuntimeError: a unit did not run to the end.
    """
    from bench.report.results import load_results
    from bench.pipeline.runner import run_sweep
    from bench.report.tables import render

    results = run_sweep(cfg)
    failed = {f"{u[0]}@{format_size(u[1])}" + "".join(f"/{x}" for x in u[2:]): v  # (method, size[, source])
              for u, v in results.items() if v not in ("ok", "done")}
    if failed:
        raise RuntimeError(f"evaluation failed for {failed}; see {cfg.out_path}")
    if cfg.track == "refinement":  # the track's tables (bench.report.big_tables), not the semantic ones
        from bench.report.big_tables import render_track

        render_track(cfg)
        return
    render(cfg, load_results(cfg))


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / reference.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def train_and_evaluate(cfg: BenchConfig, command: str, note: str = "") -> dict[str, Any]:
    """Train what ``cfg`` lacks, sweep it, write and return the manifest of its checkpoint folder.

    A folder that already has a manifest is returned as it is.

    Raises:
        RuntimeError: a learned method could not be trained, or a unit did not run.
    """
    folder = cfg.checkpoint_path
    if reference.is_reference(folder):
        return json.loads((folder / reference.MANIFEST).read_text())
    trained_before = bool(reference.weight_files(folder))
    seconds = _train(cfg)
    _sweep_and_render(cfg)
    manifest = build_manifest(cfg, command, None if trained_before else seconds, note)
    _write_manifest(folder, manifest)
    return manifest


def add_methods(dataset: str, methods: list[str], overrides: dict[str, Any], command: str, note: str = "",
                config_file: str | None = None, staging: Path | None = None) -> tuple[BenchConfig, dict[str, Any]]:
    """Train only ``methods``' weights into a copy of the installed reference set and describe the result.

    Returns:
        The staged config and the new manifest (written to its checkpoint folder).

    Raises:
        RuntimeError: no installed set, a method not in the sweep, a method whose weights the set
            already has, or training that touched a file of the old set.
    """
    base = load(dataset, overrides, config_file)
    if not base.reference_dir or not reference.is_reference(REPO_DIR / base.reference_dir):
        raise RuntimeError(f"dataset {dataset!r} has no installed reference set to add to: run "
                           f"`python -m bench reference {dataset} --install` first")
    ref = REPO_DIR / base.reference_dir
    old = json.loads((ref / reference.MANIFEST).read_text())
    swept = {name for name, _ in base.units()}
    unknown = sorted(set(methods) - swept)
    if unknown:
        raise RuntimeError(f"--add {','.join(unknown)}: not in the sweep's methods {sorted(swept)}; add it to the "
                           f"dataset config's methods (or pass methods=[...]) so its units are evaluated")
    have = sorted(m for m in methods if any(u.split("@")[0] == m for u in old["metrics"]))
    if have:
        raise RuntimeError(f"--add {','.join(have)}: the reference set was already made with it; regenerate the "
                           f"whole set to retrain (`python -m bench reference {dataset} --install`)")
    staging = Path(staging) if staging else staging_dir(dataset, old["seed"]).with_name(f"{dataset}-add")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(ref, staging / "weights")
    (staging / "weights" / reference.MANIFEST).unlink()
    cfg = staged_config(dataset, overrides, old["seed"], staging, config_file)
    seconds = _train(cfg)
    folder = cfg.checkpoint_path
    for rel, entry in old["files"].items():
        if not (folder / rel).is_file() or reference.sha256(folder / rel) != entry["sha256"]:
            raise RuntimeError(f"training --add {','.join(methods)} changed {rel} of the reference set: refusing")
    # only the new methods' units are evaluated: every other file is byte-identical, so its units'
    # metrics are the old manifest's
    added = dataclasses.replace(cfg, methods=tuple(m for m in cfg.methods if m in methods),
                                table1_methods=tuple(m for m in cfg.table1_methods if m in methods))
    _sweep_and_render(added)
    metrics = {**old["metrics"], **unit_metrics(added)}
    manifest = build_manifest(cfg, old["command"], old.get("train_seconds"), old.get("note", ""), metrics)
    new_files = sorted(set(manifest["files"]) - set(old["files"]))
    manifest["additions"] = [*old.get("additions", []), {
        "methods": list(methods), "files": new_files, "train_seconds": seconds, "command": command,
        "git_sha": measure.provenance(torch.device("cpu"), cfg.seed)["git_sha"],
        "fingerprint": measure.training_fingerprint(), "created": time.strftime("%Y-%m-%d %H:%M:%S"), "note": note}]
    _write_manifest(folder, manifest)
    return cfg, manifest


def install(staged: Path, target: Path) -> Path:
    """Replace the reference folder ``target`` with the staged checkpoint folder ``staged`` (it must have a manifest)."""
    if not reference.is_reference(staged):
        raise RuntimeError(f"{staged} has no {reference.MANIFEST}: run `python -m bench reference` first")
    target = Path(target)
    tmp = target.with_name(f"{target.name}.installing")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(staged, tmp)
    reference.verify(tmp, reference.weight_files(tmp))
    old = target.with_name(f"{target.name}.old")
    if target.exists():
        target.replace(old)
    tmp.replace(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def add_arguments(p: Any) -> None:
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
    p.add_argument("--seed", type=int, default=0, help="training seed (every learned weight)")
    p.add_argument("--staging", default=None, help="staging folder (default results/reference/<dataset>-seed<k>)")
    p.add_argument("--install", action="store_true", help="replace weights/<dataset>/ with the staged set")
    p.add_argument("--add", default=None, metavar="METHOD[,METHOD]",
                   help="train only these methods' weights into a copy of the installed set (old files unchanged)")
    p.add_argument("--note", default="", help="free text stored in the manifest (how the staged weights were made)")


def main(args: Any) -> int:
    from bench.core.config import parse_overrides

    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.add:
        cfg, manifest = add_methods(args.dataset, [m.strip() for m in args.add.split(",") if m.strip()],
                                    parse_overrides(args.overrides), command, args.note, args.config,
                                    Path(args.staging) if args.staging else None)
    else:
        staging = Path(args.staging) if args.staging else staging_dir(args.dataset, args.seed)
        cfg = staged_config(args.dataset, parse_overrides(args.overrides), args.seed, staging, args.config)
        manifest = train_and_evaluate(cfg, command, args.note)
    for unit, m in manifest["metrics"].items():
        if m.get("status") == "ok":  # a refinement-track source's entry has the object IoU, no mIoU
            first = f"mIoU {100 * m['miou']:.2f}" if "miou" in m else f"object IoU {100 * m['object_iou']:.2f}"
            print(f"[reference] {unit}: {first}  mBA {100 * (m['mba'] or float('nan')):.2f}")
    print(f"[reference] manifest: {cfg.checkpoint_path / reference.MANIFEST}")
    if args.install:
        if not cfg.reference_dir:
            raise RuntimeError(f"dataset {args.dataset!r} has no reference_dir in its config: nowhere to install")
        print(f"[reference] installed {install(cfg.checkpoint_path, REPO_DIR / cfg.reference_dir)}")
    return 0
