"""``python -m bench export RUN_DIR ... --format csv|parquet|json``: one row per result, in the field's formats.

One row per (dataset, split, method, input size, mIoU variant[, coarse source]) of every run
folder given, recomputed from the records as the tables are (``bench.report.results.load_results``):

- what: ``dataset``, ``split``, ``method``, ``display``, ``input_size``, ``coarse`` (the coarse
  source given with the data, ``method@WxH/source`` in ``run.json``; null for the harness's own
  backbone pass), ``variant`` (a name of
  :data:`bench.evaluation.metrics.MIOU_VARIANTS`: ``miou`` always, then the config's other
  ``metric_columns``), ``status``, ``message`` (a failed unit's reason, first line);
- results: ``miou`` (the variant's value), ``mba``, ``biou`` (Boundary IoU, null where the records
  hold no band counts), ``iou_<class>`` per class (the config's absent-class policy), all
  fractions in [0, 1]; ``n_images`` (scored), ``n_expected``;
- cost: ``time_median_ms``, ``time_iqr_ms``, ``time_mean_ms`` (per-image ``time_ms``),
  ``memory_mib`` (Table 3's figure), ``mem_method``;
- provenance: ``git_sha``, ``git_dirty``, ``torch``, ``device``, ``device_name``, ``threads``,
  ``fingerprint``, ``weights_digest`` (of the weight digests the records name; null when they name
  none), ``config_digest`` (the run config without where files go), ``unit_key``.

Undefined values are null (an empty CSV cell). The JSON file is
``{"schema": "magnet-bench/results", "version": 1, "created", "generator", "rows": [...]}``,
described by the JSON Schema ``bench/report/schemas/results-v1.json``. :func:`read` reads any
version this module knows and upgrades it to the current one (:data:`UPGRADES`): version 0 is the
JSON of ``bench score --format json`` written before this format.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.config import BACKBONE_SOURCE, BenchConfig, build, stable_hash
from bench.core.errors import UserError
from bench.evaluation.metrics import MIOU_VARIANTS, metric_variant

SCHEMA = "magnet-bench/results"
VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("schemas") / f"results-v{VERSION}.json"
FORMATS = ("csv", "parquet", "json")
WHERE_KEYS = ("out_dir", "tables_dir", "data_root", "checkpoint_dir", "method_checkpoint_dir", "reference_dir")

# the fixed columns, in order, with their types (JSON Schema names); then iou_<class> columns (number)
COLUMNS: dict[str, str] = {
    "dataset": "string", "split": "string", "method": "string", "display": "string", "input_size": "string",
    "coarse": "string", "variant": "string", "status": "string", "message": "string",
    "miou": "number", "mba": "number", "biou": "number", "n_images": "integer", "n_expected": "integer",
    "time_median_ms": "number", "time_iqr_ms": "number", "time_mean_ms": "number", "memory_mib": "number",
    "mem_method": "string", "git_sha": "string", "git_dirty": "boolean", "torch": "string", "device": "string",
    "device_name": "string", "threads": "integer", "fingerprint": "string", "weights_digest": "string",
    "config_digest": "string", "unit_key": "string",
}


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def run_config(folder: str | Path) -> BenchConfig:
    """The config stored in ``<folder>/run.json``, pointed at ``folder`` (a copied run folder reads the same).

    Raises:
        UserError: not a folder, or no (or a malformed) ``run.json``.
    """
    from bench.evaluation import run_folder

    path = Path(folder)
    data = run_folder.read(path) if path.is_dir() else None
    if data is None:
        raise UserError(f"{path}: expected the out_dir of a bench run (a folder with {run_folder.RUN_FILE})")
    try:
        return build({**data["config"], "out_dir": str(path)})
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"{path / run_folder.RUN_FILE}: config does not build ({err})") from err


def config_digest(cfg: BenchConfig) -> str:
    """Digest of what a run computes: its config without the keys that say where files go."""
    return stable_hash({k: v for k, v in cfg.to_dict().items() if k not in WHERE_KEYS})


def weights_digest(record: Mapping[str, Any]) -> str | None:
    """Digest of the weight digests an image record names (``weights``, ``provenance.weights``,
    ``provenance.released_weights.sha256``); None when it names none."""
    prov = record.get("provenance") or {}
    found = {k: v for k, v in (("weights", record.get("weights") or prov.get("weights")),
                               ("released", (prov.get("released_weights") or {}).get("sha256"))) if v}
    return stable_hash(found) if found else None


def coarse_name(value: Any) -> str | None:
    """The coarse source a record's ``coarse_source`` names when it is a map given with the data; None
    for the harness's own backbone pass (``backbone``, or records written before coarse sources)."""
    if value in (None, "", BACKBONE_SOURCE):
        return None
    if isinstance(value, Mapping):
        return str(value.get("name") or value.get("source") or json.dumps(dict(value), sort_keys=True))
    return str(value)


