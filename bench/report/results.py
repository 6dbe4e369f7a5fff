"""Aggregates of a run folder, from its records alone: one :class:`bench.report.table_model.UnitResult` per unit.

Which records belong to the run is said by the folder itself (``bench.evaluation.run_folder``: the unit keys
and image ids in ``run.json``, else the latest key per unit); a row's name is the
``display_name`` its records carry. Nothing is imported, resolved or hashed to render a table, so
``bench table``, ``bench score`` and ``bench show`` work on a copied run folder without the
weights or the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.evaluation import records, run_folder
from bench.core.config import BenchConfig, format_size
from bench.core.interface import DatasetInfo


def collect(cfg: BenchConfig, info: DatasetInfo, keys: Mapping[tuple[str, tuple[int, int]], str | None],
            recs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """``{(method, "WxH"): UnitResult}`` for the given unit keys, from ``recs``.

    Args:
        cfg: absent-class policy (``cfg.absent``) and excluded classes.
        info: the dataset's classes.
        keys: ``{(method, (w, h)): unit_key}`` (``bench.evaluation.run_folder.unit_keys``).
        recs: the records (already cut to the run's images where needed).
    """
    from bench.report.table_model import aggregate
    from bench.report.table_notes import excluded_classes

    excluded = excluded_classes(cfg, info)
    names = {r["unit_key"]: r["display_name"] for r in recs if r.get("display_name") and r.get("unit_key")}
    out = {}
    for (method, size), key in keys.items():
        label = format_size(size)
        out[(method, label)] = aggregate(recs, key or "", method, label, info, cfg.absent, excluded,
                                         names.get(key or "", method))
    return out


def load_results(cfg: BenchConfig) -> dict[tuple[str, str], Any]:
    """The aggregates of every unit of ``cfg`` in its run folder ``cfg.out_path``."""
    from bench.data import dataset_info

    recs = records.load(cfg.out_path)
    keys = run_folder.unit_keys(cfg, recs)
    return collect(cfg, dataset_info(cfg), keys, run_folder.restrict(recs, run_folder.image_ids(cfg)))
