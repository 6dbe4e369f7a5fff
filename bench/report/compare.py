"""``python -m bench compare RUN_A RUN_B``: two run folders, unit by unit, from their records alone.

Units are matched by (dataset identity, method, input size, coarse source): the dataset identity
is the run config's ``dataset``, ``split`` and ``data`` options (``run.json``); the coarse source
is that of a coarse map given with the data (``method@WxH/source`` in ``run.json``, the records'
``coarse_source``); the harness's own backbone pass and records written before sources match.
For every matched unit and metric the output gives A, B and B − A, all over the images both units
share (paired on ``image_id``):

- Accuracy (mIoU with A's absent-class policy and excluded classes, mBA, and Boundary IoU where
  both sides' records hold its band counts, at one dilation ratio): B − A with the
  percentile interval of a paired bootstrap over the shared images
  (:func:`bench.evaluation.significance.paired_bootstrap`: 1000 resamples, seed 0, 95 %). A
  difference is a change when the interval excludes 0; with fewer than
  :data:`~bench.evaluation.significance.MIN_PAIRED_IMAGES` shared images there is no verdict.
- Time (median ms per image) and memory (the tables' figure: the largest per-image peak): the
  ratio B / A and the **noise rule** (:data:`NOISE_RULE`): a ratio is a change only when it lies
  outside ``[1/f, f]`` (``f`` = 1.10 for time, asv's default factor; 1.05 for memory) *and* the
  two runs' spreads do not overlap: the interquartile ranges of the per-image times, the
  [min, max] ranges of the per-image peaks. A ratio inside the runs' own spread is noise.

The header flags what makes the two runs differ besides the change under test: code (git sha,
uncommitted changes), weights (digests where the records carry them), data (dataset identity,
image ids), config (the keys whose values differ), machine (fingerprint, device, torch). Flagged
runs are compared all the same.

``--fail-on accuracy,time,memory``: :func:`regressions` lists every significant worsening of the
named kinds, and every unit ok in A that is not ok in B (failed, not run, or absent: a gate never
passes on a unit it could not compare); the command exits 1 when there is one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import BenchConfig, build
from bench.core.errors import UserError
from bench.evaluation import records, run_folder
from bench.evaluation.metrics import iou_per_class, mean_iou
from bench.evaluation.significance import MIN_PAIRED_IMAGES, DiffInterval, paired_bootstrap, stack_images
from bench.report.compare_biou import biou_difference
from bench.report.export import WHERE_KEYS, coarse_name, parse_label, run_units, weights_digest

KINDS = ("accuracy", "time", "memory")
TIME_FACTOR = 1.10  # asv compare's default --factor
MEMORY_FACTOR = 1.05  # a peak is nearly deterministic under one torch and device: a tighter factor
NOISE_RULE = ("a time or memory ratio B/A is a change only when it lies outside [1/f, f] (f = {time} for time, "
              "{memory} for memory) and the two runs' spreads do not overlap (time: the interquartile ranges of the "
              "per-image times; memory: the [min, max] ranges of the per-image peaks); a ratio inside the runs' "
              "spread is noise")

UnitId = tuple[str, str, str]  # (method, "WxH", coarse source or "")


@dataclass(frozen=True)
class Unit:
    """One unit of a run: its identity, status, display name and ok image records by image id."""

    method: str
    size: str
    coarse: str
    key: str
    status: str
    display: str
    images: dict[str, dict[str, Any]]
    message: str = ""


@dataclass(frozen=True)
class Run:
    """A run folder read for comparison.

    Attributes:
        folder: the run folder (``out_dir``).
        cfg: its config (``run.json``).
        identity: ``{"dataset", "split", "data"}``: what units must share to be matched.
        units: by :data:`UnitId`, in run order.
        provenance: the first image record's ``provenance`` ({} without one).
    """

    folder: Path
    cfg: BenchConfig
    identity: dict[str, Any]
    units: dict[UnitId, Unit]
    provenance: dict[str, Any]

    @property
    def identity_text(self) -> str:
        data = f", data {json.dumps(self.identity['data'], sort_keys=True)}" if self.identity["data"] else ""
        return f"{self.identity['dataset']} {self.identity['split']}{data}"


@dataclass
class Metric:
    """One metric of a matched unit: A, B (over the shared images), the change and its verdict.

    ``verdict`` is ``better``, ``worse``, ``same`` or ``no verdict`` (too few images, undefined
    values, memory measured differently). Accuracy values are fractions; ``low``/``high`` bound
    B − A. Time (ms) and memory (MiB) carry ``ratio`` B/A and each side's spread ``[lo, hi]``.
    """

    name: str
    a: float
    b: float
    verdict: str
    diff: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    ratio: float = float("nan")
    spread_a: tuple[float, float] = (float("nan"), float("nan"))
    spread_b: tuple[float, float] = (float("nan"), float("nan"))
    kind: str = "accuracy"


@dataclass
class UnitComparison:
    """A unit present in A, B or both; ``metrics`` only where both have results."""

    method: str
    size: str
    coarse: str
    display: str
    status_a: str
    status_b: str
    n_a: int
    n_b: int
    n_shared: int
    metrics: list[Metric] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        coarse = f" [{self.coarse}]" if self.coarse else ""
        return f"{self.display} @ {self.size}{coarse}"

    @property
    def changed(self) -> bool:
        return self.status_a != self.status_b or any(m.verdict in ("better", "worse") for m in self.metrics)


@dataclass
class Comparison:
    """Everything ``bench compare`` prints."""

    a: Run
    b: Run
    flags: list[str]
    units: list[UnitComparison]
    n_resamples: int
    seed: int
    level: float
    time_factor: float
    memory_factor: float


# --- reading a run ------------------------------------------------------------------------------------------------

def load_run(folder: str | Path) -> Run:
    """Read a run folder (``run.json`` and its records) for :func:`compare`.

    Raises:
        UserError: not a folder, or no ``run.json`` (expected the ``out_dir`` of a ``bench run``).
    """
    path = Path(folder)
    if not path.is_dir():
        raise UserError(f"{path}: no such folder; expected the out_dir of a bench run")
    data = run_folder.read(path)
    if data is None:
        raise UserError(f"{path / run_folder.RUN_FILE}: not found; expected the out_dir of a bench run")
    try:
        cfg = build(dict(data["config"]))
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"{path / run_folder.RUN_FILE}: config does not build ({err})") from err
    recs = run_folder.restrict(records.load(path), data.get("image_ids"))
    units: dict[UnitId, Unit] = {}
    for label, key in run_units(dataclasses.replace(cfg, out_dir=str(path)), recs):  # the config's order
        unit = _unit(recs, label, key)
        units[(unit.method, unit.size, unit.coarse)] = unit
    first = next((r for r in recs if r.get("type") == "image" and r.get("status") == "ok"), {})
    identity = {"dataset": cfg.dataset, "split": cfg.split, "data": _plain(dict(cfg.data))}
    return Run(path, cfg, identity, units, dict(first.get("provenance") or {}))


def _plain(value: Any) -> Any:
    """Tuples as lists (what a JSON round trip gives), so identities read from files compare equal."""
    return json.loads(json.dumps(value, default=str))


def _unit(recs: Sequence[dict[str, Any]], label: str, key: str) -> Unit:
    images = records.latest_by_image(recs, key)
    mine = [r for r in recs if r.get("unit_key") == key]
    method, size, source = parse_label(label)
    first = next(iter(images.values()), mine[-1] if mine else {})
    failure = records.unit_status(recs, key)
    status = "ok" if images else (str(failure["status"]) if failure else "not run")
    coarse = source or coarse_name(first.get("coarse_source")) or ""
    return Unit(str(first.get("method") or method), str(first.get("size") or size), coarse, key, status,
                str(first.get("display_name") or method), images, str((failure or {}).get("message", "")))


# --- comparing ----------------------------------------------------------------------------------------------------

def _mem_field(images: Mapping[str, Mapping[str, Any]]) -> str:
    """The tables' memory field: the allocator peak on CUDA, the peak above the setup baseline on the CPU."""
    first = next(iter(images.values()), {})
    return "mem_peak_mib" if first.get("mem_method") == "cuda_allocator" else "mem_peak_delta_mib"


