"""``released_weights=``: MagNet's released files in one option (bench.weights.released, issue 12 §3).

FORMAT TESTS, NOT ACCURACY. MagNet's released files cannot be downloaded here, so the files are
written in their released format (flat state dicts; the backbone's keys carry ``model.`` and a
``loss.criterion.weight`` entry, as MagNet's backbone trainer saves them) from our own modules
with random weights, into generated Cityscapes- and DeepGlobe-layout folders at tiny sizes. No
number here says anything about how well the released weights segment.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.models.backbones import create_backbone
from bench.cli.common import load_config
from bench.cli.main import main
from bench.core.config import BenchConfig, load
from bench.data import create_dataset
from bench.core.errors import UserError
from bench.evaluation.metrics import confusion_matrix
from bench.weights.released import RELEASED_JSON, SETS, deviations, resolve, sha256
from magnet.refinement import RefinementModule
from tests.cityscapes_tiny import make_cityscapes

CITY_FILES = SETS["cityscapes"].files
DG_FILES = SETS["deepglobe"].files
# tiny analogues of the released geometry: Cityscapes 4 scales doubling from the input size, 3
# refiners; DeepGlobe 3 scales, the input smaller than the crop (508/612), one shared refiner
CITY_TINY = {"input_size": "16x8", "magnet.scales": "[16x8, 32x16, 64x32, 128x64]", "magnet.crop_size": "16x8",
             "magnet.n_points": 128, "magnet.batch_size": 64, "magnet.refiner_batch_size": 0}  # batched: fast
DG_TINY = {"input_size": "32x32", "coarse_scale": "40x40", "magnet.scales": "[40x40, 80x80, 160x160]",
           "magnet.crop_size": "40x40"}


@pytest.fixture(autouse=True)
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plots are not what is tested here and take most of a tiny run's time."""
    import bench.report.figures

    monkeypatch.setattr(bench.report.figures, "render_figures", lambda cfg, results=None: bench.report.figures.Figures())


def write_backbone(model: torch.nn.Module, path: Path) -> None:
    """The backbone as MagNet's trainer saves it: ``FullModel.state_dict()`` (``model.`` keys, the loss weights)."""
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    state["loss.criterion.weight"] = torch.ones(model.num_classes)
    torch.save(state, path)


def random_refiner(num_classes: int, seed: int) -> RefinementModule:
    """A refiner with random weights and non-trivial BN statistics (so each file gives other outputs)."""
    torch.manual_seed(seed)
    module = RefinementModule(num_classes)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return module.eval()


@pytest.fixture(scope="module")
def city_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("released_city")
    torch.manual_seed(0)
    write_backbone(create_backbone("hrnet18_small_v2_ocr", 19), folder / "cityscapes_hrnet.pth")
    for seed, name in enumerate(CITY_FILES[1:], start=1):
        torch.save(random_refiner(19, seed).state_dict(), folder / name)  # refiners: plain flat state dicts
    return folder


@pytest.fixture(scope="module")
def city_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cityscapes(tmp_path_factory.mktemp("city"), n=2, size=(128, 64))


def city_args(tmp: Path, weights: Path, root: Path, **extra: object) -> list[str]:
    flat = {"data_root": str(root), "released_weights": str(weights), "methods": "[downsample, magnet_fast, magnet]",
            "table1_methods": "[downsample]", "table1_sizes": "[]", "checkpoint_dir": str(tmp / "ck"),
            "out_dir": str(tmp / "runs"), "warmup": 0, "threads": 1, "save_predictions": 0, "isolate": "false",
            "bootstrap": 0, "limit": 1, **CITY_TINY, **extra}
    return [f"{k}={v}" for k, v in flat.items()]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_cityscapes_end_to_end(tmp_path: Path, city_weights: Path, city_root: Path) -> None:
    """One command runs downsample, magnet_fast and magnet on the released files; every record has their sha256."""
    assert main(["run", "cityscapes", *city_args(tmp_path, city_weights, city_root)]) == 0
    recs = [r for r in records(tmp_path / "runs") if r["type"] == "image"]
    assert {r["method"] for r in recs} == {"downsample", "magnet_fast", "magnet"}
    assert all(r["status"] == "ok" for r in recs)
    shas = {name: sha256(city_weights / name) for name in CITY_FILES}
    stages = {"cityscapes_refinement_512.pth": "magnet_refiner_32x16.pt",
              "cityscapes_refinement_1024.pth": "magnet_refiner_64x32.pt",
              "cityscapes_refinement_2048.pth": "magnet_refiner_128x64.pt"}
    for rec in recs:
        assert rec["provenance"]["released_weights"]["sha256"] == shas
        assert rec["provenance"]["released_weights"]["stages"] == stages
        assert rec["provenance"]["released_weights"]["source"] == str(city_weights.resolve())
    # the refiners sit byte for byte under the harness names, next to released.json
    (target,) = (tmp_path / "ck" / "released").iterdir()
    for src, dst in stages.items():
        assert sha256(target / dst) == shas[src]
    assert json.loads((target / RELEASED_JSON).read_text())["stages"] == stages
    # MagNet's labels are those of the released files placed in stage order (the copies' sha256
    # above say which file sits under which name; this says the run loaded them from there)
    cfg = load_config("cityscapes", city_args(tmp_path, city_weights, city_root))
    magnet = next(r for r in recs if r["method"] == "magnet")
    assert np.array_equal(_magnet_cm(cfg, [city_weights / n for n in CITY_FILES[1:]]), np.asarray(magnet["cm"]))
    # a second command finds the checked folder and resolves to the same config
    assert load_config("cityscapes", city_args(tmp_path, city_weights, city_root)) == cfg


