"""``make rehearse``: the mission's own command at real scale, on generated files, with time and memory per stage.

What a researcher runs on Cityscapes is ``bench run cityscapes data_root=<folder> train=true``: it
trains every learned method of the sweep, then evaluates every method at full size and writes the
tables. The rehearsal runs exactly that on a folder written by :mod:`bench.data.rehearsal` (the
synthetic street scenes as Cityscapes files at 2048x1024), or on any folder in the dataset's
layout (``--data``, e.g. the real sample frames), with a short schedule (:data:`SHORT_SCHEDULE`:
a few steps per learned method) so that it ends on 2 CPU cores.

Stages, each a child process measured on its own (wall seconds; the largest peak resident set of
that process and the children it waited for, from ``os.wait4``, in MiB; the run's units are also
measured per image by the run itself):

1. ``data``: generating the files (skipped with ``--data``);
2. ``train <method>``: ``bench train <dataset> methods=[<method>]`` for the backbone (through
   ``downsample``) and then each learned method of the sweep, one process each, with the same
   overrides as the run (so the run finds every weight present and trains nothing);
3. ``run``: the mission's command, ``bench run <dataset> data_root=... train=true`` with the
   same overrides; its units' time per image (median, ms) and peak memory (MiB) come from its
   records, as the tables' do.

Everything goes to ``<out>/`` (default ``results/runs/rehearsal/<dataset>``, not tracked): the data
(``data/``), the weights (``checkpoints/``), the run folder (``run/``, tables in ``run/tables/``) and
the record ``rehearsal.json`` (the stages, the units, the machine, the commands), which is also
copied to ``--record`` (default ``results/rehearsal/<dataset>.json``, tracked: the docs page's source). ``bench rehearse --render RECORD [RECORD ...] --docs docs/rehearsal.md``
renders the figures and what they imply for the real datasets (:func:`render`): nothing in that
page is typed by hand. A rerun resumes: present files, weights and records are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR

# A few steps of every learned method: enough to run each training loop end to end (data,
# forward, loss, step, save), far too few to learn anything (the accuracy is not the point).
SHORT_SCHEDULE: dict[str, tuple[str, ...]] = {
    "cityscapes": ("backbone_train={iterations: 3, batch_size: 2}",
                   "dgf.iterations=3", "dgf.batch_size=2",
                   "pointrend.iterations=3", "pointrend.batch_size=2",
                   "segfix.iterations=3", "segfix.batch_size=2",
                   "magnet.epochs=1", "magnet.iterations_per_epoch=3", "magnet.train_batch_size=2",
                   "glnet.iterations_global=2", "glnet.iterations_local=2", "glnet.iterations_l2g=2",
                   "glnet.batch_size=2",
                   "cascadepsp.iterations=3", "cascadepsp.batch_size=2"),
}
SHORT_SCHEDULE["deepglobe"] = SHORT_SCHEDULE["cityscapes"]
SHORT_SCHEDULE["inria"] = SHORT_SCHEDULE["cityscapes"]
# the real evaluation sets the figures are extrapolated to: (images, (w, h) of each)
TARGETS = {"Cityscapes val": (500, (2048, 1024)), "DeepGlobe test": (142, (2448, 2448))}
DEFAULT_COUNTS = {"cityscapes": {"train": 2, "val": 2}, "deepglobe": {"train": 2, "test": 1},
                  "inria": {"train": 2, "val": 1}}
EVAL_SPLIT = {"cityscapes": "val", "deepglobe": "test", "inria": "val"}
MIB = 1024 * 1024


@dataclass
class Stage:
    """One measured child process.

    Attributes:
        name: ``data``, ``train <method>`` or ``run``.
        command: the argv, as run.
        seconds: wall-clock seconds.
        peak_rss_mib: the largest peak resident set of the process and of the children it waited
            for (``ru_maxrss`` of ``os.wait4``: the run's unit workers included), MiB.
        rc: exit status.
    """

    name: str
    command: list[str]
    seconds: float
    peak_rss_mib: float
    rc: int


@dataclass
class Record:
    """``rehearsal.json``: what ran, where, and what it cost."""

    dataset: str
    data: str
    data_kind: str  # "generated" (bench.data.rehearsal) or "given" (--data)
    counts: dict[str, int]
    image_size: list[int]
    overrides: list[str]
    machine: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)
    units: list[dict[str, Any]] = field(default_factory=list)
    started: str = ""
    label: str = ""


def machine() -> dict[str, Any]:
    """The CPU, its cores and the threads a run gets (what every figure depends on)."""
    from bench.runtime.measure import cpu_model

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.system(), "load_average_at_start": [round(v, 2) for v in load]}


def measured(name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> Stage:
    """Run ``argv`` as a child process, its output appended to ``log``; wall time and peak RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[rehearse] {name}: {shlex.join(argv)}", file=sys.stderr, flush=True)
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n### {name}: {shlex.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=REPO_DIR,
                                env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    # ru_maxrss is in KiB on Linux
    stage = Stage(name, list(argv), round(seconds, 1), round(usage.ru_maxrss / 1024, 1), proc.returncode)
    print(f"[rehearse] {name}: rc {stage.rc}, {stage.seconds:.0f} s, peak {stage.peak_rss_mib:.0f} MiB",
          file=sys.stderr, flush=True)
    return stage


def shares_weights(a: str, b: str) -> bool:
    """True when methods ``a`` and ``b`` load the same trained files: one's class derives from the other's
    (MagNet-Fast from MagNet: the same refiners), so training one trains both."""
    from bench.core.registry import resolve

    ca, cb = resolve(a), resolve(b)
    return issubclass(ca, cb) or issubclass(cb, ca)


def learned_methods(dataset: str, overrides: Sequence[str]) -> list[str]:
    """The sweep's methods that load weights of their own (trained by ``bench train``), in sweep order."""
    from bench.core.config import parse_overrides
    from bench.pipeline.configure import load
    from bench.pipeline.unit import unit_weights

    cfg = load(dataset, parse_overrides(list(overrides)))
    out: list[str] = []
    for name in cfg.methods:
        try:
            own = {k for k in unit_weights(cfg, name, cfg.input_size) if k != "backbone"}
        except Exception:  # noqa: BLE001 - an unavailable method is the run's to report
            continue
        if own and not any(shares_weights(name, m) for m in out):
            out.append(name)
    return out


def unit_rows(dataset: str, overrides: Sequence[str]) -> list[dict[str, Any]]:
    """One row per unit of the run: status, images, median time per image, peak memory, mIoU."""
    from bench.core.config import parse_overrides
    from bench.pipeline.configure import load
    from bench.report.tables import load_results

    cfg = load(dataset, parse_overrides(list(overrides)))
    rows = []
    for (method, size), res in load_results(cfg).items():
        times = [float(r["time_ms"]) for r in res.images.values() if r.get("time_ms") is not None]
        rows.append({"method": method, "display": res.display, "size": size, "status": res.status,
                     "n_images": res.n_images, "n_total": res.n_total,
                     "time_ms_median": res.time.get("median") if res.time else None,
                     "time_ms_sum": round(sum(times), 1), "memory_mib": None if res.memory != res.memory else res.memory,
                     "mem_method": res.mem_method, "device": res.device, "threads": res.threads,
                     "batch": next((r.get("batch") for r in res.images.values()), None),
                     "miou": None if res.miou != res.miou else res.miou, "message": res.message[:300]})
    return rows


def given_counts(dataset: str, root: Path, default: Mapping[str, int]) -> dict[str, int]:
    """Images per split of a given Cityscapes-layout folder (``default`` for the other layouts)."""
    if dataset != "cityscapes":
        return dict(default)
    return {split: len(list((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")))
            for split in ("train", "val", "test") if (root / "leftImg8bit" / split).is_dir()}


def rehearse(args: argparse.Namespace) -> int:
    """Generate (or take) the data, train each learned method, run the mission's command; write the record."""
    from bench.data import rehearsal

    dataset = args.dataset
    out = Path(args.out or REPO_DIR / "results" / "runs" / "rehearsal" / dataset).resolve()
    counts = dict(DEFAULT_COUNTS[dataset])
    if args.train is not None:
        counts["train"] = args.train
    if args.eval is not None:
        counts[EVAL_SPLIT[dataset]] = args.eval
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else {
        "cityscapes": rehearsal.CITYSCAPES_SIZE, "deepglobe": rehearsal.DEEPGLOBE_SIZE,
        "inria": rehearsal.INRIA_SIZE}[dataset]
    log = out / "rehearsal.log"
    rec = Record(dataset, "", "given" if args.data else "generated", counts, list(size), [], machine(),
                 started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), label=args.label or "")
    py = [sys.executable, "-m"]
    lists: dict[str, Path] = {}
    if args.data:
        root = Path(args.data).resolve()
        rec.counts = given_counts(dataset, root, counts)
    else:
        root = out / "data"
        code = (f"from bench.data import rehearsal as r; import json, sys; "
                f"w = r.write_{dataset}({str(root)!r}, {counts!r}, {tuple(size)!r}); "
                f"print(json.dumps({{k: str(v) for k, v in w.lists.items()}}))")
        stage = measured("data", [sys.executable, "-c", code], log)
        rec.stages.append(stage)
        if stage.rc:
            return _finish(rec, out, 1)
        lists = {k: root / "lists" / f"{k}.txt" for k in counts} if dataset == "deepglobe" else \
            {k: root / "AerialImageDataset" / "lists" / f"{k}.txt" for k in counts} if dataset == "inria" else {}
    rec.data = str(root)
    overrides = [f"data_root={root}", f"checkpoint_dir={out / 'checkpoints'}", f"out_dir={out / 'run'}",
                 *SHORT_SCHEDULE.get(dataset, ()), *args.overrides]
    if lists:
        overrides += [f"data.list_file={lists[EVAL_SPLIT[dataset]]}", f"train_data.list_file={lists['train']}"]
    if args.limit:
        overrides.append(f"limit={args.limit}")
    if args.no_warmup:  # the warm-up call repeats each unit's first image: minutes at 2048x1024 on 2 cores
        overrides.append("warmup=0")
    rec.overrides = overrides
    env = {"PYTHONUNBUFFERED": "1"}
    earlier = out / "rehearsal.json"
    if args.skip_train and earlier.is_file():
        # a rerun that trains nothing keeps the earlier invocation's measured stages (data, training)
        kept = [Stage(**s) for s in json.loads(earlier.read_text()).get("stages", []) if s["name"] != "run"]
        rec.stages = kept + [s for s in rec.stages if s.name not in {k.name for k in kept}]
    if not args.skip_train:
        for name in ["downsample", *learned_methods(dataset, overrides)]:
            stage = measured(f"train {name}" if name != "downsample" else "train backbone",
                             [*py, "bench", "train", dataset, *overrides, f"methods=[{name}]"], log, env)
            rec.stages.append(stage)
            _save(rec, out)
    stage = measured("run", [*py, "bench", "run", dataset, *overrides, "train=true"], log, env)
    rec.stages.append(stage)
    rec.units = unit_rows(dataset, overrides)
    ok = all(u["status"] == "ok" and u["n_images"] == u["n_total"] for u in rec.units)
    record = Path(args.record or REPO_DIR / "results" / "rehearsal" / f"{dataset}-{rec.data_kind}.json")
    return _finish(rec, out, 0 if stage.rc == 0 and ok and rec.units else 1, record)


def _save(rec: Record, out: Path) -> Path:
    path = out / "rehearsal.json"
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(rec), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _finish(rec: Record, out: Path, rc: int, record: Path | None = None) -> int:
    if hasattr(os, "getloadavg"):  # the figures depend on what else ran: say so at both ends
        rec.machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    path = _save(rec, out)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(path.read_text())
        path = record
    bad = [u for u in rec.units if u["status"] != "ok" or u["n_images"] != u["n_total"]]
    print(f"[rehearse] record: {path}; {len(rec.units) - len(bad)} of {len(rec.units)} unit(s) ok with every image"
          + "".join(f"\n[rehearse]   {u['method']} @ {u['size']}: {u['status']}, {u['n_images']}/{u['n_total']} "
                    f"{u['message'][:160]}" for u in bad), file=sys.stderr, flush=True)
    return rc


# --- the docs page --------------------------------------------------------------------------------

def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _schedule_steps(dataset: str, stage: str) -> tuple[int, int] | None:
    """(short steps, full steps) of a training stage, from the short overrides and the dataset config."""
    from bench.core.config import parse_overrides
    from bench.pipeline.configure import load
    from bench.pipeline.unit import method_config
    from bench.core.config import backbone_train_config
    from bench.core.registry import resolve

    full = load(dataset)
    short = load(dataset, parse_overrides(list(SHORT_SCHEDULE.get(dataset, ()))))
    name = stage.removeprefix("train ")
    if name == "backbone":
        return backbone_train_config(short).iterations, backbone_train_config(full).iterations
    cls = resolve(name)
    a, b = method_config(short, cls, name), method_config(full, cls, name)
    if hasattr(a, "iterations"):
        return a.iterations, b.iterations
    if hasattr(a, "epochs"):  # MagNet: epochs x iterations per epoch (0: one pass, shown as unknown)
        per_a, per_b = a.iterations_per_epoch, b.iterations_per_epoch
        return a.epochs * per_a, (b.epochs * per_b if per_b else 0)
    return None


def _shares(a: str, b: str) -> bool:
    try:
        return b != "backbone" and shares_weights(a, b)
    except Exception:  # noqa: BLE001 - a method not installed here: assume its own weights
        return False


def render(paths: Sequence[Path], gpu_speedup: float) -> str:
    """``docs/rehearsal.md`` from rehearsal records (see the module docstring)."""
    recs = [json.loads(Path(p).read_text()) for p in paths]
    lines = ["# A rehearsal at real scale",
             "",
             "<!-- Rendered by `python -m bench rehearse --render " + " ".join(str(p) for p in paths)
             + f" --gpu-speedup {gpu_speedup:g}`; do not edit by hand. -->",
             "",
             "`make rehearse` runs the mission's own command, `bench run cityscapes data_root=<folder> train=true`, "
             "at real image sizes on files in the real layout (`bench.data.rehearsal`: the synthetic street scenes "
             "written as Cityscapes `leftImg8bit/` + `gtFine/*_labelIds.png` at 2048x1024), with a short schedule "
             "(a few steps per learned method: `bench.checks.rehearse.SHORT_SCHEDULE`). Each stage is a process of "
             "its own: training per method (`bench train ... methods=[m]`), then the run, whose units' time per "
             "image and peak memory come from its records. Accuracy is meaningless here (3-step schedules); "
             "the figures are what the run costs.",
             ""]
    for rec in recs:
        lines += _render_one(rec, gpu_speedup)
    return "\n".join(lines) + "\n"


def _render_one(rec: Mapping[str, Any], gpu_speedup: float) -> list[str]:
    m = rec["machine"]
    w, h = rec["image_size"]
    title = rec.get("label") or f"{rec['dataset']} ({rec['data_kind']} data)"
    n_eval = rec["counts"].get(EVAL_SPLIT.get(rec["dataset"], "val"), 0)
    out = [f"## {title}", "",
           f"Machine: {m['cpu']}, {m['cores']} core(s), load average {m['load_average_at_start'][0]} at the start"
           + (f" and {m['load_average_at_end'][0]} at the end" if m.get("load_average_at_end") else "")
           + f" (a load above the cores: other processes shared them, and every time below is inflated by it); "
           f"started {rec['started']}. Data: {rec['data_kind']}, "
           f"{', '.join(f'{k} {v}' for k, v in rec['counts'].items())} image(s) of {w}x{h}.", "",
           "Overrides: `" + " ".join(o for o in rec["overrides"] if not o.startswith(("data_root=", "checkpoint_dir=",
                                                                                       "out_dir="))) + "`", "",
           "| stage | wall time | peak RSS, largest process of the stage (MiB) | exit |", "|---|---:|---:|---:|"]
    for s in rec["stages"]:
        out.append(f"| {s['name']} | {_fmt_s(s['seconds'])} | {s['peak_rss_mib']:.0f} | {s['rc']} |")
    total = sum(s["seconds"] for s in rec["stages"])
    out += [f"| total | {_fmt_s(total)} | | |", "",
            "| unit (eval) | status | images | median time per image (s) | peak memory (MiB) | batch | mIoU (%) |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for u in rec["units"]:
        t = "–" if u["time_ms_median"] is None else f"{u['time_ms_median'] / 1000:.1f}"
        mem = "–" if u["memory_mib"] is None else f"{u['memory_mib']:.0f}"
        miou = "–" if u["miou"] is None else f"{100 * u['miou']:.2f}"
        batch = "–" if u.get("batch") is None else str(u["batch"])
        out.append(f"| {u['display']} @ {u['size']} | {u['status']} | {u['n_images']}/{u['n_total']} | {t} | {mem} | "
                   f"{batch} | {miou} |")
    ok = [u for u in rec["units"] if u["status"] == "ok" and u["n_images"] == u["n_total"]]
    out += ["", f"{len(ok)} of {len(rec['units'])} unit(s) ok with every image."
            f" Memory: {', '.join(sorted({u['mem_method'] for u in ok if u['mem_method']})) or '?'}"
            " (the run's own measure, per image, in a fresh process per unit).", ""]
    per_image = sum(u["time_ms_median"] for u in ok if u["time_ms_median"] is not None) / 1000
    out += ["### What this implies", "",
            f"Evaluation: the units' median times add up to {per_image:.0f} s per {w}x{h} image for the whole sweep "
            f"(every row of the tables) on this machine."]
    for target, (n, (tw, th)) in TARGETS.items():
        scale = (tw * th) / (w * h)
        est = per_image * scale * n
        how = "" if scale == 1 else f", times {scale:.2f} for the pixel count (assumed linear in pixels; not measured)"
        out.append(f"- {target} ({n} images of {tw}x{th}): about {_fmt_s(est)} of evaluation on this CPU{how}; "
                   f"on one GPU, assuming it runs these fp32 models {gpu_speedup:g}x faster than these {m['cores']} "
                   f"core(s) (an assumption, not a measurement), about {_fmt_s(est / gpu_speedup)}.")
    trains = [s for s in rec["stages"] if s["name"].startswith("train ")]
    if trains:
        out += ["", "Training at the config's full schedule, at the short stage's seconds per step (its batch, "
                "process start, data loading and saving included: a crude figure, high where the start dominates "
                "and low where the config's batch is larger than the short schedule's):", ""]
        done: list[str] = []
        for s in trains:
            name = s["name"].removeprefix("train ")
            owners = [m for m in done if name != "backbone" and _shares(name, m)]
            if owners:
                out.append(f"- {s['name']}: its weights are {', '.join(owners)}'s, trained in that stage; this stage "
                           f"only found them ({_fmt_s(s['seconds'])}).")
                continue
            done.append(name)
            try:
                steps = _schedule_steps(rec["dataset"], s["name"])
            except Exception:  # noqa: BLE001 - a method whose schedule is not in steps: say so
                steps = None
            if not steps or not steps[0] or not steps[1]:
                out.append(f"- {s['name']}: {_fmt_s(s['seconds'])} for the short schedule (full schedule not in steps).")
                continue
            full = s["seconds"] / steps[0] * steps[1]
            out.append(f"- {s['name']}: {steps[0]} step(s) in {_fmt_s(s['seconds'])}; the config's {steps[1]} steps: "
                       f"about {_fmt_s(full)} on this CPU, about {_fmt_s(full / gpu_speedup)} on one GPU by the "
                       f"same assumption.")
    evaluated = max((u["n_total"] for u in rec["units"]), default=0)
    limit = f" (limit={evaluated} of the split's {n_eval})" if evaluated < n_eval else ""
    out += ["", f"Evaluated: {evaluated} image(s) per unit{limit}, {len(rec['units'])} unit(s). The run's wall time "
            f"includes each unit's untimed warm-up call (warmup=1 unless the overrides say otherwise), process "
            f"starts and the tables; the per-image times are the timed calls alone.", ""]
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", default="cityscapes", choices=sorted(DEFAULT_COUNTS),
                   help="the layout to rehearse (default cityscapes)")
    p.add_argument("overrides", nargs="*", help="extra key=value overrides for every stage (e.g. limit=1)")
    p.add_argument("--out", help="folder of the data, weights, run and record (default results/runs/rehearsal/DATASET)")
    p.add_argument("--record", help="where the record is copied (default results/rehearsal/DATASET-generated.json, "
                                    "or -given.json with --data)")
    p.add_argument("--data", help="an existing folder in the dataset's layout (e.g. real frames); nothing is generated")
    p.add_argument("--train", type=int, help="training images to generate")
    p.add_argument("--eval", type=int, help="evaluated images to generate")
    p.add_argument("--size", help="image size WxH to generate (default: the dataset's real size)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--skip-train", action="store_true", help="no training stages (weights present)")
    p.add_argument("--no-warmup", action="store_true",
                   help="warmup=0: no untimed first call per unit (halves a one-image rehearsal; the timed call "
                        "then includes the first call's setup)")
    p.add_argument("--label", help="the record's title in the docs page")
    p.add_argument("--render", nargs="+", metavar="RECORD", help="render the docs page from these records instead")
    p.add_argument("--docs", default="docs/rehearsal.md", help="the page --render writes")
    p.add_argument("--gpu-speedup", type=float, default=50.0,
                   help="the assumed GPU speed-up over this CPU for the stated GPU estimate (not measured)")


def run(args: argparse.Namespace) -> int:
    if args.render:
        missing = [p for p in args.render if not Path(p).is_file()]
        if missing:
            print(f"bench rehearse: no record {missing[0]} (run `make rehearse` first)", file=sys.stderr)
            return 2
        text = render([Path(p) for p in args.render], args.gpu_speedup)
        Path(args.docs).write_text(text)
        print(f"[rehearse] wrote {args.docs}", file=sys.stderr)
        return 0
    return rehearse(args)
