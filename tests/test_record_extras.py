"""A method's ``record_extras`` reach its image records and the tables' notes (SegRefiner's ``samples`` spread)."""

import numpy as np

from bench.core.config import BenchConfig
from bench.core.data_types import Sample
from bench.data import dataset_info
from bench.report.table_model import UnitResult
from bench.report.table_notes import sampling_notes


class _Stub:
    """The least a unit's method must be for ``_image_record``: a class with a version, a config, a name."""

    version = 1
    display_name = "Stub"

    def __init__(self, extras: dict) -> None:
        self.cfg = None
        self._extras = extras

    def record_extras(self) -> dict:
        return self._extras


def _record(extras: dict) -> dict:
    from bench.pipeline.runner import _image_record

    cfg = BenchConfig()
    info = dataset_info(cfg)
    label = np.zeros((8, 8), np.uint8)
    sample = Sample("img0", np.zeros((8, 8, 3), np.uint8), label)
    return _image_record(cfg, "k", "stub", _Stub(extras), (8, 8), "backbone", sample, label.astype(np.int64), info,
                         {"time_ms": 1.0}, {}, {}, 1)


def test_extras_reach_the_record_and_an_empty_hook_adds_nothing() -> None:
    assert _record({"samples": 3, "seed_disagreement_mean": 0.1, "seed_disagreement_std": 0.0})["extras"]["samples"] == 3
    assert "extras" not in _record({})  # the default path's records stay as they were


def _unit(spreads: list[float]) -> UnitResult:
    images = {f"i{k}": {"extras": {"samples": 4, "seed_disagreement_mean": d, "seed_disagreement_std": 0.0}}
              for k, d in enumerate(spreads)}
    return UnitResult("segrefiner", "SegRefiner", "128x64", len(spreads), "ok", images=images)


def test_sampling_note_reports_percent_mean_and_std_over_images() -> None:
    (line,) = sampling_notes([_unit([0.01, 0.03]), UnitResult("downsample", "Downsample", "128x64", 2, "ok")])
    assert line.startswith("SegRefiner @ 128x64: 4 seeds averaged")
    assert "2.00 ± 1.00% of the pixels (over 2 images)" in line  # mean 2 %, population std 1 %


def test_segrefiner_reports_its_spread_only_after_several_seeds() -> None:
    from baselines.segrefiner.method import SegRefiner

    m = SegRefiner.__new__(SegRefiner)  # no weights needed: the hook reads two attributes
    m.cfg = SegRefiner.Config(samples=3)
    m.last_spread = None
    assert m.record_extras() == {}
    m.last_spread = (0.02, 0.005)
    assert m.record_extras() == {"samples": 3, "seed_disagreement_mean": 0.02, "seed_disagreement_std": 0.005}
