"""The public API (docs/api/index.md): lazy names, the metrics as pure functions, and the documented ten-line
example run as it stands, its tables equal to ``bench run`` + ``bench table``'s on the same inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bench
from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api" / "index.md"


def example() -> str:
    """The Python block after the ``api-example`` marker of docs/api/index.md."""
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"{DOC}: no ```python block after <!-- api-example -->"
    return match.group(1)


def test_the_example_has_at_most_ten_lines_of_code():
    code = [line for line in example().splitlines() if line.strip()]
    assert len(code) <= 10, code


def test_import_bench_loads_neither_torch_nor_opencv():
    probe = "import sys, bench; print(sorted(m for m in ('torch', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_to_the_harness_own_function():
    from bench.evaluation import boundary, metrics
    from bench.pipeline import unit
    from bench.report import evaluate

    for name in bench.__all__:
        assert getattr(bench, name) is not None, name
    assert bench.mean_iou is metrics.mean_iou and bench.boundary_accuracy is metrics.boundary_accuracy
    assert bench.boundary_iou is boundary.boundary_iou and bench.create_method is unit.create_method
    assert bench.evaluate is evaluate.evaluate
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bench.nope  # noqa: B018


def test_the_metric_functions_on_a_hand_checked_pair():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 0, 0, 1], [0, 0, 1, 1]])
    cm = bench.confusion_matrix(gt, pred, 2, None)
    assert cm.tolist() == [[4, 0], [1, 3]]  # rows = ground truth
    iou = bench.iou_per_class(cm)
    assert iou.tolist() == pytest.approx([4 / 5, 3 / 4])
    assert bench.mean_iou(iou) == pytest.approx((4 / 5 + 3 / 4) / 2)
    assert bench.metric_variant("miou", cm, "nan", ()) == pytest.approx(bench.mean_iou(iou))


def test_a_lambda_needs_a_name():
    from bench.core.errors import UserError
    from bench.report.evaluate import _wrap

    with pytest.raises(UserError, match="name="):
        _wrap(lambda image, coarse: None, None, 1, None)
    assert _wrap(lambda image, coarse: None, "mine", 3, False).version == 3


@pytest.mark.slow
def test_the_documented_example_resumes_the_cli_run_and_prints_its_tables(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example's relative out_dir goes here
    args = ["synthetic", "methods=[guided_filter]", "limit=2", "threads=1", "out_dir=results/runs/api-example"]
    assert main(["run", *args]) == 0
    capsys.readouterr()
    assert main(["table", *args]) == 0
    cli_table = capsys.readouterr().out
    namespace: dict = {}
    exec(compile(example(), str(DOC), "exec"), namespace)  # noqa: S102 - the documented example, as it stands
    printed = capsys.readouterr().out
    result, r4 = namespace["result"], namespace["r4"]
    # the CLI's records were found under the same unit keys: nothing ran again
    assert set(result.statuses.values()) == {"done"}
    assert result.markdown + "\n" == cli_table
    assert result.markdown == (tmp_path / "results/runs/api-example/tables/tables.md").read_text()
    assert printed.startswith(result.markdown)
    gf = result.results[("guided_filter", "128x64")]
    assert gf.status == "ok" and gf.n_images == 2
    obj = r4.results[("gf_r4", "128x64")]
    assert obj.status == "ok" and obj.n_images == 2 and obj.miou != gf.miou  # radius 4, not 8
    assert printed.rstrip().endswith(repr(bench.mean_iou(bench.iou_per_class(obj.cm))))


@pytest.mark.slow
def test_a_plain_callable_is_timed_recorded_and_resumed(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)

    def nearest(image, coarse):  # the coarse labels, nearest-upsampled to the image
        lab = coarse.labels[None, None].float()
        return torch.nn.functional.interpolate(lab, size=image.shape[:2], mode="nearest")[0, 0].long()

    kw = {"limit": 2, "threads": 1, "out_dir": "runs/callable", "table1_methods": []}
    first = bench.evaluate(nearest, "synthetic", **kw)
    unit = first.results[("nearest", "128x64")]
    assert first.statuses == {("nearest", (128, 64)): "ok"}
    assert unit.n_images == 2 and unit.time["n"] == 2 and unit.time["median"] > 0 and unit.memory == unit.memory
    again = bench.evaluate(nearest, "synthetic", **kw)
    assert again.statuses == {("nearest", (128, 64)): "done"} and again.markdown == first.markdown
    assert bench.evaluate(nearest, "synthetic", version=2, **kw).statuses == {("nearest", (128, 64)): "ok"}
