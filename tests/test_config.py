"""Config: flat YAML, dotted overrides, sizes, errors."""

import pytest

from bench.core.config import build, load, parse_overrides, parse_size


def test_parse_size():
    assert parse_size("256x128") == (256, 128)
    assert parse_size([612, 612]) == (612, 612)
    with pytest.raises(ValueError, match="WxH"):
        parse_size("256")


def test_overrides_dotted_and_typed():
    ov = parse_overrides(["limit=2", "magnet.n_points=0.5", "methods=[downsample,magnet]", "data.size=64x32",
                          "input_size=32x16", "device=cpu"])
    cfg = build(ov)
    assert cfg.limit == 2 and cfg.methods == ("downsample", "magnet") and cfg.input_size == (32, 16)
    assert cfg.method_options["magnet"]["n_points"] == 0.5
    assert cfg.data["size"] == "64x32"


def test_unknown_key_suggests():
    with pytest.raises(KeyError, match="did you mean"):
        build({"limt": 3})


def test_synthetic_config_loads():
    cfg = load("synthetic", {"limit": 1})
    assert cfg.dataset == "synthetic" and cfg.limit == 1
    assert ("downsample", (128, 64)) in cfg.units()
    assert ("downsample", (256, 128)) in cfg.units()


def test_missing_config_lists_known():
    with pytest.raises(FileNotFoundError, match="synthetic"):
        load("no_such_dataset")
