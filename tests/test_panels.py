"""Panels: palette colouring, error-map colours, the crop chooser, drawing, and `bench show`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import TINY_INFO

from bench.cli import main as cli
from bench.core.config import build
from bench.report.panel_crops import (LABEL_PX_AT_VIEW, MAX_COLUMNS, SCREEN_PX, crop_figure, crop_layout,
                                      draw_crop_panel, label_px_at)
from bench.report.panels import (ERROR_COLOURS, IGNORE_COLOUR, MissingPredictions, PanelInput, check_crop, choose_crops,
                          coarse_error_map, colorize, disagreement_score, draw_panel, error_map, parse_crop,
                          render_panels, upscale, window_sums)
from bench.evaluation.predictions import COARSE, prediction_path, save_label_map

G, R, D, W, N = (ERROR_COLOURS[k] for k in ("fixed", "broken", "both_wrong", "both_right", "ignore"))  # N: not scored (ignore)


def test_colorize_uses_the_palette_and_blacks_out_ignore():
    labels = np.array([[0, 1], [3, 255]])
    rgb = colorize(labels, TINY_INFO.palette, 255)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 1].tolist() == [255, 0, 0] and rgb[1, 0].tolist() == [0, 0, 255]
    assert rgb[1, 1].tolist() == list(IGNORE_COLOUR)
    with pytest.raises(ValueError, match=r"\[4\] are outside the palette's 4 classes"):
        colorize(np.array([[4]]), TINY_INFO.palette, 255)
    with pytest.raises(ValueError, match="outside"):
        colorize(np.array([[255]]), TINY_INFO.palette, None)  # 255 is no class when nothing is ignored


def test_error_map_colours_on_a_hand_made_case():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 255, 255],
                   [2, 2, 3, 3]])
    coarse = np.array([[0, 1, 1, 0],
                       [0, 1, 1, 0],
                       [2, 0, 0, 1],
                       [2, 0, 3, 3]])
    pred = np.array([[0, 0, 0, 1],
                     [1, 0, 1, 2],
                     [2, 2, 1, 1],
                     [0, 1, 3, 3]])
    expected = [[W, G, R, G],
                [R, G, W, D],
                [W, G, N, N],
                [R, D, W, W]]
    assert error_map(gt, coarse, pred, 255).tolist() == [[list(c) for c in row] for row in expected]
    assert coarse_error_map(gt, coarse, 255).tolist() == [[list(W), list(D), list(W), list(D)],
                                                          [list(W), list(D), list(W), list(D)],
                                                          [list(W), list(D), list(N), list(N)],
                                                          [list(W), list(D), list(W), list(W)]]


def _maps(shape=(64, 96)):
    gt = np.zeros(shape, np.int64)
    coarse = gt.copy()
    return gt, coarse, coarse.copy(), coarse.copy()


def test_chooser_finds_the_region_of_disagreement():
    gt, coarse, a, b = _maps()
    a[40:52, 60:72] = 1  # 12x12 block where method a disagrees with the others
    score = disagreement_score(gt, [coarse, a, b], 255)
    (x, y, w, h), = choose_crops(score, (16, 16), n=1, stride=2)
    assert (w, h) == (16, 16)
    assert x <= 60 and x + w >= 72 and y <= 40 and y + h >= 52


def test_chooser_favours_thin_structures_and_does_not_overlap():
    gt, coarse, a, b = _maps()
    a[4:16, 4:16] = 1                  # 144 disagreeing pixels on a large class
    gt[40:52, 80], a[40:52, 80] = 3, 3  # a 1-px pole (thin class 3) that only method a finds: 12 pixels
    score = disagreement_score(gt, [coarse, a, b], 255, TINY_INFO.thin_classes, thin_weight=20)
    first, second = choose_crops(score, (16, 16), n=2, stride=2)
    assert first[0] <= 80 < first[0] + 16 and first[1] <= 40 and first[1] + 16 >= 52  # 12 * 21 > 144
    assert second[0] <= 4 and second[0] + 16 >= 16  # then the block, with no overlap
    without = disagreement_score(gt, [coarse, a, b], 255, (), thin_weight=20)
    assert choose_crops(without, (16, 16), n=1, stride=2)[0][0] <= 4  # unweighted, the block wins


def test_ignored_and_unanimous_pixels_score_zero():
    gt, coarse, a, b = _maps((4, 4))
    gt[0, 0] = 255
    a[0, 0] = 2
    coarse[1, 1] = a[1, 1] = b[1, 1] = 3  # all wrong alike: no disagreement
    assert disagreement_score(gt, [coarse, a, b], 255).sum() == 0


def test_window_sums_match_brute_force():
    score = np.random.default_rng(1).random((9, 13))
    sums = window_sums(score, 4, 3)
    assert sums.shape == (7, 10)
    assert np.allclose(sums[2, 5], score[2:5, 5:9].sum()) and np.allclose(sums[6, 9], score[6:9, 9:13].sum())


def test_upscale_is_nearest_neighbour_and_crops_are_checked():
    tile = np.array([[1, 2], [3, 4]], np.uint8)
    assert upscale(tile, 3).tolist() == np.kron(tile, np.ones((3, 3), np.uint8)).tolist()
    assert parse_crop("1,2,3,4") == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="x,y,w,h"):
        parse_crop("1,2,3")
    with pytest.raises(ValueError, match="does not fit in the 96x64 image"):
        check_crop((90, 0, 16, 16), (64, 96))


def test_draw_panel_writes_a_png(tmp_path, tiny_dataset):
    sample = tiny_dataset[0]
    gt = sample.label.astype(np.int64)
    coarse = np.where(gt == 3, 0, gt)
    panel = PanelInput(sample.id, sample.image, gt, coarse, {"A": gt, "B": coarse}, [(0, 0, 16, 16), (32, 16, 16, 16)],
                       TINY_INFO, caption="test")
    path = draw_panel(panel, tmp_path / "p.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > 5 * 300 and image.std() > 10


def _cfg(tmp_path, **extra):
    flat = {"dataset": "synthetic", "data.size": "128x64", "data.n_images": 3, "input_size": "32x16",
            "methods": ["downsample", "patching"], "out_dir": str(tmp_path / "runs"),
            "tables_dir": str(tmp_path / "tables"), "save_predictions": 2}
    flat.update(extra)
    return build(flat)


def _save_fake_maps(cfg, methods, image_ids):
    from bench.data.splits import open_split

    dataset = open_split(cfg, cfg.split)
    by_id = {i: k for k, i in enumerate(dataset.ids())}
    for image_id in image_ids:
        gt = dataset[by_id[image_id]].label.astype(np.int64)
        for k, m in enumerate([COARSE, *methods]):
            save_label_map(prediction_path(cfg.out_path, m, cfg.input_size, image_id), np.where(gt == 255, k, gt))


def test_missing_predictions_are_an_error_that_says_how(tmp_path):
    cfg = _cfg(tmp_path)
    _save_fake_maps(cfg, ["downsample"], ["val_0000", "val_0001"])
    with pytest.raises(MissingPredictions) as err:
        render_panels(cfg)
    text = str(err.value)
    assert str(prediction_path(cfg.out_path, "patching", (32, 16), "val_0001")) in text
    assert "downsample@" not in text and "save_predictions=2" in text and "python -m bench run synthetic" in text
    lenient = render_panels(cfg, strict=False)  # what `bench run` does: leave patching out, say so
    assert [p.name for p in lenient.files] == ["val_0000.crop1.png", "val_0000.crop2.png", "val_0001.crop1.png",
                                               "val_0001.crop2.png"]
    assert any("['patching']" in n and "left out" in n for n in lenient.notes)
    # one given crop, both layouts: the two crop files of before go, so a page never shows a stale crop
    both = render_panels(cfg, ["val_0001"], methods=["downsample"], crop=(0, 0, 32, 32), layout="both")
    assert [p.name for p in both.files] == ["val_0001.crop1.png", "val_0001.png"]
    assert sorted(p.name for p in (cfg.tables_path / "panels").glob("*.png")) == \
        ["val_0000.crop1.png", "val_0000.crop2.png", "val_0001.crop1.png", "val_0001.png"]
    with pytest.raises(ValueError, match="crops, grid, both"):
        render_panels(cfg, layout="mosaic")


def test_show_exits_2_naming_the_missing_maps(tmp_path, capsys):
    code = cli.main(["show", "synthetic", "data.size=128x64", "data.n_images=3", "input_size=32x16",
                     f"out_dir={tmp_path / 'runs'}", f"tables_dir={tmp_path / 'tables'}", "--methods", "downsample"])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing saved label maps" in err and "coarse@32x16/val_0000.png" in err and "downsample@32x16" in err
    assert "save_predictions" in err
    assert not (tmp_path / "tables" / "panels").exists()
    assert cli.main(["show", "synthetic", "data.size=128x64", "data.n_images=3", f"out_dir={tmp_path}",
                     "--images", "val_0009"]) == 2
    assert "val_0009" in capsys.readouterr().err


# --- one panel per crop: fits a screen, labels legible at 1200 px (issue 24 item 5) ------------------

LEGIBLE_PX = 12
"""The smallest label size (font em, in pixels) we accept when a panel is shown 1200 px wide: the
size of small print on a screen; 9-pt text of the full grid shown at that width is under 3 px."""


def _crop_panel_input(tiny_dataset, n_methods, crop):
    sample = tiny_dataset[0]
    gt = sample.label.astype(np.int64)
    coarse = np.where(gt == 3, 0, gt)
    methods = {f"Method {i} (variant)": np.roll(gt, i, axis=1) for i in range(n_methods)}
    return PanelInput(sample.id, sample.image, gt, coarse, methods, [crop], TINY_INFO, caption="input 32x16, test")


@pytest.mark.parametrize("n_methods, crop", [(1, (0, 0, 16, 16)), (11, (0, 0, 16, 16)), (11, (0, 0, 96, 64)),
                                             (4, (8, 4, 40, 24))])
def test_a_crop_panel_fits_a_screen_and_its_labels_read_at_1200_px(tiny_dataset, n_methods, crop):
    import matplotlib.pyplot as plt

    panel = _crop_panel_input(tiny_dataset, n_methods, crop)
    fig, lay = crop_figure(panel, 0)
    try:
        width_px = fig.get_size_inches()[0] * fig.dpi
        assert width_px <= SCREEN_PX and abs(width_px - lay.width) < 1
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(matplotlib_text()) if t.get_text().strip() and t.get_visible()]
        titles = {t.get_text() for t in texts}
        # every cell is labelled: image, GT, coarse, each method, and the error maps under them
        assert {"image", "ground truth", "coarse", *panel.methods} <= titles
        assert sum(t.startswith("fixed ") for t in titles) >= 1 and any(t.startswith("coarse wrong") for t in titles)
        scale = 1200 / width_px
        for t in texts:
            em_px = t.get_fontsize() * fig.dpi / 72
            assert em_px * scale >= LEGIBLE_PX, (t.get_text(), em_px * scale)
            assert t.get_window_extent(renderer).height * scale >= LEGIBLE_PX, t.get_text()
        # at most MAX_COLUMNS cells a row: 3 + n_methods cells wrap into blocks below
        assert lay.columns == min(MAX_COLUMNS, 3 + n_methods) and lay.blocks == -(-(3 + n_methods) // lay.columns)
        if crop[2] * 2 <= lay.cell[0]:  # small crops are upscaled by a whole factor (crisp pixels)
            assert lay.cell == (crop[2] * lay.factor, crop[3] * lay.factor) and lay.factor >= 2
    finally:
        plt.close(fig)


def matplotlib_text():
    from matplotlib.text import Text

    return Text


def test_crop_panel_png_is_screen_wide_and_the_font_follows_the_width(tmp_path, tiny_dataset):
    import cv2 as cv

    narrow = crop_layout(4, 200, 200)  # 200-px cells: an 848-px panel
    wide = crop_layout(14, 16, 16)
    assert narrow.width < 1200 < wide.width <= SCREEN_PX
    assert narrow.font_px == LABEL_PX_AT_VIEW  # never smaller than legible at the PNG's own size
    assert wide.font_px > LABEL_PX_AT_VIEW  # a panel wider than 1200 px gets a larger font, scaled to its width
    assert label_px_at(wide) == pytest.approx(LABEL_PX_AT_VIEW) and label_px_at(narrow) > LABEL_PX_AT_VIEW
    path = draw_crop_panel(_crop_panel_input(tiny_dataset, 11, (0, 0, 16, 16)), 0, tmp_path / "c.png")
    image = cv.imread(str(path))
    assert image is not None and image.shape[1] <= SCREEN_PX and image.shape[1] == wide.width
    assert image.std() > 10


def test_show_draws_the_layout_it_is_asked_for(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    _save_fake_maps(cfg, ["downsample"], ["val_0000"])
    args = ["show", "synthetic", "data.size=128x64", "data.n_images=3", "input_size=32x16", f"out_dir={cfg.out_path}",
            f"tables_dir={cfg.tables_path}", "--methods", "downsample", "--images", "val_0000", "--crops", "1"]
    assert cli.main([*args, "--layout", "grid"]) == 0
    assert sorted(p.name for p in (cfg.tables_path / "panels").iterdir()) == ["val_0000.png"]
    assert cli.main(args) == 0  # the default: one panel per crop
    assert sorted(p.name for p in (cfg.tables_path / "panels").iterdir()) == ["val_0000.crop1.png", "val_0000.png"]
    with pytest.raises(SystemExit) as stop:
        cli.main([*args, "--layout", "mosaic"])
    assert stop.value.code == 2 and "invalid choice: 'mosaic'" in capsys.readouterr().err
