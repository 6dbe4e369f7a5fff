"""The time-memory trade-off of the batch setting (issue 21, item 9), in the style of the supplement's Table 1.

``make bench-batch BATCHES="1 4 16"`` runs the sweep once per setting, every batching method's
declared option (``bench.core.batch``) set to it, each into its own run folder
(``<out_dir>-batch<B>``; :func:`batch_out_dir`), so every run's tables measure all rows at one
setting. This module reads those folders back (records only, as every table) and sets the
batching methods' rows side by side: per method and setting, mIoU, median time per image and peak
memory. Labels do not depend on the setting (tests/test_batch.py), so the mIoU column must not
move; time and memory do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.batch import batch_option, batch_overrides
from bench.core.config import BenchConfig, format_size, parse_overrides
from bench.core.registry import MethodUnavailable, resolve
from bench.report.table_model import Table, fmt_mem, fmt_pct, fmt_time_s


def batch_out_dir(cfg: BenchConfig, batch: int) -> str:
    """The run folder of one setting: the sweep's ``out_dir`` with ``-batch<B>`` appended."""
    return f"{str(cfg.out_path).rstrip('/')}-batch{batch}"


def batch_config(dataset: str, batch: int, overrides: Mapping[str, Any] | None = None) -> BenchConfig:
    """The sweep of ``dataset`` at one batch setting, recorded in its own run folder."""
    from bench.pipeline.configure import load

    base = load(dataset, dict(overrides or {}))
    extra = parse_overrides(batch_overrides(base.methods, batch))
    return load(dataset, {**dict(overrides or {}), **extra, "out_dir": batch_out_dir(base, batch)})


def batch_table(dataset: str, batches: Sequence[int], overrides: Mapping[str, Any] | None = None) -> Table:
    """Rows: each batching method x setting at the input size; columns: mIoU, time, memory."""
    from bench.data import dataset_info
    from bench.report.tables import load_results

    header = ["Method", "Batch", "mIoU (%)", "Time (s)", "Memory (MiB)"]
    table = Table("batch", "", header, label="Batch")
    info, size, devices = None, "", set()
    for b in batches:
        cfg = batch_config(dataset, b, overrides)
        info, size = dataset_info(cfg), format_size(cfg.input_size)
        results = load_results(cfg)
        for m in cfg.methods:
            try:
                if batch_option(resolve(m)) is None:
                    continue
            except (KeyError, MethodUnavailable):
                continue
            res = results.get((m, size))
            if res is None or res.status != "ok":
                table.rows.append([m, str(b), "–", "–", res.status if res else "not run"])
                continue
            devices.add(f"{res.device or '?'}, {res.threads or '?'} thread(s)")
            table.rows.append([res.display, str(b), fmt_pct(res.miou), fmt_time_s(res), fmt_mem(res)])
    table.rows.sort(key=lambda r: (r[0], int(r[1])))
    name = info.name if info else dataset
    table.caption = (f"Time and memory against the batch setting (items per forward: tiles, patches or masks) on "
                     f"{name} at input size {size}, in the style of the supplement's Table 1.")
    table.notes = [f"One run per setting ({', '.join(map(str, batches))}), every batching method's declared option "
                   f"set to it (bench.core.batch); the methods without a batch option are left out. Time: median "
                   f"seconds per image of the coarse pass plus refine(); memory: peak per image, as the sweep's "
                   f"tables define them; on {'; '.join(sorted(devices)) or '?'}. The labels do not depend on the "
                   f"setting: the mIoU column stays the same."]
    return table


def write_batch_table(dataset: str, batches: Sequence[int], overrides: Sequence[str] = ()) -> list[Path]:
    """Render :func:`batch_table` as ``batch.md`` / ``batch.tex`` in the sweep's tables folder."""
    from bench.pipeline.configure import load
    from bench.report.table_format import to_latex, to_markdown

    values = parse_overrides(list(overrides))
    table = batch_table(dataset, batches, values)
    folder = load(dataset, values).tables_path
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    # batch.md / batch.tex only: tables.md is the sweep's own (bench.report.tables.write_tables)
    for suffix, text in ((".md", to_markdown(table)), (".tex", to_latex(table))):
        path = folder / f"{table.name}{suffix}"
        path.write_text(text)
        paths.append(path)
    return paths