def parse_label(label: str) -> tuple[str, str, str | None]:
    """``"magnet@128x64"`` -> ``("magnet", "128x64", None)``; ``"segfix@128x64/psp"`` -> ``(..., "psp")``."""
    method, _, rest = label.rpartition("@")
    size, _, source = rest.partition("/")
    return method, size, source or None


def unit_rows(cfg: BenchConfig, info: Any, result: Any, variants: Sequence[str],
              coarse: str | None = None) -> list[dict[str, Any]]:
    """The rows of one unit (a :class:`bench.report.table_model.UnitResult`): one per mIoU variant."""
    from bench.report.score import time_memory
    from bench.report.table_notes import excluded_classes

    first: Mapping[str, Any] = next(iter(result.images.values()), {})
    prov = first.get("provenance") or {}
    ok = result.status == "ok" and result.cm is not None
    iou = result.iou if result.iou else [float("nan")] * len(info.class_names)
    lines = str(result.message or "").strip().splitlines()
    base = {"dataset": cfg.dataset, "split": cfg.split, "method": result.method, "display": result.display,
            "input_size": result.size, "coarse": coarse or coarse_name(first.get("coarse_source")),
            "status": result.status,
            "message": lines[-1] if lines and result.status != "ok" else None,
            "mba": _num(result.mba), "biou": _num(getattr(result, "biou", None)),
            "n_images": result.n_images, "n_expected": result.n_total,
            **time_memory(result), "git_sha": prov.get("git_sha"), "git_dirty": prov.get("git_dirty"),
            "torch": (prov.get("versions") or {}).get("torch"), "device": prov.get("device"),
            "device_name": prov.get("device_name"), "threads": prov.get("threads"),
            "fingerprint": prov.get("fingerprint"), "weights_digest": weights_digest(first) if first else None,
            "config_digest": config_digest(cfg), "unit_key": first.get("unit_key"),
            **{f"iou_{name}": _num(v) for name, v in zip(info.class_names, iou)}}
    excluded = excluded_classes(cfg, info)
    return [{**base, "variant": v, "miou": _num(metric_variant(v, result.cm, cfg.absent, excluded)) if ok else None}
            for v in variants]


