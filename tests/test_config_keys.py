"""Issue 21 item 5: the configuration as documented.

Dotted keys for every block, the same keys nested or dotted in YAML and on the command line, typos
named with their file (or ``command line``), key path and close matches, and ``python -m bench keys``
generated from the config dataclasses (its Markdown rendering is the committed reference page).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bench.cli import main as cli
from bench.core.config import (BackboneTrainConfig, BenchConfig, TrainRuntime, backbone_train_config, build, key_source, load,
                               parse_overrides)
from bench.pipeline.configure import load as compose
from tests.test_cli_checks import _run_without_torch
from tests.test_runner import _flat

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "reference" / "configuration.md"
SYNTHETIC = yaml.safe_load((REPO / "configs" / "datasets" / "synthetic.yaml").read_text())


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _cli(*argv: str) -> int:
    return cli.main(list(argv))


# -- dotted overrides for every block ------------------------------------------------------------

def test_readme_override_backbone_train_iterations_sets_that_key_and_keeps_the_file_s_others():
    # the README's form once gave "unknown method 'backbone_train'"
    cfg = load("synthetic", parse_overrides(["backbone_train.iterations=20"]))
    assert cfg.backbone_train["iterations"] == 20 and "backbone_train" not in cfg.method_options
    # the rest of the file's block stays (read here from the YAML file itself, not through the code under test)
    for key, value in SYNTHETIC["backbone_train"].items():
        if key != "iterations":
            assert cfg.backbone_train[key] == value, key
    assert backbone_train_config(cfg).iterations == 20


def test_every_block_takes_dotted_keys_on_the_command_line():
    cfg = load("synthetic", parse_overrides(["data.size=64x32", "train_data.n_images=3", "backbone_options.width=8",
                                             "magnet.n_points=0.5", "backbone_train.lr=0.01"]))
    assert cfg.data["size"] == "64x32" and cfg.train_data == {"n_images": 3}
    assert cfg.backbone_options == {"width": 8} and cfg.backbone_train["lr"] == 0.01
    assert cfg.method_options["magnet"]["n_points"] == 0.5
    assert set(cfg.method_options) == {m.partition(".")[0] for m in SYNTHETIC if "." in m and not m.startswith("data.")}


def test_a_whole_block_on_the_command_line_is_its_dotted_keys():
    dotted = load("synthetic", parse_overrides(["backbone_train.iterations=20", "backbone_train.batch_size=2"]))
    whole = load("synthetic", parse_overrides(["backbone_train={iterations: 20, batch_size: 2}"]))
    assert whole == dotted and whole.backbone_train["class_weights"] == SYNTHETIC["backbone_train"]["class_weights"]
    # the command line's block wins over the file's dotted key (data.size: [1024, 512] in synthetic.yaml)
    assert SYNTHETIC["data.size"] == [1024, 512]
    assert load("synthetic", parse_overrides(["data={size: 64x32}"])).data["size"] == "64x32"


def test_nested_and_dotted_yaml_are_the_same_keys(tmp_path):
    nested = _file(tmp_path, "nested.yaml", "dataset: synthetic\nbackbone_train: {iterations: 5}\n"
                                            "magnet: {n_points: 0.5}\nbackbone_options: {width: 8}\n")
    dotted = _file(tmp_path, "dotted.yaml", "dataset: synthetic\nbackbone_train.iterations: 5\n"
                                            "magnet.n_points: 0.5\nbackbone_options.width: 8\n")
    a, b = load(config_file=nested), load(config_file=dotted)
    assert a == b and a.to_dict() == b.to_dict()
    assert a.method_options == {"magnet": {"n_points": 0.5}} and a.backbone_train == {"iterations": 5}


def test_a_key_written_twice_in_one_file_is_refused(tmp_path):
    path = _file(tmp_path, "twice.yaml", "backbone_train: {lr: 0.1}\nbackbone_train.lr: 0.2\n")
    with pytest.raises(ValueError, match=r"twice.yaml: backbone_train.lr is written twice"):
        load(config_file=path)


def test_weights_from_reads_a_nested_method_block_of_the_weights_config(tmp_path):
    weights = _file(tmp_path, "w.yaml", "dataset: synthetic\nmagnet: {n_points: 0.5}\nbackbone_train: {iterations: 7}\n")
    data = _file(tmp_path, "d.yaml", f"dataset: synthetic\nweights_from: {weights}\n")
    cfg = compose(config_file=data)
    assert cfg.method_options["magnet"]["n_points"] == 0.5 and cfg.backbone_train == {"iterations": 7}


def test_a_value_that_is_not_yaml_is_one_line_naming_the_key(tmp_path, capsys):
    # `bench run synthetic backbone_train={iterations: 20}` unquoted: the shell splits it at the space
    assert _cli("run", "synthetic", f"out_dir={tmp_path / 'r'}", "backbone_train={iterations:", "20}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "command line: backbone_train={iterations: is not a valid YAML value" in err
    assert "backbone_train.a=1" in err  # the form that needs no quotes
    assert not (tmp_path / "r").exists()


# -- typos named with their file, key path and close matches ---------------------------------------

def test_nested_typo_in_a_file_is_refused_with_the_file_the_key_path_and_the_match(tmp_path):
    path = _file(tmp_path, "x.yaml", "dataset: synthetic\nbackbone_train: {itrations: 5}\n")
    with pytest.raises(KeyError) as err:
        load(config_file=path)
    assert str(err.value).startswith(f"{path}: unknown key backbone_train.itrations; "
                                     "did you mean backbone_train.iterations?")


def test_nested_typo_through_the_cli_exits_2_before_anything_runs(tmp_path, capsys):
    flat = _flat(tmp_path, methods=["downsample"], table1_sizes=[], train=False, isolate=False, save_predictions=0,
                 backbone_train={"itrations": 5})
    path = _file(tmp_path, "x.yaml", json.dumps(flat))
    assert _cli("run", "--config", str(path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.yaml: unknown key backbone_train.itrations; did you mean " \
        "backbone_train.iterations?" in err, err
    assert not (tmp_path / "runs").exists()


def test_top_level_typo_names_the_file(tmp_path):
    path = _file(tmp_path, "y.yaml", "dataset: synthetic\nlimt: 3\n")
    with pytest.raises(KeyError) as err:
        load(config_file=path)
    assert str(err.value).startswith(f"{path}: unknown config key 'limt'; did you mean 'limit'")


def test_command_line_typos_say_command_line_and_a_misspelt_block_is_matched():
    for words, message in [(["limt=3"], "command line: unknown config key 'limt'; did you mean 'limit'"),
                           (["backbone_train.itrations=3"], "command line: unknown key backbone_train.itrations; "
                                                            "did you mean backbone_train.iterations?"),
                           (["backbone_trian.iterations=3"], "command line: unknown key backbone_trian.iterations; "
                                                             "did you mean backbone_train.iterations?"),
                           (["limit.x=3"], "command line: unknown key limit.x: limit is a single value")]:
        with pytest.raises(KeyError) as err:
            parse_overrides(words)
        assert str(err.value).startswith(message), err.value


def test_a_block_that_is_not_a_mapping_names_the_file(tmp_path):
    path = _file(tmp_path, "b.yaml", "backbone_train: 5\n")
    with pytest.raises(ValueError, match=r"b.yaml: backbone_train must be a mapping of options"):
        load(config_file=path)


@pytest.mark.parametrize("where", ["file", "command line"])
def test_a_method_option_typo_names_where_it_was_written(tmp_path, capsys, where):
    flat = _flat(tmp_path, methods=["downsample"], table1_sizes=[], train=False, isolate=False)
    extra = []
    if where == "file":
        flat["magnet"] = {"n_pointz": 3}  # nested, as a user writes a method's block
    else:
        extra = ["magnet.n_pointz=3"]
    path = _file(tmp_path, "m.yaml", json.dumps(flat))
    assert _cli("run", "--config", str(path), *extra) == 2
    err = capsys.readouterr().err
    source = str(path) if where == "file" else "command line"
    assert err.count("\n") == 1 and f"{source}: magnet.n_pointz: unknown option of magnet; did you mean " \
        "'n_points'" in err, err


def test_nested_typo_is_refused_before_torch_is_imported(tmp_path):
    proc = _run_without_torch(tmp_path, "synthetic", f"out_dir={tmp_path / 'r'}", "backbone_train.itrations=5")
    assert proc.returncode == 2 and "unknown key backbone_train.itrations" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_where_a_key_was_written_changes_no_result():
    with_sources = build({"limit": 2}, sources={"limit": "a.yaml"})
    assert key_source(with_sources, "limit") == "a.yaml" and key_source(build({"limit": 2}), "limit") is None
    assert with_sources == build({"limit": 2}) and "_key_sources" not in with_sources.to_dict()


# -- python -m bench keys ------------------------------------------------------------------------

def test_doc_entries_join_continuations_and_stop_at_the_next_section():
    from bench.cli.keys import doc_entries

    doc = """Title.

    Attributes:
        alpha: one
            two.
        beta (int): three.

    Raises:
        gamma: not an attribute.
    """
    assert doc_entries(doc) == {"alpha": "one two.", "beta": "three."}


def _rows(sections) -> dict[str, tuple[str, str]]:
    return {k.key: (k.value, k.meaning) for s in sections for k in s.keys}


def test_keys_lists_every_field_of_every_config_with_a_meaning():
    from bench.cli.keys import UNDOCUMENTED, collect
    from bench.core.registry import METHODS, resolve

    rows = _rows(collect())
    blocks = ("backbone_train", "training", "backbone_options", "data", "train_data", "method_options")
    for f in dataclasses.fields(BenchConfig):
        if f.name not in blocks:
            assert rows[f.name][1] != UNDOCUMENTED, f.name
    for f in dataclasses.fields(BackboneTrainConfig):
        assert rows[f"backbone_train.{f.name}"][1] != UNDOCUMENTED, f.name
    for f in dataclasses.fields(TrainRuntime):
        assert rows[f"training.{f.name}"][1] != UNDOCUMENTED, f.name
    for name in METHODS.builtins():
        for f in dataclasses.fields(resolve(name).Config):
            assert f"{name}.{f.name}" in rows
    assert rows["backbone_train.iterations"][0] == str(BackboneTrainConfig().iterations)


def test_keys_for_a_dataset_shows_its_values(capsys):
    assert _cli("keys", "synthetic") == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
             if line.startswith("  ")}
    # independent source: the YAML file itself
    assert lines["backbone_train.iterations"][0] == str(SYNTHETIC["backbone_train"]["iterations"])
    assert lines["input_size"][0] == SYNTHETIC["input_size"]
    assert lines["magnet.n_points"][0] == str(SYNTHETIC["magnet.n_points"])
    assert " ".join(lines["data.size"][:2]) == "[1024, 512]"


def test_run_help_points_to_keys_and_shows_the_most_used(capsys):
    with pytest.raises(SystemExit) as exit_:
        _cli("run", "--help")
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "python -m bench keys [DATASET]" in out
    for key in ("limit", "methods", "backbone_train.iterations", "weights_from", "<method>.<option>"):
        assert f"\n  {key} " in out, key


def test_the_reference_page_is_the_command_s_output(capsys):
    assert _cli("keys", "--markdown") == 0
    rendered = capsys.readouterr().out
    assert PAGE.read_text() == rendered, "docs/reference/configuration.md is stale: run " \
        "python -m bench keys --markdown > docs/reference/configuration.md"
    assert "| `backbone_train.iterations` |" in rendered and "| `magnet.n_points` |" in rendered
