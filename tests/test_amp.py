"""``amp=true``: the timed calls run under autocast; off (the default) nothing changes, keys included."""

from __future__ import annotations

import torch

from bench.core.config import build
from bench.core.interface import MethodContext
from bench.pipeline import unit


def _ctx(amp: bool) -> MethodContext:
    cfg = build({"amp": amp})
    return unit.make_context(cfg, unit.dataset_info(cfg), (64, 32), torch.device("cpu"), None, (128, 64))


def test_autocast_only_when_asked():
    with unit.autocast(_ctx(False)):
        assert not torch.is_autocast_enabled("cpu")
    with unit.autocast(_ctx(True)):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_amp_is_in_the_unit_key_only_when_on(tmp_path, monkeypatch):
    hashed = []
    real = unit.stable_hash
    monkeypatch.setattr(unit, "stable_hash", lambda obj, *a: hashed.append(obj) or real(obj, *a))
    base = {"dataset": "synthetic", "out_dir": str(tmp_path)}
    off = unit.key_of(build({**base, "amp": False}), "downsample", (64, 32))
    assert "amp" not in hashed[-1] and "method_config" in hashed[-1]  # every key made before the option stays valid
    on = unit.key_of(build({**base, "amp": True}), "downsample", (64, 32))
    assert hashed[-1]["amp"] is True and on != off


def test_the_timing_note_names_autocast_rows():
    from bench.report.table_model import UnitResult
    from bench.report.table_notes import precision_text

    def row(name: str, amp: str | None) -> UnitResult:
        prov = {"amp": amp} if amp else {}
        return UnitResult(name, name, "64x32", 1, "ok", images={"a": {"provenance": prov}})

    assert precision_text([row("Downsample", None), row("MagNet", None)]) == "fp32"
    text = precision_text([row("Downsample", None), row("MagNet", "bfloat16")])
    assert "AUTOCAST (amp=true) for MagNet (bfloat16)" in text and "the other rows fp32" in text