def _magnet_cm(cfg: BenchConfig, refiner_files: list[Path]) -> np.ndarray:
    """MagNet's confusion matrix on the first frame, built here from the given files in this order."""
    from bench.models.coarse import compute_coarse
    from bench.data import dataset_info
    from bench.core.config import config_from_mapping
    from bench.core.interface import MethodContext
    from bench.core.config import method_config_values
    from magnet.method import MagNet
    from magnet.refinement import load_refiner

    info = dataset_info("cityscapes")
    sample = create_dataset("cityscapes", root=cfg.data_root, split="val")[0]
    backbone = create_backbone("hrnet18_small_v2_ocr", 19, checkpoint=cfg.backbone_path).eval()
    ctx = MethodContext(num_classes=19, input_size=(16, 8), device=torch.device("cpu"), backbone=backbone,
                        checkpoint_dir=Path("."), dataset=info, image_size=(128, 64))
    mcfg = config_from_mapping(MagNet.Config, method_config_values(cfg, "magnet"))
    method = MagNet(mcfg, ctx, refiners=[load_refiner(p, 19) for p in refiner_files])
    with torch.inference_mode():
        labels = method.refine(sample.image, compute_coarse(backbone, sample.image, (16, 8), ctx.device)).numpy()
    return confusion_matrix(sample.label, labels, 19, info.ignore_index)


def test_released_defaults_show_the_released_numbers(city_weights: Path, tmp_path: Path) -> None:
    """At the released settings: no deviation, and the Paper column holds the released code's own numbers."""
    cfg = resolve(load("cityscapes", {"released_weights": str(city_weights), "checkpoint_dir": str(tmp_path),
                                      "methods": ["downsample", "magnet_fast", "magnet"]}))
    assert deviations(cfg, SETS["cityscapes"]) == []
    assert {k: cfg.paper[f"{k}@256x128"]["miou"] for k in ("downsample", "magnet", "magnet_fast")} == \
        {"downsample": 63.24, "magnet": 68.20, "magnet_fast": 67.37}
    assert "MagNet README" in cfg.paper["magnet@256x128"]["source"]
    # a published memory figure stays, its source named apart
    cfg = resolve(load("cityscapes", {"released_weights": str(city_weights), "checkpoint_dir": str(tmp_path),
                                      "methods": ["magnet"],
                                      "paper": {"magnet@256x128": {"miou": 67.57, "memory": 1000, "source": "T8"}}}))
    assert cfg.paper["magnet@256x128"]["miou"] == 68.20 and cfg.paper["magnet@256x128"]["memory"] == 1000
    assert cfg.paper["magnet@256x128"]["source"].endswith("; memory: T8")
    assert cfg.backbone_path == (city_weights / "cityscapes_hrnet.pth").resolve()
    assert {p.name for p in Path(cfg.method_checkpoint_dir).iterdir()} == {
        RELEASED_JSON, "magnet_refiner_512x256.pt", "magnet_refiner_1024x512.pt", "magnet_refiner_2048x1024.pt"}
    tiny = load("cityscapes", {"methods": ["magnet"], **{k: _yaml(v) for k, v in CITY_TINY.items()}})
    assert any(d.startswith("magnet.scales") for d in deviations(tiny, SETS["cityscapes"]))


def _yaml(text: object) -> object:
    import yaml

    return yaml.safe_load(text) if isinstance(text, str) else text


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)
    return dst