def _values(images: Mapping[str, Mapping[str, Any]], ids: Sequence[str], name: str) -> np.ndarray:
    vals = [images[i].get(name) for i in ids]
    return np.asarray([float(v) for v in vals if v is not None and math.isfinite(float(v))], dtype=np.float64)


def ratio_verdict(a: float, b: float, spread_a: tuple[float, float], spread_b: tuple[float, float],
                  factor: float) -> tuple[float, str]:
    """B/A and the noise rule (:data:`NOISE_RULE`): ``worse`` (larger), ``better``, ``same`` or ``no verdict``.

    Args:
        a, b: the two figures (ms or MiB; smaller is better).
        spread_a, spread_b: each side's spread ``(lo, hi)`` in the same unit.
        factor: f > 1: ratios inside [1/f, f] are never a change.
    """
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return float("nan"), "no verdict"
    ratio = b / a
    if spread_b[0] > spread_a[1] and ratio > factor:
        return ratio, "worse"
    if spread_b[1] < spread_a[0] and ratio < 1 / factor:
        return ratio, "better"
    return ratio, "same"


def _time_metric(ua: Unit, ub: Unit, ids: Sequence[str], factor: float) -> Metric:
    ta, tb = _values(ua.images, ids, "time_ms"), _values(ub.images, ids, "time_ms")
    if not ta.size or not tb.size:
        return Metric("time_ms", float("nan"), float("nan"), "no verdict", kind="time")
    qa, qb = np.percentile(ta, [25, 50, 75]), np.percentile(tb, [25, 50, 75])
    spread_a, spread_b = (float(qa[0]), float(qa[2])), (float(qb[0]), float(qb[2]))
    ratio, verdict = ratio_verdict(float(qa[1]), float(qb[1]), spread_a, spread_b, factor)
    return Metric("time_ms", float(qa[1]), float(qb[1]), verdict, ratio=ratio, spread_a=spread_a,
                  spread_b=spread_b, kind="time")


