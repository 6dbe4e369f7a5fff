"""Dataset-scoped result blocks: ``<!-- bench:DATASET:NAME -->`` is rendered by ``bench readme DATASET`` only."""

from bench.cli.readme_blocks import render_into

PAGE = ("<!-- bench:table2 -->\nold a\n<!-- /bench:table2 -->\n"
        "<!-- bench:big_synthetic:track -->\nold b\n<!-- /bench:big_synthetic:track -->\n"
        "<!-- bench:synthetic_aerial:table2 -->\nold c\n<!-- /bench:synthetic_aerial:table2 -->\n")


def test_track_dataset_renders_only_its_scoped_blocks() -> None:
    new, unknown = render_into(PAGE, {"track": "T\n", "table2": "WRONG\n"}, "big_synthetic")
    assert "<!-- bench:big_synthetic:track -->\nT\n<!-- /bench:big_synthetic:track -->" in new
    assert "old a" in new and "old c" in new and "WRONG" not in new  # other datasets' blocks untouched
    assert unknown == []


def test_default_dataset_renders_unscoped_blocks_and_leaves_scoped_ones() -> None:
    new, unknown = render_into(PAGE, {"table2": "S\n", "track": "WRONG\n"}, "synthetic")
    assert "<!-- bench:table2 -->\nS\n<!-- /bench:table2 -->" in new
    assert "old b" in new and "old c" in new and "WRONG" not in new
    assert unknown == []


def test_a_scoped_block_without_rendering_is_unknown() -> None:
    _, unknown = render_into(PAGE, {}, "synthetic_aerial")
    assert unknown == ["table2"]


def test_without_a_dataset_names_are_looked_up_whole() -> None:  # bench readme --readme FILE, older callers
    new, unknown = render_into(PAGE, {"table2": "S\n", "big_synthetic:track": "T\n"})
    assert "\nS\n" in new and "\nT\n" in new and unknown == ["synthetic_aerial:table2"]