def run_units(cfg: BenchConfig, recs: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """``[(label, unit_key)]`` of a run folder in the config's order: ``run.json``'s units (a coarse source
    given with the data included, ``method@WxH/source``), else the latest key recorded per unit."""
    from bench.core.config import format_size
    from bench.evaluation import run_folder

    stored = dict((run_folder.read(cfg.out_path) or {}).get("units") or {})
    pairs = list(stored.items()) or [(f"{m}@{s}", k) for (m, s), k in run_folder.latest_keys(recs).items()]
    order = [f"{m}@{format_size(s)}" for m, s in cfg.units()]
    return sorted(pairs, key=lambda p: (order.index(p[0].split("/")[0]) if p[0].split("/")[0] in order
                                        else len(order), p[0]))


def run_rows(folder: str | Path) -> list[dict[str, Any]]:
    """Every row of one run folder, in the config's unit order (columns in :func:`ordered`'s order)."""
    from bench.data import dataset_info
    from bench.evaluation import records, run_folder
    from bench.report.table_model import aggregate
    from bench.report.table_notes import excluded_classes, metric_columns

    cfg = run_config(folder)
    info = dataset_info(cfg)
    variants = list(dict.fromkeys(["miou", *metric_columns(cfg, info)]))
    recs = run_folder.restrict(records.load(cfg.out_path), run_folder.image_ids(cfg))
    names = {r["unit_key"]: r["display_name"] for r in recs if r.get("display_name") and r.get("unit_key")}
    excluded = excluded_classes(cfg, info)
    rows = []
    for label, key in run_units(cfg, recs):
        method, size, source = parse_label(label)
        # the tables' own aggregation (bench.report.results.collect does the same per (method, size))
        result = aggregate(recs, key, method, size, info, cfg.absent, excluded, names.get(key, method))
        rows.extend(unit_rows(cfg, info, result, variants, source))
    return [ordered(r) for r in rows]


def ordered(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with every fixed column (null where missing) in :data:`COLUMNS` order, then ``iou_<class>``."""
    return {**{k: row.get(k) for k in COLUMNS}, **{k: v for k, v in row.items() if k not in COLUMNS}}


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fixed columns, then every ``iou_<class>`` of any row (runs of several datasets), first seen first."""
    extra = dict.fromkeys(k for r in rows for k in r if k not in COLUMNS)
    return [*COLUMNS, *extra]


# --- writing ------------------------------------------------------------------------------------------------------

def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV with a header line; null is an empty cell, booleans ``true``/``false``."""
    out = io.StringIO()
    names = columns(rows)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else str(r[k]).lower() if isinstance(r.get(k), bool) else r[k])
                         for k in names})
    return out.getvalue()


def to_document(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The versioned JSON document (see the module docstring)."""
    from bench import __version__

    names = columns(rows)
    return {"schema": SCHEMA, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "generator": f"magnet-bench {__version__}", "rows": [{k: r.get(k) for k in names} for r in rows]}


def _arrow_schema(names: Sequence[str]) -> Any:
    import pyarrow as pa

    types = {"string": pa.string(), "number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}
    return pa.schema([(n, types[COLUMNS.get(n, "number")]) for n in names])


def write(rows: Sequence[Mapping[str, Any]], path: str | Path, fmt: str) -> Path:
    """Write ``rows`` to ``path`` as ``fmt`` (one of :data:`FORMATS`).

    Raises:
        UserError: an unknown format, or parquet without pyarrow installed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        path.write_text(to_csv(rows))
    elif fmt == "json":
        path.write_text(json.dumps(to_document(rows), indent=1) + "\n")
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("--format parquet needs pyarrow: pip install pyarrow") from None
        names = columns(rows)
        table = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows], schema=_arrow_schema(names))
        pq.write_table(table, path)
    else:
        raise UserError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    return path


def default_name(rows: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """timm's convention, the environment in the name: ``results-<datasets>-<split>-<torch>-<device>.<fmt>``."""
    def part(key: str) -> str:
        values = list(dict.fromkeys(str(r.get(key) or "unknown") for r in rows)) or ["none"]
        text = "+".join(values) if len(values) <= 3 else f"{len(values)}{key}s"
        return "".join(c if c.isalnum() or c in ".+_" else "_" for c in text)

    return f"results-{part('dataset')}-{part('split')}-pt{part('torch')}-{part('device')}.{fmt}"


# --- reading ------------------------------------------------------------------------------------------------------

def _from_score_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 0 (``bench score --format json`` before this format) -> version 1: one row per unit and variant."""
    rows: list[dict[str, Any]] = []
    for unit in doc.get("units") or []:
        variants = [v for v in MIOU_VARIANTS if v in unit and (v == "miou" or not v.startswith("iou_"))] or ["miou"]
        base = {"dataset": doc.get("dataset"), "split": doc.get("split"), "method": unit.get("method"),
                "display": unit.get("display"), "input_size": unit.get("size"), "status": unit.get("status"),
                "mba": unit.get("mba"), "n_images": unit.get("n_images"), "n_expected": unit.get("n_expected"),
                **{k: unit.get(k) for k in ("time_median_ms", "time_iqr_ms", "time_mean_ms", "memory_mib",
                                            "mem_method")},
                **{k: v for k, v in unit.items() if k.startswith("iou_") and k not in MIOU_VARIANTS}}
        rows.extend(ordered({**base, "variant": v, "miou": unit.get(v)}) for v in variants)
    return {"schema": SCHEMA, "version": 1, "created": None, "generator": "bench score (upgraded from version 0)",
            "rows": rows}


# version -> the function that turns a document of that version into one of the next
UPGRADES: dict[int, Callable[[Mapping[str, Any]], dict[str, Any]]] = {0: _from_score_json}


def version_of(doc: Mapping[str, Any]) -> int:
    """The version of a results document: its ``version``, 0 for ``bench score``'s JSON.

    Raises:
        ValueError: neither.
    """
    if doc.get("schema") == SCHEMA and isinstance(doc.get("version"), int):
        return int(doc["version"])
    if "schema" not in doc and isinstance(doc.get("units"), list):
        return 0
    raise ValueError(f"not a results document: expected schema {SCHEMA!r} with a version, or the JSON of "
                     f"bench score (with 'units'); got keys {sorted(doc)[:8]}")


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document at the current :data:`VERSION`, through :data:`UPGRADES`.

    Raises:
        ValueError: a version newer than this code, or one with no upgrade.
    """
    version = version_of(doc)
    if version > VERSION:
        raise ValueError(f"results version {version} is newer than this magnet-bench's ({VERSION}): upgrade it")
    out = dict(doc)
    while version < VERSION:
        if version not in UPGRADES:
            raise ValueError(f"no upgrade from results version {version}")
        out = UPGRADES[version](out)
        version = version_of(out)
    return out


def schema() -> dict[str, Any]:
    """The JSON Schema of the current version (``bench/report/schemas/results-v1.json``)."""
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return data


def validate(doc: Mapping[str, Any]) -> None:
    """Check a current-version document against :func:`schema` (with ``jsonschema`` where installed,
    else its required keys and each row's column types).

    Raises:
        ValueError: the first violation, with its place.
    """
    try:
        import jsonschema
    except ImportError:
        _validate_light(doc)
        return
    try:
        jsonschema.validate(dict(doc), schema())
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        raise ValueError(f"results document invalid at {where}: {err.message}") from None


_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "integer": (int,),
                                          "boolean": (bool,)}


def _validate_light(doc: Mapping[str, Any]) -> None:
    for key in ("schema", "version", "rows"):
        if key not in doc:
            raise ValueError(f"results document invalid at (top): {key!r} is a required property")
    for i, row in enumerate(doc["rows"]):
        for key, value in row.items():
            kind = COLUMNS.get(key, "number" if key.startswith("iou_") else "")
            if not kind:
                raise ValueError(f"results document invalid at rows/{i}: unknown column {key!r}")
            ok = value is None or (isinstance(value, _PY_TYPES[kind])
                                   and (kind == "boolean" or not isinstance(value, bool)))
            if not ok:
                raise ValueError(f"results document invalid at rows/{i}/{key}: {value!r} is not a {kind}")


def read(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an exported file (csv, parquet or json: by suffix), typed as :data:`COLUMNS` says.

    JSON of any known version is upgraded (:func:`upgrade`) and validated (:func:`validate`).

    Raises:
        ValueError: a malformed or invalid file.
    """
    path = Path(path)
    if path.suffix == ".json":
        doc = upgrade(json.loads(path.read_text()))
        validate(doc)
        return [dict(r) for r in doc["rows"]]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [dict(r) for r in pq.read_table(path).to_pylist()]
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return [_typed(r) for r in csv.DictReader(fh)]
    raise ValueError(f"{path}: expected a .csv, .parquet or .json file")


def _typed(row: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in row.items():
        kind = COLUMNS.get(key, "number")
        if text == "":
            out[key] = None
        elif kind == "number":
            out[key] = float(text)
        elif kind == "integer":
            out[key] = int(text)
        elif kind == "boolean":
            out[key] = text == "true"
        else:
            out[key] = text
    return out


def export(folders: Sequence[str | Path], out_dir: str | Path, fmt: str, name: str | None = None) -> Path:
    """Rows of every run folder in ``folders``, written to ``out_dir/<name>`` (default :func:`default_name`)."""
    rows = [r for f in folders for r in run_rows(f)]
    if not rows:
        raise UserError(f"no unit in {', '.join(map(str, folders))}: nothing to export")
    return write(rows, Path(out_dir) / (name or default_name(rows, fmt)), fmt)