def _memory_metric(ua: Unit, ub: Unit, ids: Sequence[str], factor: float) -> Metric:
    field_a, field_b = _mem_field(ua.images), _mem_field(ub.images)
    ma, mb = _values(ua.images, ids, field_a), _values(ub.images, ids, field_b)
    if not ma.size or not mb.size:
        return Metric("memory_mib", float("nan"), float("nan"), "no verdict", kind="memory")
    spread_a, spread_b = (float(ma.min()), float(ma.max())), (float(mb.min()), float(mb.max()))
    ratio, verdict = ratio_verdict(float(ma.max()), float(mb.max()), spread_a, spread_b, factor)
    methods = {str(next(iter(u.images.values())).get("mem_method")) for u in (ua, ub)}
    if len(methods) > 1:  # CUDA allocator against RSS: two different quantities
        verdict = "no verdict"
    return Metric("memory_mib", float(ma.max()), float(mb.max()), verdict, ratio=ratio, spread_a=spread_a,
                  spread_b=spread_b, kind="memory")


def _accuracy_metrics(ua: Unit, ub: Unit, ids: Sequence[str], absent: str, excluded: Sequence[int],
                      n_resamples: int, seed: int, level: float) -> list[Metric]:
    cm_a, mba_a = stack_images(ua.images, ids)
    cm_b, mba_b = stack_images(ub.images, ids)
    boot = paired_bootstrap({i: ub.images[i] for i in ids}, {i: ua.images[i] for i in ids}, absent=absent,
                            excluded=excluded, n_resamples=n_resamples, seed=seed, level=level)
    values = {"miou": (mean_iou(iou_per_class(cm_a.sum(0), absent), excluded),
                       mean_iou(iou_per_class(cm_b.sum(0), absent), excluded)),
              "mba": (float(np.nanmean(mba_a)) if np.isfinite(mba_a).any() else float("nan"),
                      float(np.nanmean(mba_b)) if np.isfinite(mba_b).any() else float("nan"))}
    out = [_accuracy(name, *values[name], interval, boot.markable)
           for name, interval in (("miou", boot.miou), ("mba", boot.mba))]
    biou = _biou_metric(ua, ub, ids, absent, excluded, n_resamples, seed, level)
    return out + ([biou] if biou is not None else [])


def _accuracy(name: str, a: float, b: float, interval: DiffInterval, markable: bool) -> Metric:
    """An accuracy metric's verdict: better/worse when the interval of B − A excludes 0."""
    if not markable or not math.isfinite(interval.low):
        verdict = "no verdict"
    elif interval.excludes_zero:
        verdict = "better" if interval.low > 0 else "worse"
    else:
        verdict = "same"
    return Metric(name, float(a), float(b), verdict, diff=interval.diff, low=interval.low, high=interval.high)


