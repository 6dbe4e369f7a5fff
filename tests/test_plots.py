"""Plots from fabricated UnitResults; the run reports a figure failure instead of hiding it."""

from __future__ import annotations

import cv2
import numpy as np
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


# --- the data each plot draws, read from the matplotlib objects (not from pixels) -------------------

@pytest.fixture
def drawn(monkeypatch):
    """Figures the plot functions finish, kept open (``_save`` would write and close them)."""
    import bench.report.plots as plots

    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield figures
    plots._plt().close("all")


def _points(ax):
    """Every scatter point of an axes as (x, y), in drawing order."""
    return [tuple(map(float, xy)) for coll in ax.collections for xy in coll.get_offsets()]


def _labels(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("cost", ["time", "memory"])
def test_accuracy_panels_draw_miou_left_and_mba_right_against_the_cost(tmp_path, results, drawn, cost):
    plot_accuracy_vs_cost(results, cost, tmp_path / "p.png")
    (fig,) = drawn
    left, right = fig.axes[:2]
    assert left.get_ylabel() == "mIoU (%)" and right.get_ylabel() == "mBA (%)"
    # the fixture's five units that ran (densecrf is unavailable), in its order: x = median ms or
    # MiB, y = 100 * mIoU on the left and 100 * mBA on the right
    x = {"time": [105, 116, 137, 308, 2297], "memory": [113, 111, 132, 210, 171]}[cost]
    np.testing.assert_allclose(_points(left), list(zip(x, [37, 44, 47, 43, 40])))
    np.testing.assert_allclose(_points(right), list(zip(x, [46, 51, 56, 61, 52])))
    ok = [u for u in results.values() if u.status == "ok"]
    if cost == "time":
        assert left.get_xscale() == "log" and left.get_xlabel() == "median time per image (ms, log scale)"
    else:
        assert left.get_xscale() == "linear" and left.get_xlabel() == "peak memory (MiB, resident-set growth)"
    # several input sizes: each point is named with its method and size
    expected = [f"{u.display} {u.size}" for u in ok]
    assert _labels(left) == expected and _labels(right) == expected


def test_time_axis_takes_the_median_not_the_mean(tmp_path, results, drawn):
    unit = results[("patching", "128x64")]
    unit.time = {"median": 300.0, "iqr": 5.0, "mean": 900.0, "n": 6}
    plot_accuracy_vs_cost(results, "time", tmp_path / "p.png")
    xs = [x for x, _ in _points(drawn[0].axes[0])]
    assert 300.0 in xs and 900.0 not in xs


def test_a_partial_unit_is_labelled_partial_on_the_plot(tmp_path, results, drawn):
    unit = results[("magnet", "128x64")]
    unit.expected = 8  # 6 of 8 images
    plot_accuracy_vs_cost(results, "time", tmp_path / "p.png")
    assert "Magnet 128x64 (6 of 8, partial)" in _labels(drawn[0].axes[0])


def test_size_sweep_draws_miou_and_memory_per_method_against_width(tmp_path, results, drawn):
    plot_size_sweep(_cfg(tmp_path), results, tmp_path / "s.png")
    (fig,) = drawn
    left, right = fig.axes[:2]
    assert left.get_ylabel() == "mIoU (%)" and right.get_ylabel() == "peak memory (MiB, resident-set growth)"
    lines = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in left.get_lines()}
    # Downsample at widths 128, 256, 512 with mIoU 37, 44, 47 %; MagNet a single point at 128
    assert lines["Downsample"] == ([128, 256, 512], pytest.approx([37.0, 44.0, 47.0]))
    assert lines["Magnet"] == ([128], pytest.approx([40.0]))
    mem = {ln.get_label(): list(ln.get_ydata()) for ln in right.get_lines()}
    assert mem == {"Downsample": [113, 111, 132], "Magnet": [171]}
    assert left.get_xscale() == "log" and [t.get_text() for t in left.get_xticklabels()] == [
        "128x64", "256x128", "512x256"]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["Downsample", "Magnet"]
