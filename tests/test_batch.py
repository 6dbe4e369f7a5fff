"""Batch settings (issue 21, item 9): every batching method declares its option, batch 1 by default, the
labels do not depend on it, and every table with time or memory names the setting its rows ran at."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from bench.core.batch import batch_option, batch_overrides, batch_setting
from bench.core.config import build
from bench.core.interface import DatasetInfo
from bench.core.registry import resolve
from bench.report.table_notes import batch_note
from bench.report.tables import build_all_tables, collect

# what each method batches, as its code does it (not read from the declarations under test)
BATCHING = {"patching": "batch_size", "magnet": "batch_size", "magnet_fast": "batch_size",
            "magnet_fast_paper": "batch_size", "glnet": "sub_batch_size", "cascadepsp": "mask_batch_size"}
ONE_AT_A_TIME = ("downsample", "densecrf", "guided_filter", "dgf", "pointrend", "segfix")


@pytest.mark.parametrize("name", sorted(BATCHING))
def test_each_batching_method_declares_its_option_at_batch_one(name):
    cls = resolve(name)
    assert batch_option(cls) == BATCHING[name]
    # the default is what the tables measure: 1, as the released MagNet runs its patches
    assert batch_setting(cls, cls.Config()) == 1
    # a declaration is a ClassVar, not a field: the unit key (dataclasses.asdict) does not see it
    assert "batch_option" not in dataclasses.asdict(cls.Config())


@pytest.mark.parametrize("name", ONE_AT_A_TIME)
def test_a_method_that_batches_nothing_declares_nothing(name):
    cls = resolve(name)
    assert batch_option(cls) is None and batch_setting(cls, cls.Config()) is None


def test_the_method_configs_keep_batch_one():
    # configs/methods/*.yaml sit over the dataclass defaults: a yaml back at 2 or 6 is caught here
    from bench.pipeline.configure import load
    from bench.pipeline.unit import method_config

    for dataset in ("synthetic", "cityscapes", "deepglobe", "inria"):
        cfg = load(dataset)
        for name in cfg.methods:
            cls = resolve(name)
            assert batch_setting(cls, method_config(cfg, cls, name)) in (1, None), (dataset, name)


def test_a_bad_declaration_or_value_is_refused():
    @dataclass(frozen=True)
    class Cfg:
        tiles: int = 0
        batch_option: ClassVar[str] = "tile_batch"

    class Plugin:
        name = "plugin"
        Config = Cfg

    with pytest.raises(TypeError, match="tile_batch"):
        batch_option(Plugin)
    Plugin.batch_option = "tiles"  # type: ignore[attr-defined]  # the class may declare it too
    assert batch_option(Plugin) == "tiles"
    with pytest.raises(ValueError, match=r"plugin.tiles must be an int >= 1"):
        batch_setting(Plugin, Cfg())


def test_batch_overrides_set_every_declared_option():
    assert batch_overrides(["downsample", "patching", "glnet", "magnet"], 4) == [
        "patching.batch_size=4", "glnet.sub_batch_size=4", "magnet.batch_size=4"]
    with pytest.raises(ValueError):
        batch_overrides(["patching"], 0)


# --- labels do not depend on the batch ----------------------------------------------------------

def _labels(name, image, **options):
    import bench

    method = bench.create_method(name, **options)
    coarse = None
    if method.uses_coarse:
        from bench.models.coarse import compute_coarse

        coarse = compute_coarse(method.ctx.backbone, image, method.ctx.input_size, method.device)
    return method.refine(image, coarse).numpy()


@pytest.mark.parametrize("name, option, other", [("patching", "batch_size", 16), ("glnet", "sub_batch_size", 6)])
def test_labels_are_bit_identical_at_batch_one_and_larger(name, option, other):
    # the committed reference weights on one synthetic val image: the drift gate's labels at the
    # new default equal those at the old one (Patching 16, GLNet 6)
    from bench.data import create_dataset

    image = create_dataset("synthetic", split="val", n_images=1)[0].image
    one = _labels(name, image, **{option: 1})
    assert np.array_equal(one, _labels(name, image, **{option: other}))


@pytest.mark.slow
@pytest.mark.parametrize("name, option, other, moved", [("magnet", "batch_size", 2, 8),
                                                        ("magnet_fast", "batch_size", 4, 0),
                                                        ("cascadepsp", "mask_batch_size", 8, 0)])
def test_labels_barely_depend_on_the_batch_slow(name, option, other, moved):
    # MagNet's batched backbone rounds differently: 1 of the 2,097,152 pixels of this image moved
    # between batch 1 and 2 (measured 2026-12-07); the bound is the drift gate's pixel floor (8), far
    # below what a batch-order bug moves (whole patches). The drift gate's own images: 0 pixels.
    from bench.data import create_dataset

    image = create_dataset("synthetic", split="val", n_images=1)[0].image
    assert int((_labels(name, image, **{option: 1}) != _labels(name, image, **{option: other})).sum()) <= moved


# --- the tables name the setting ----------------------------------------------------------------

INFO = DatasetInfo("toy", ("a", "b"), 255, ((0, 0, 0), (1, 1, 1)))


def _records(batches):
    """Two rows (Downsample, Patching) of one image each; Patching recorded at ``batches['patching']``."""
    recs = []
    for key, (method, display) in enumerate((("downsample", "Downsample"), ("patching", "Patching"))):
        rec = {"type": "image", "unit_key": f"k{key}", "image_id": "i0", "status": "ok", "cm": [[5, 1], [1, 5]],
               "mba": 0.5, "time_ms": 10.0, "mem_peak_delta_mib": 3.0, "mem_method": "rss_hwm_reset",
               "provenance": {"device_name": "Test CPU", "threads": 2}, "display_name": display}
        if method in batches:
            rec["batch"] = batches[method]
        recs.append(rec)
    keys = {("downsample", (64, 32)): "k0", ("patching", (64, 32)): "k1"}
    return recs, keys


def _tables(batches):
    cfg = build({"dataset": "synthetic", "input_size": "64x32", "methods": ["downsample", "patching"]})
    recs, keys = _records(batches)
    return build_all_tables(cfg, INFO, collect(cfg, INFO, keys, recs))


def test_every_table_with_time_or_memory_names_the_batch():
    tables = _tables({"downsample": None, "patching": 1})
    for t in tables:
        if any(h.startswith(("Time", "Mem")) for h in t.header):
            head = "Batch: every row with a batch option runs 1 item(s)" if "patching" in str(t.rows) or \
                any(r[0] == "Patching" for r in t.rows) else "Batch: no row batches work"
            assert head in t.text and "no batch option (nothing to batch): Downsample" in t.text, t.name


def test_rows_at_different_settings_are_said_to_compare_settings():
    t3 = _tables({"downsample": None, "patching": 16})[2]
    assert "Batch: every row with a batch option runs 16 item(s)" in t3.text  # one batching row: its setting
    from bench.report.table_model import UnitResult

    def row(display, batch):
        return UnitResult(display.lower(), display, "64x32", 1, "ok", images={"i": {"batch": batch}})

    mixed = batch_note([row("Patching", 1), row("MagNet", 2)])
    assert "items per forward: MagNet 2, Patching 1" in mixed and "compare batch settings as well as methods" in mixed
    assert "every row" not in mixed
    # records from before the setting was recorded: said, never guessed
    assert "not recorded" in batch_note([UnitResult("patching", "Patching", "64x32", 1, "ok", images={"i": {}})])


def test_the_batch_sweep_runs_each_setting_in_its_own_folder_and_tables_them(monkeypatch):
    from bench.report import batch_table as bt
    from bench.report import tables
    from bench.report.table_model import UnitResult

    seen = {}

    def fake_results(cfg):
        b = int(cfg.out_dir.rsplit("-batch", 1)[1])
        seen[b] = (cfg.method_options.get("patching", {}).get("batch_size"),
                   cfg.method_options.get("glnet", {}).get("sub_batch_size"))
        mem = {1: 100.0, 4: 250.0}[b]  # memory grows with the batch, mIoU does not move
        return {("patching", "128x64"): UnitResult("patching", "Patching", "128x64", 2, "ok", miou=0.5,
                                                   time={"median": 2000.0 / b, "iqr": 0.0, "n": 2}, memory=mem,
                                                   device="Test CPU", threads=2)}

    monkeypatch.setattr(tables, "load_results", fake_results)
    t = bt.batch_table("synthetic", [4, 1], {"out_dir": "/tmp/x", "methods": ["downsample", "patching", "glnet"]})
    assert seen == {1: (1, 1), 4: (4, 4)}  # each run sets every declared option to its setting
    assert t.rows == [["Patching", "1", "50.00", "2.000", "100"], ["Patching", "4", "50.00", "0.500", "250"],
                      ["glnet", "1", "–", "–", "not run"], ["glnet", "4", "–", "–", "not run"]]
    assert "batch setting" in t.caption and "supplement's Table 1" in t.caption and "Test CPU, 2 thread(s)" in t.text