def _biou_metric(ua: Unit, ub: Unit, ids: Sequence[str], absent: str, excluded: Sequence[int], n_resamples: int,
                 seed: int, level: float) -> Metric | None:
    """Boundary IoU B − A (:func:`bench.report.compare_biou.biou_difference`); None when a side lacks the counts."""
    found = biou_difference(ua.images, ub.images, ids, absent, excluded, n_resamples=n_resamples, seed=seed,
                            level=level)
    if found is None:
        return None
    a, b, interval = found
    if interval is None:
        return Metric("biou", a, b, "no verdict", diff=b - a)
    return _accuracy("biou", a, b, interval, len(ids) >= MIN_PAIRED_IMAGES)


def _excluded(cfg: BenchConfig) -> tuple[int, ...]:
    """Classes left out of the mean: the config's, else the dataset's (none when its classes cannot be read)."""
    if cfg.excluded is not None:
        return tuple(cfg.excluded)
    from bench.data import dataset_info

    try:
        return tuple(dataset_info(cfg).excluded_from_mean)
    except (KeyError, FileNotFoundError, ValueError):
        return ()


def _weights(unit: Unit) -> str | None:
    """The digest of the weights a unit's records name (:func:`bench.report.export.weights_digest`)."""
    return weights_digest(next(iter(unit.images.values()), {}))


def compare_units(ua: Unit | None, ub: Unit | None, absent: str, excluded: Sequence[int], *,
                  n_resamples: int = 1000, seed: int = 0, level: float = 0.95, time_factor: float = TIME_FACTOR,
                  memory_factor: float = MEMORY_FACTOR) -> UnitComparison:
    """One unit of A against the same unit of B (either may be missing: ``absent``)."""
    some = ua or ub
    assert some is not None
    out = UnitComparison(some.method, some.size, some.coarse, some.display,
                         ua.status if ua else "absent", ub.status if ub else "absent",
                         len(ua.images) if ua else 0, len(ub.images) if ub else 0, 0)
    if ua is None or ub is None or not ua.images or not ub.images:
        return out
    ids = sorted(set(ua.images) & set(ub.images))
    out.n_shared = len(ids)
    if not ids:
        out.flags.append("no image in common")
        return out
    out.metrics = _accuracy_metrics(ua, ub, ids, absent, excluded, n_resamples, seed, level)
    out.metrics += [_time_metric(ua, ub, ids, time_factor), _memory_metric(ua, ub, ids, memory_factor)]
    wa, wb = _weights(ua), _weights(ub)
    if wa != wb:
        out.flags.append(f"weights differ ({wa or 'not recorded'} → {wb or 'not recorded'})")
    if ua.key != ub.key and not out.flags:
        out.flags.append("unit key differs (options, version, weights or device)")
    return out


def compare(a: Run, b: Run, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
            time_factor: float = TIME_FACTOR, memory_factor: float = MEMORY_FACTOR) -> Comparison:
    """Every unit of A and B, matched by dataset identity, method, input size and coarse source."""
    same_data = a.identity == b.identity
    absent, excluded = a.cfg.absent, _excluded(a.cfg)
    ids: list[UnitId] = list(a.units) + [u for u in b.units if u not in a.units]
    units = []
    for uid in ids:
        ua = a.units.get(uid)
        ub = b.units.get(uid) if same_data else None  # other data: nothing is matched
        if ua is None and not same_data:
            ub = b.units.get(uid)
        units.append(compare_units(ua, ub, absent, excluded, n_resamples=n_resamples, seed=seed, level=level,
                                   time_factor=time_factor, memory_factor=memory_factor))
    return Comparison(a, b, run_flags(a, b, units), units, n_resamples, seed, level, time_factor, memory_factor)


# --- what differs besides the units -------------------------------------------------------------------------------

def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def config_differences(a: BenchConfig, b: BenchConfig) -> list[str]:
    """``"key: A → B"`` for every config key whose value differs (where files go left out)."""
    fa, fb = (_flatten(_plain({k: v for k, v in c.to_dict().items() if k not in WHERE_KEYS})) for c in (a, b))
    return [f"{k}: {json.dumps(fa.get(k))} → {json.dumps(fb.get(k))}" for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k)]


def _ids(run: Run) -> set[str]:
    return {i for u in run.units.values() for i in u.images}


