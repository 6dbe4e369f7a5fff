"""Plots from fabricated UnitResults; the run reports a figure failure instead of hiding it."""

from __future__ import annotations

import cv2
import pytest

from bench.cli import run as cli_run
from bench.core.config import build
from bench.report.plots import place_labels, plot_accuracy_vs_cost, plot_size_sweep, render_plots, size_sweep_units
from bench.report.table_model import UnitResult


def _unit(method, size, miou, mba, ms, mib, status="ok"):
    n = 6 if status == "ok" else 0
    return UnitResult(method, method.title(), size, n, status, miou=miou, mba=mba,
                      time={"median": ms, "iqr": ms / 10, "mean": ms, "n": n}, memory=mib, mem_method="rss_hwm_reset")


@pytest.fixture
def results():
    units = [_unit("downsample", "128x64", 0.37, 0.46, 105, 113), _unit("downsample", "256x128", 0.44, 0.51, 116, 111),
             _unit("downsample", "512x256", 0.47, 0.56, 137, 132), _unit("patching", "128x64", 0.43, 0.61, 308, 210),
             _unit("magnet", "128x64", 0.40, 0.52, 2297, 171), _unit("densecrf", "128x64", 0, 0, 0, 0, "unavailable")]
    return {(u.method, u.size): u for u in units}


def _cfg(tmp_path):
    return build({"methods": ["downsample", "patching", "densecrf", "magnet"], "input_size": "128x64",
                  "table1_sizes": ["256x128", "512x256"], "tables_dir": str(tmp_path / "tables")})


def _assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 5  # something was drawn


@pytest.mark.parametrize("cost", ["time", "memory"])
def test_accuracy_plots_write_pngs(tmp_path, results, cost):
    _assert_png(plot_accuracy_vs_cost(results, cost, tmp_path / f"{cost}.png"))


def test_nothing_to_plot_gives_none(tmp_path, results):
    failed = {k: v for k, v in results.items() if v.status != "ok"}
    assert plot_accuracy_vs_cost(failed, "time", tmp_path / "t.png") is None and not (tmp_path / "t.png").exists()
    with pytest.raises(ValueError, match="'time' or 'memory'"):
        plot_accuracy_vs_cost(results, "energy", tmp_path / "e.png")


def test_size_sweep_lines_follow_table1(tmp_path, results):
    cfg = _cfg(tmp_path)
    lines = size_sweep_units(cfg, results)
    assert list(lines) == ["downsample", "magnet"]
    assert [u.size for u in lines["downsample"]] == ["128x64", "256x128", "512x256"]
    _assert_png(plot_size_sweep(cfg, results, tmp_path / "sizes.png"))


def test_render_plots_writes_three_files_and_names_the_left_out(tmp_path, results):
    files, notes = render_plots(_cfg(tmp_path), results)
    assert sorted(p.name for p in files) == ["accuracy_vs_memory.png", "accuracy_vs_time.png", "input_size.png"]
    assert all(p.parent == tmp_path / "tables" / "plots" for p in files)
    for path in files:
        _assert_png(path)
    assert notes == ["plots: densecrf@128x64 left out (unavailable)"]


def test_labels_of_coincident_points_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([1, 1, 5], [2, 2, 3])
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    anns = place_labels(ax, [(1, 2, "first label"), (1, 2, "second label"), (5, 3, "third")])
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, renderer) for a in anns]  # the text alone, without leader lines
    assert not boxes[0].overlaps(boxes[1])
    assert anns[1].get_position() != anns[0].get_position()
    plt.close(fig)


def test_run_reports_a_figure_failure(tmp_path, monkeypatch, capsys):
    import bench.report.figures

    def broken(cfg, results=None):
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr(bench.report.figures, "render_figures", broken)
    assert cli_run.render_figures_or_report(build({"tables_dir": str(tmp_path)})) == 1
    err = capsys.readouterr().err
    assert "FIGURES FAILED" in err and "matplotlib exploded" in err


def test_a_unit_without_a_memory_figure_is_left_off_that_plot(tmp_path, results):
    results[("magnet", "128x64")].memory = float("nan")
    _assert_png(plot_accuracy_vs_cost(results, "memory", tmp_path / "m.png"))
