"""``python -m bench score``: aggregates recomputed from the records on disk, nothing rerun.

For each (method, input size) unit of a config, the latest ok image record per image id is read
(``bench.evaluation.records.latest_by_image``) and mIoU, per-class IoU, mBA and the image count are
recomputed exactly as the tables do (``bench.report.tables.collect``: one confusion matrix summed over
the images, the config's absent-class policy and excluded classes, mBA as the mean over images
with a boundary). Optionally only some methods, or only some image ids, are scored.

Units: Markdown shows percentages with two decimals; CSV and JSON give fractions in [0, 1] at
full precision (NaN as an empty CSV cell or JSON null), and the tables' time (median, IQR and mean
of the per-image ``time_ms``, in ms) and memory (MiB, with how it was measured).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bench.evaluation import records
from bench.core.config import BenchConfig
from bench.core.interface import DatasetInfo
from bench.report.results import collect
from bench.evaluation.metrics import VARIANT_HEADERS, describe_variant
from bench.report.table_model import STATUS_TEXT, Table, UnitResult, partial_note
from bench.report.table_notes import excluded_classes, metric_columns, variant_value
from bench.report.table_format import to_markdown

FORMATS = ("md", "csv", "json")
UnitKeys = Mapping[tuple[str, tuple[int, int]], str | None]


def select_units(keys: UnitKeys, methods: Sequence[str] | None) -> dict[tuple[str, tuple[int, int]], str | None]:
    """The units of ``methods`` (all when None), in config order.

    Raises:
        ValueError: a method the config does not sweep; the message lists the known ones.
    """
    if not methods:
        return dict(keys)
    known = list(dict.fromkeys(m for m, _ in keys))
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; this config sweeps {known} "
                         f"(add others with the override methods=[...])")
    wanted = set(methods)
    return {k: v for k, v in keys.items() if k[0] in wanted}


def restrict_images(recs: Sequence[dict[str, Any]], unit_keys: Collection[str | None],
                    image_ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """The records, with the image records of ``unit_keys`` cut down to ``image_ids`` (all when None).

    Raises:
        ValueError: an image id with no ok record in any of the selected units; the message names
            the missing ids and some known ones.
    """
    if not image_ids:
        return list(recs)
    wanted = set(image_ids)
    units = set(unit_keys)
    present = {r["image_id"] for r in recs
               if r.get("type") == "image" and r.get("unit_key") in units and r.get("status") == "ok"}
    missing = [i for i in dict.fromkeys(image_ids) if i not in present]
    if missing:
        examples = sorted(present)[:8]
        raise ValueError(f"image id(s) {missing} not found in the records of the selected units "
                         f"({len(present)} image(s) recorded, e.g. {examples})")
    # only image records are filtered: unit status records stay, so a failed unit still shows why
    return [r for r in recs if r.get("type") != "image" or r.get("image_id") in wanted]


def score_units(cfg: BenchConfig, info: DatasetInfo, keys: UnitKeys, recs: Sequence[dict[str, Any]],
                methods: Sequence[str] | None = None, image_ids: Sequence[str] | None = None) -> list[UnitResult]:
    """Recompute each selected unit's aggregates from ``recs``, in config order.

    Args:
        cfg: the config (absent-class policy ``cfg.absent``, excluded classes).
        info: the dataset's description (class names, default excluded classes).
        keys: ``{(method, (w, h)): unit_key}`` as ``bench.pipeline.unit.unit_keys`` returns.
        recs: every record of the run folder.
        methods: method keys to score (None: all the config's).
        image_ids: image ids to score (None: all recorded).

    Returns:
        One :class:`bench.report.table_model.UnitResult` per unit (``status`` "not run" when it has no record).
    """
    selected = select_units(keys, methods)
    recs = restrict_images(recs, selected.values(), image_ids)
    # the tables' own aggregation (and display names), so both always agree
    return list(collect(cfg, info, selected, recs).values())


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def to_rows(results: Sequence[UnitResult], class_names: Sequence[str],
            variants: Mapping[str, Sequence[float]] | None = None) -> list[dict[str, Any]]:
    """Flat rows: method, display, size, status, n_images, n_expected, partial, failed, miou, the
    other named mIoU variants of ``variants`` (``{name: value per result}``, e.g. ``iou_building``),
    mba, mba_skipped, the time and memory columns of :func:`time_memory`, iou_<class>.

    ``n_expected`` is the number of images the unit should cover, ``partial`` whether it covers
    fewer, ``failed`` the ids of the images that could not be evaluated (``;``-separated). Metric
    values are fractions in [0, 1], None where undefined.
    """
    rows = []
    extra = {k: v for k, v in (variants or {}).items() if k != "miou"}
    for i, r in enumerate(results):
        iou = r.iou if r.iou else [float("nan")] * len(class_names)
        rows.append({"method": r.method, "display": r.display, "size": r.size, "status": r.status,
                     "n_images": r.n_images, "n_expected": r.n_total, "partial": r.partial,
                     "failed": ";".join(sorted(r.failed)), "miou": _num(r.miou),
                     **{k: _num(v[i]) for k, v in extra.items()}, "mba": _num(r.mba),
                     "mba_skipped": r.mba_skipped, **time_memory(r),
                     **{f"iou_{name}": _num(v) for name, v in zip(class_names, iou)}})
    return rows


def time_memory(r: UnitResult) -> dict[str, Any]:
    """The tables' time and memory of a unit: ``time_median_ms``, ``time_iqr_ms`` (q75 - q25) and
    ``time_mean_ms`` of the per-image ``time_ms``; ``memory_mib`` (the largest per-image peak, as
    Table 3 prints it) and ``mem_method`` (how it was measured); None where undefined."""
    t = r.time or {}
    return {"time_median_ms": _num(t.get("median")), "time_iqr_ms": _num(t.get("iqr")),
            "time_mean_ms": _num(t.get("mean")), "memory_mib": _num(r.memory), "mem_method": r.mem_method or None}


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _subset_text(image_ids: Sequence[str] | None) -> str:
    if not image_ids:
        return "all recorded images"
    shown = ", ".join(image_ids[:5]) + (f", ... ({len(image_ids)} in all)" if len(image_ids) > 5 else "")
    return f"image subset [{shown}]"


def to_table(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult],
             image_ids: Sequence[str] | None = None) -> Table:
    """A :class:`bench.report.table_model.Table` (percentages) whose caption names the metric policy and the subset."""
    excluded = excluded_classes(cfg, info)
    excl = f", classes {list(excluded)} excluded from the mean" if excluded else ""
    names = _variant_names(cfg, info)
    defined = " ".join(describe_variant(n, info.class_names, cfg.absent, excluded) + "." for n in names)
    caption = (f"Scores recomputed from the records in {cfg.out_path}: {info.name} {cfg.split}, "
               f"{_subset_text(image_ids)}. mIoU: dataset-level confusion matrix, absent classes -> {cfg.absent}{excl}. "
               f"{defined} "
               f"mBA: mean over images with a boundary; n: images scored.")
    note = "" if image_ids else partial_note(results)  # a chosen subset is not partial: the note is about the split
    caption += f" {note}" if note else ""
    table = Table("score", caption, ["Method", "Input size", "n", *(VARIANT_HEADERS[n] for n in names), "mBA (%)",
                                     *info.class_names])
    for row, r in zip(to_rows(results, info.class_names, _variants(cfg, info, results)), results):
        if r.status != "ok":
            table.rows.append([r.display, r.size, "0", STATUS_TEXT.get(r.status, r.status)]
                              + ["–"] * (len(table.header) - 4))
            continue
        n = f"{r.n_images} of {r.n_total}" if r.partial and not image_ids else str(r.n_images)
        table.rows.append([r.display, r.size, n, *(fmt_pct(row[v]) for v in names), fmt_pct(row["mba"]),
                           *(fmt_pct(row[f"iou_{c}"]) for c in info.class_names)])
    return table


def _variant_names(cfg: BenchConfig, info: DatasetInfo) -> list[str]:
    """``miou`` (always: the config's policy) and the config's other ``metric_columns``."""
    return list(dict.fromkeys(["miou", *metric_columns(cfg, info)]))


def _variants(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult]) -> dict[str, list[float]]:
    return {n: [variant_value(r, n, cfg, info) for r in results] for n in _variant_names(cfg, info)}


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with a header line; None is an empty cell."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def render(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult], fmt: str = "md",
           image_ids: Sequence[str] | None = None) -> str:
    """The scores as Markdown (percentages), CSV or JSON (fractions)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "md":
        return to_markdown(to_table(cfg, info, results, image_ids))
    rows = to_rows(results, info.class_names, _variants(cfg, info, results))
    if fmt == "csv":
        return to_csv(rows)
    excluded = excluded_classes(cfg, info)
    meta = {"dataset": cfg.dataset, "split": cfg.split, "records": str(cfg.out_path), "absent": cfg.absent,
            "excluded": list(excluded), "images": list(image_ids) if image_ids else None, "units": rows}
    return json.dumps(meta, indent=2) + "\n"


def run_score(cfg: BenchConfig, methods: Sequence[str] | None = None, image_ids: Sequence[str] | None = None,
              fmt: str = "md") -> tuple[str, list[UnitResult]]:
    """Load the records of ``cfg`` and score them; returns the rendered text and the results."""
    from bench.data import dataset_info
    from bench.evaluation import run_folder

    info = dataset_info(cfg)
    recs = records.load(cfg.out_path)
    recs = run_folder.restrict(recs, run_folder.image_ids(cfg))
    results = score_units(cfg, info, run_folder.unit_keys(cfg, recs), recs, methods, image_ids)
    return render(cfg, info, results, fmt, image_ids), results
