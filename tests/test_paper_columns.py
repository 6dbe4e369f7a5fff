"""Issue 11 obs. 8: the Paper and Δ columns appear only for values measured with the run's backbone."""

from __future__ import annotations

from bench.core.config import build, load
from bench.report.tables import build_tables, collect
from tests.test_tables import INFO, _records

PAPER = {"downsample@64x32": {"miou": 50.0, "backbone": "hrnet18_small_v2_ocr"},
         "magnet@64x32": {"miou": 70.0, "backbone": "hrnet18_small_v2_ocr"}}


def _tables(backbone):
    recs, keys = _records()
    cfg = build({"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"], "backbone": backbone,
                 "methods": ["downsample", "patching", "densecrf", "magnet"], "paper": PAPER, "bootstrap": 0})
    return build_tables(cfg, INFO, collect(cfg, INFO, keys, recs))


def test_paper_values_of_another_backbone_are_left_out_and_said_so():
    t1, _, t3 = _tables("light")
    for t in (t1, t3):
        assert "Paper" not in t.header and "Δ" not in t.header
        assert ("Paper values not shown: 2 were measured with backbone hrnet18_small_v2_ocr, this run uses light"
                in t.text)


def test_paper_values_of_the_same_backbone_are_compared():
    t1, _, t3 = _tables("hrnet18_small_v2_ocr")
    assert t3.header[2:4] == ["Paper", "Δ"] and "Paper values not shown" not in t3.text
    assert t3.rows[0][2:4] == ["50.00", "+6.95"]  # Downsample: 56.95 mIoU on the toy records


def test_shipped_paper_values_name_their_backbone():
    for dataset in ("cityscapes", "deepglobe", "inria"):
        cfg = load(dataset)
        assert cfg.paper and all(ref.get("backbone") == cfg.backbone for ref in cfg.paper.values()), dataset
