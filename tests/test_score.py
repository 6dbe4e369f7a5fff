"""``bench score``: aggregates recomputed from records, on image subsets, hand-checked."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bench.core.config import build
from bench.core.interface import DatasetInfo
from bench.report.score import render, score_units

INFO = DatasetInfo("toy", ("road", "pole", "sky"), 255, ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
KEYS = {("downsample", (64, 32)): "kd", ("magnet", (64, 32)): "km", ("downsample", (128, 64)): "kd2"}

# downsample: two images; class 2 (sky) never occurs; img1 has no boundary (mba None)
CM_D = {"img0": [[3, 1, 0], [0, 2, 0], [0, 0, 0]], "img1": [[1, 0, 0], [1, 1, 0], [0, 0, 0]]}
MBA_D = {"img0": 0.5, "img1": None}


def _rec(key, image_id, cm, mba, display):
    return {"type": "image", "unit_key": key, "image_id": image_id, "status": "ok", "cm": cm, "mba": mba,
            "time_ms": 1.0, "display_name": display}


def _records():
    recs = [_rec("kd", i, CM_D[i], MBA_D[i], "Downsample") for i in ("img0", "img1")]
    recs += [_rec("km", i, [[4, 0, 0], [0, 2, 0], [0, 0, 0]], 0.8, "MagNet") for i in ("img1", "img0")]
    # a superseded record of img0 must not count: the latest one per image wins
    recs.insert(0, _rec("kd", "img0", [[0, 4, 0], [2, 0, 0], [0, 0, 0]], 0.0, "Downsample"))
    recs.append({"type": "unit", "unit_key": "kd2", "status": "oom", "message": "out of memory",
                 "display_name": "Downsample"})
    return recs


def _cfg(**kw):
    return build({"dataset": "synthetic", "input_size": "64x32", **kw})


def test_hand_computed_miou_all_images():
    res = score_units(_cfg(), INFO, KEYS, _records(), methods=["downsample"])
    down = res[0]
    # summed cm [[4, 1, 0], [1, 3, 0], [0, 0, 0]]: road 4 / (5 + 5 - 4) = 2/3, pole 3 / (4 + 4 - 3) = 3/5,
    # sky absent -> left out under "nan": mIoU = (2/3 + 3/5) / 2 = 19/30
    assert down.n_images == 2 and down.status == "ok"
    assert down.iou[0] == pytest.approx(2 / 3) and down.iou[1] == pytest.approx(3 / 5)
    assert down.miou == pytest.approx(19 / 30)
    assert down.mba == pytest.approx(0.5) and down.mba_skipped == 1  # img1 has no boundary
    assert [(r.method, r.size, r.status) for r in res] == [("downsample", "64x32", "ok"), ("downsample", "128x64", "oom")]


def test_absent_zero_counts_the_absent_class():
    down = score_units(_cfg(absent="zero"), INFO, KEYS, _records(), methods=["downsample"])[0]
    assert down.miou == pytest.approx((2 / 3 + 3 / 5 + 0) / 3)


def test_image_subset():
    res = score_units(_cfg(), INFO, KEYS, _records(), image_ids=["img0"])
    down, magnet = res[0], res[1]
    # img0 alone: road 3 / (4 + 3 - 3) = 3/4, pole 2 / (2 + 3 - 2) = 2/3
    assert down.n_images == 1 and down.miou == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert down.mba == pytest.approx(0.5)
    assert magnet.n_images == 1 and magnet.miou == pytest.approx(1.0)
    assert res[2].status == "oom"  # the failed unit keeps its status


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['magnet_fast'\].*'downsample', 'magnet'"):
        score_units(_cfg(), INFO, KEYS, _records(), methods=["magnet_fast", "magnet"])


def test_unknown_image_id_is_named():
    with pytest.raises(ValueError, match=r"\['img9'\] not found.*'img0', 'img1'"):
        score_units(_cfg(), INFO, KEYS, _records(), image_ids=["img0", "img9"])


def test_formats():
    cfg = _cfg()
    res = score_units(cfg, INFO, KEYS, _records(), image_ids=["img0", "img1"])
    md = render(cfg, INFO, res, "md", ["img0", "img1"])
    assert "| Downsample | 64x32 | 2 | 63.33 | 50.00 | 66.67 | 60.00 | – |" in md
    assert "| Downsample | 128x64 | 0 | OOM |" in md
    assert "image subset [img0, img1]" in md and "absent classes -> nan" in md
    rows = list(csv.DictReader(io.StringIO(render(cfg, INFO, res, "csv"))))
    assert rows[0]["method"] == "downsample" and float(rows[0]["miou"]) == pytest.approx(19 / 30)
    assert rows[0]["iou_sky"] == "" and rows[2]["status"] == "oom"
    data = json.loads(render(cfg, INFO, res, "json", ["img0", "img1"]))
    assert data["images"] == ["img0", "img1"] and data["absent"] == "nan"
    assert data["units"][1]["miou"] == pytest.approx(1.0) and data["units"][0]["iou_sky"] is None
    with pytest.raises(ValueError, match="format"):
        render(cfg, INFO, res, "xlsx")


def test_cli_scores_records_on_disk(tmp_path, capsys):
    from bench.evaluation import records
    from bench.cli.main import main
    from bench.core.config import load, parse_overrides
    from bench.pipeline.unit import unit_keys

    # keys as the CLI computes them; checkpoint_dir in tmp_path keeps them off results/
    overrides = [f"out_dir={tmp_path / 'runs'}", f"checkpoint_dir={tmp_path / 'ckpt'}",
                 "methods=[downsample,patching]", "table1_sizes=[]"]
    cfg = load("synthetic", parse_overrides(overrides))
    keys = unit_keys(cfg)
    down = keys[("downsample", cfg.input_size)]
    diag = [[10 if i == j else 0 for j in range(19)] for i in range(19)]
    for image_id, mba in (("val_0000", 0.4), ("val_0001", 0.6)):
        records.append(tmp_path / "runs" / "records.jsonl",
                       {**_rec(down, image_id, diag, mba, "Downsample"), "method": "downsample", "size": "128x64"})

    assert main(["score", "synthetic", *overrides, "--images", "val_0001", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["units"][0]["n_images"] == 1 and data["units"][0]["miou"] == pytest.approx(1.0)
    assert data["units"][0]["mba"] == pytest.approx(0.6) and data["units"][1]["status"] == "not run"

    assert main(["score", "synthetic", *overrides, "--methods", "downsample,segfix"]) == 2
    assert "unknown method(s) ['segfix']" in capsys.readouterr().err


def test_named_variants_in_every_format():
    # Inria's two "mIoU"s on a two-class toy: the two-class mean and the building IoU alone
    info = DatasetInfo("inria", ("background", "building"), None, ((0, 0, 0), (255, 255, 255)))
    rec = {"type": "image", "unit_key": "k", "image_id": "t0", "status": "ok", "cm": [[90, 10], [5, 15]], "mba": 0.5,
           "time_ms": 1.0, "display_name": "Downsample"}
    cfg = build({"dataset": "inria", "input_size": "64x32", "methods": ["downsample"],
                 "metric_columns": ["miou_2class", "iou_building"]})
    res = score_units(cfg, info, {("downsample", (64, 32)): "k"}, [rec])
    two = (90 / 105 + 15 / 30) / 2
    md = render(cfg, info, res, "md")
    assert f"| Downsample | 64x32 | 1 | {100 * two:.2f} | {100 * two:.2f} | 50.00 | 50.00 |" in md
    assert "IoU building: the IoU of class 1 'building' alone" in md
    unit = json.loads(render(cfg, info, res, "json"))["units"][0]
    assert unit["miou_2class"] == pytest.approx(two) and unit["iou_building"] == pytest.approx(0.5)
    assert "miou_2class,iou_building,mba" in render(cfg, info, res, "csv").splitlines()[0]