def code_versions(run: Run) -> list[str]:
    """The git shas (10 digits) of the image records of a run, sorted: a run resumed across commits has several."""
    return sorted({str((r.get("provenance") or {}).get("git_sha"))[:10]
                   for u in run.units.values() for r in u.images.values()})


def run_flags(a: Run, b: Run, units: Sequence[UnitComparison]) -> list[str]:
    """What makes A and B differ besides the units' results: code, weights, data, config, machine."""
    pa, pb = a.provenance, b.provenance
    flags = []
    sha_a, sha_b = code_versions(a), code_versions(b)
    if sha_a != sha_b:
        flags.append(f"code differs: git {'+'.join(sha_a)} → {'+'.join(sha_b)}")
    dirty = [side for side, run in (("A", a), ("B", b))
             if any((r.get("provenance") or {}).get("git_dirty")
                    for u in run.units.values() for r in u.images.values())]
    if dirty:
        flags.append(f"uncommitted changes in the code of {' and '.join(dirty)}")
    weights = [u.label for u in units if any(f.startswith("weights differ") for f in u.flags)]
    if weights:
        flags.append(f"weights differ: {', '.join(weights)}")
    if a.identity != b.identity:
        flags.append(f"data differ: {a.identity_text} → {b.identity_text}; no unit is matched")
    else:
        only_a, only_b = _ids(a) - _ids(b), _ids(b) - _ids(a)
        if only_a or only_b:
            flags.append(f"image ids differ: {len(only_a)} only in A, {len(only_b)} only in B (only shared images "
                         f"are compared)")
    diffs = config_differences(a.cfg, b.cfg)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 8 else "")
        flags.append(f"config differs: {shown}")
    for what, key in (("machine", "fingerprint"), ("device", "device_name"), ("threads", "threads")):
        if pa.get(key) != pb.get(key):
            flags.append(f"{what} differs: {pa.get(key)} → {pb.get(key)} (time and memory ratios compare "
                         f"{'machines' if what != 'threads' else 'settings'} too)")
    ta, tb = (p.get("versions", {}).get("torch") for p in (pa, pb))
    if ta != tb:
        flags.append(f"torch differs: {ta} → {tb}")
    return flags


def regressions(result: Comparison, kinds: Sequence[str]) -> list[str]:
    """One line per significant worsening of the ``kinds`` (see :data:`KINDS`) and per unit ok in A, not in B."""
    out = []
    for u in result.units:
        if u.status_a == "ok" and u.status_b != "ok":  # a unit B lost (or never ran) is never a pass
            out.append(f"{u.label}: ok in A, {u.status_b} in B")
        for m in u.metrics:
            if m.kind in kinds and m.verdict == "worse":
                out.append(f"{u.label}: {NAMES[m.name]} {change_text(m)}")
    return out


# --- the words of a change --------------------------------------------------------------------------------------------

NAMES = {"miou": "mIoU (%)", "mba": "mBA (%)", "biou": "BIoU (%)", "time_ms": "Time (ms, median)",
         "memory_mib": "Memory (MiB, peak)"}


def fmt_num(value: float, digits: int, scale: float = 1.0) -> str:
    """``value * scale`` with ``digits`` decimals, "–" where undefined."""
    return "–" if value is None or not math.isfinite(value) else f"{scale * value:.{digits}f}"


def change_text(m: Metric) -> str:
    """B − A [low, high] in points (accuracy), or ``×ratio (spread A lo–hi, B lo–hi)`` (time, memory)."""
    if m.kind == "accuracy":
        return f"{fmt_num(m.diff, 2, 100)} [{fmt_num(m.low, 2, 100)}, {fmt_num(m.high, 2, 100)}]".replace("-", "−")
    digits = 1 if m.kind == "time" else 0
    return (f"×{fmt_num(m.ratio, 3)} (spread A {fmt_num(m.spread_a[0], digits)}–{fmt_num(m.spread_a[1], digits)}, "
            f"B {fmt_num(m.spread_b[0], digits)}–{fmt_num(m.spread_b[1], digits)})")


def parse_kinds(text: str | None) -> list[str]:
    """``"accuracy,time"`` -> ``["accuracy", "time"]``.

    Raises:
        UserError: a kind outside :data:`KINDS`.
    """
    kinds = [k.strip() for k in (text or "").split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"--fail-on: unknown kind(s) {unknown}; expected a comma-separated list of {list(KINDS)}")
    return kinds