def _error(tmp: Path, weights: Path, root: Path, capsys: pytest.CaptureFixture[str], **extra: object) -> str:
    """The one-line error of a command that must exit 2."""
    capsys.readouterr()  # what earlier commands printed
    assert main(["run", "cityscapes", *city_args(tmp, weights, root, **extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not (tmp / "runs" / "records.jsonl").exists()  # nothing ran
    return err


def test_missing_files_named_by_their_released_names(tmp_path: Path, city_weights: Path, city_root: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(city_weights, tmp_path / "w", CITY_FILES[:2])
    err = _error(tmp_path, folder, city_root, capsys)
    assert "lacks cityscapes_refinement_1024.pth, cityscapes_refinement_2048.pth (" in err
    # downsample alone needs only the backbone
    assert main(["run", "cityscapes", *city_args(tmp_path, folder, city_root, methods="[downsample]")]) == 0
    err = _error(tmp_path / "none", tmp_path / "nowhere", city_root, capsys)
    assert "is not a folder" in err and "cityscapes_hrnet.pth" in err


def test_refiner_given_as_backbone_lists_keys(tmp_path: Path, city_weights: Path, city_root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(city_weights, tmp_path / "w", CITY_FILES[1:])
    shutil.copyfile(city_weights / "cityscapes_refinement_512.pth", folder / "cityscapes_hrnet.pth")
    err = _error(tmp_path, folder, city_root, capsys)
    assert "cityscapes_hrnet.pth is not the hrnet18_small_v2_ocr backbone" in err
    # the two share 12 names (conv1, bn1, conv2, bn2): 924 - 12 missing, 60 - 12 unexpected
    assert "912 missing key(s) (aux_head.0.bias," in err and "48 unexpected key(s) (bn0.bias," in err
    assert "1 shape mismatch(es) (conv1.weight (64, 38, 3, 3) vs (64, 3, 3, 3))" in err
    assert "refinement file given as the backbone" in err


def test_backbone_or_wrong_dataset_given_as_refiner(tmp_path: Path, city_weights: Path, city_root: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(city_weights, tmp_path / "w", CITY_FILES)
    shutil.copyfile(city_weights / "cityscapes_hrnet.pth", folder / "cityscapes_refinement_1024.pth")
    err = _error(tmp_path, folder, city_root, capsys)
    assert "cityscapes_refinement_1024.pth is not a MagNet refinement module" in err
    assert "48 missing key(s)" in err and "912 unexpected key(s)" in err and "backbone file given as a refiner" in err
    torch.save(random_refiner(7, 0).state_dict(), folder / "cityscapes_refinement_1024.pth")  # DeepGlobe's C=7
    err = _error(tmp_path, folder, city_root, capsys)
    assert "0 missing key(s); 0 unexpected key(s); 6 shape mismatch(es) (bn0.bias (14,) vs (38,)" in err


def test_bad_options_with_released_weights(tmp_path: Path, city_weights: Path, city_root: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert "give one of them" in _error(tmp_path, city_weights, city_root, capsys, backbone_checkpoint="/x.pt")
    assert "3 refiner(s)" in _error(tmp_path, city_weights, city_root, capsys, **{"magnet.n_refiners": 1})
    assert "backbone 'hrnet18_small_v2_ocr'" in _error(tmp_path, city_weights, city_root, capsys, backbone="light")
    with pytest.raises(UserError, match="only, not 'inria'"):
        resolve(load("inria", {"released_weights": str(city_weights)}))
    torch.save({"state_dict": 3}, tmp_path / "odd.pth")
    folder = _copy(city_weights, tmp_path / "w", CITY_FILES[1:])
    shutil.copyfile(tmp_path / "odd.pth", folder / "cityscapes_hrnet.pth")
    assert "not a flat state dict" in _error(tmp_path, folder, city_root, capsys)


# ---------------------------------------------------------------------------------------------
# DeepGlobe


def make_deepglobe_tiny(root: Path, size: int = 160) -> Path:
    """One ``size``² tile with all seven colours, in the DeepGlobe layout (read with ``split=all``)."""
    import cv2

    from bench.data.deepglobe import PALETTE

    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(7), size * size // 7 + 1)[: size * size].reshape(size, size)
    mask = np.asarray(PALETTE, np.uint8)[classes]
    (root / "land-train").mkdir(parents=True)
    stem = "100"
    cv2.imwrite(str(root / "land-train" / f"{stem}_sat.jpg"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "land-train" / f"{stem}_mask.png"), mask[..., ::-1])
    return root


@pytest.fixture(scope="module")
def dg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("released_dg")
    torch.manual_seed(0)
    write_backbone(create_backbone("resnet50_fpn", 7), folder / "deepglobe_fpn.pth")
    torch.save(random_refiner(7, 3).state_dict(), folder / "deepglobe_refinement.pth")
    return folder


def test_deepglobe_released_settings(tmp_path: Path, dg_weights: Path) -> None:
    """The one shared refiner serves both refined stages; the released numbers replace the cited ones."""
    cfg = resolve(load("deepglobe", {"released_weights": str(dg_weights), "checkpoint_dir": str(tmp_path),
                                     "methods": ["downsample", "magnet_fast", "magnet"]}))
    assert deviations(cfg, SETS["deepglobe"]) == []
    assert {k: cfg.paper[f"{k}@508x508"]["miou"] for k in ("downsample", "magnet", "magnet_fast")} == \
        {"downsample": 67.22, "magnet": 72.10, "magnet_fast": 68.22}
    data = json.loads((Path(cfg.method_checkpoint_dir) / RELEASED_JSON).read_text())
    assert data["stages"] == {"deepglobe_refinement.pth": "magnet_refiner_1224x1224_2448x2448.pt"}
    assert data["sha256"] == {name: sha256(dg_weights / name) for name in DG_FILES}
    folder = _copy(dg_weights, tmp_path / "w", ("deepglobe_fpn.pth",))
    with pytest.raises(UserError, match=r"lacks deepglobe_refinement.pth \("):
        resolve(load("deepglobe", {"released_weights": str(folder), "methods": ["magnet"]}))
    shutil.copyfile(dg_weights / "deepglobe_refinement.pth", folder / "deepglobe_fpn.pth")
    with pytest.raises(UserError, match=r"deepglobe_fpn.pth is not the resnet50_fpn backbone .*refinement file given"):
        resolve(load("deepglobe", {"released_weights": str(folder), "methods": ["downsample"]}))


@pytest.mark.slow  # about 15 s of CPU: ResNet-50 built, loaded and its 112 MB file hashed per unit
def test_deepglobe_end_to_end(tmp_path: Path, dg_weights: Path) -> None:
    """One command runs downsample, magnet_fast and magnet on the released DeepGlobe files."""
    root = make_deepglobe_tiny(tmp_path / "dg")
    flat = {"data_root": str(root), "split": "all", "released_weights": str(dg_weights),
            "methods": "[downsample, magnet_fast, magnet]", "table1_methods": "[downsample]",
            "checkpoint_dir": str(tmp_path / "ck"), "out_dir": str(tmp_path / "runs"), "warmup": 0, "threads": 1,
            "save_predictions": 0, "isolate": "false", "bootstrap": 0, "limit": 1, **DG_TINY}
    assert main(["run", "deepglobe", *[f"{k}={v}" for k, v in flat.items()]]) == 0
    recs = [r for r in records(tmp_path / "runs") if r["type"] == "image"]
    assert {r["method"] for r in recs} == {"downsample", "magnet_fast", "magnet"}
    assert all(r["status"] == "ok" for r in recs)
    shas = {name: sha256(dg_weights / name) for name in DG_FILES}
    for rec in recs:
        assert rec["provenance"]["released_weights"]["sha256"] == shas
        assert rec["provenance"]["released_weights"]["stages"] == {
            "deepglobe_refinement.pth": "magnet_refiner_80x80_160x160.pt"}


SHARED_CITY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cityscapes"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (SHARED_CITY / "leftImg8bit").is_dir(), reason="../shared/data/cityscapes absent")
def test_cityscapes_released_settings_at_full_size(tmp_path: Path, city_weights: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The README's command at the released settings on one real 2048x1024 frame (random weights: format only).

    Full MagNet is left out: its 85 backbone patches take about 20 min of CPU on a loaded 2-core
    machine (it ran once, by hand, exit 0); MagNet-Fast uses all three refiners too.
    """
    args = [f"data_root={SHARED_CITY}", "split=train", f"released_weights={city_weights}",
            "methods=[downsample,magnet_fast]", "table1_methods=[downsample]", "table1_sizes=[]",
            f"checkpoint_dir={tmp_path / 'ck'}", f"out_dir={tmp_path / 'runs'}", "warmup=0", "save_predictions=0",
            "isolate=false", "bootstrap=0", "limit=1"]
    assert main(["run", "cityscapes", *args]) == 0
    assert "not the released" not in capsys.readouterr().err  # the shipped config is the released script's
    recs = [r for r in records(tmp_path / "runs") if r["type"] == "image"]
    assert {r["method"] for r in recs} == {"downsample", "magnet_fast"}
    assert all(r["status"] == "ok" for r in recs)
    assert recs[0]["provenance"]["released_weights"]["stages"] == {
        "cityscapes_refinement_512.pth": "magnet_refiner_512x256.pt",
        "cityscapes_refinement_1024.pth": "magnet_refiner_1024x512.pt",
        "cityscapes_refinement_2048.pth": "magnet_refiner_2048x1024.pt"}
