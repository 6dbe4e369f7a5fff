"""Issue 21 item 4: every bad input named in one line (exit 2); interrupted runs exit 130/143 and resume.

Wrong files are the committed reference files themselves (``weights/synthetic``), as a user would
name them; the signals are sent to a ``python -m bench run`` subprocess after its first record.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.cli.main import main
from bench.core.config import build
from bench.core.errors import NotACheckpoint
from bench.evaluation import records
from bench.runtime.procs import LOCK_NAME, TEMP_PREFIX
from bench.weights import reference, sidecar
from tests.test_kill import _setup, _workers
from tests.test_runner import plugin_env  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "weights" / "synthetic"
DGF = next(REF.glob("methods-*/dgf.pt"))
TINY = ["methods=[downsample]", "table1_sizes=[]", "limit=1"]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("[bench] error: ")
    return lines[0]


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_another_models_checkpoint_as_backbone_is_named(tmp_path, capsys, with_sidecar):  # noqa: ANN001
    """Today: with its sidecar "stale" and "Delete weights/synthetic/..." (exit 1); without one a traceback."""
    given = DGF
    if not with_sidecar:
        given = tmp_path / "dgf.pt"
        shutil.copy(DGF, given)
    assert main(["run", "synthetic", *TINY, f"backbone_checkpoint={given}", f"out_dir={tmp_path / 'out'}"]) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert f"backbone_checkpoint {given}" in line
    assert "'dgf' weights" in line and "the 'light' backbone's (LightSegNet" in line  # found, and expected
    assert "delete" not in line.lower() and "stale" not in line.lower()
    assert "plan:" not in out and not (tmp_path / "out").exists()


def test_stale_reference_weights_never_advise_deleting_them(tmp_path):  # noqa: ANN001
    """Today: "Delete .../weights/synthetic/backbone.pt and ....train.json to retrain"."""
    cfg = build({"dataset": "synthetic", "reference_dir": "weights/synthetic", "train": False,
                 "input_size": "128x64", "backbone_train": {"iterations": 7}})
    with pytest.raises(sidecar.StaleCheckpoint) as caught:
        sidecar.check_backbone(cfg)
    text = str(caught.value)
    assert "backbone_train.iterations: trained with 6000, config has 7" in text
    assert "delete" not in text.lower() and "committed reference weights" in text
    # a trained folder (no manifest) keeps its advice: deleting one's own stale weights is fine
    own = tmp_path / "ck" / "backbone.pt"
    own.parent.mkdir()
    shutil.copy(REF / "backbone.pt", own)
    shutil.copy(REF / "backbone.pt.train.json", f"{own}.train.json")
    with pytest.raises(sidecar.StaleCheckpoint, match="Delete"):
        sidecar.check_backbone(build({**cfg.to_dict(), "checkpoint_dir": str(own.parent)}))


def test_a_file_unlisted_in_a_reference_folder_is_not_to_be_removed(tmp_path):  # noqa: ANN001
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"schema": 1, "files": {}}))
    (folder / "extra.pt").write_bytes(b"x")
    with pytest.raises(reference.ReferenceMismatch) as caught:
        reference.verify(folder, [folder / "extra.pt"])
    assert "remove" not in str(caught.value).lower() and "delete" not in str(caught.value).lower()


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):  # noqa: ANN001
    """Today: "refused by torch.load(weights_only=True); save a plain state dict ... (Unsupported operand 110"."""
    from bench.models.state_dict import load_weights

    text = tmp_path / "cityscapes_hrnet.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(NotACheckpoint, match=r"is not a checkpoint: it is a text file \(it starts 'not a checkpoint'\)"):
        load_weights(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(NotACheckpoint, match="is empty"):
        load_weights(empty)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(2)}, good)
    assert set(load_weights(good)) == {"w"}  # a real checkpoint still loads
    # as a released file and as the backbone, through the command line: one line, exit 2
    for name in ("cityscapes_refinement_512.pth", "cityscapes_refinement_1024.pth", "cityscapes_refinement_2048.pth"):
        shutil.copy(text, tmp_path / name)
    assert main(["run", "cityscapes", f"released_weights={tmp_path}", f"data_root={tmp_path}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is not a checkpoint" in line and "save a plain state dict" not in line
    assert main(["run", "synthetic", *TINY, f"backbone_checkpoint={text}", f"out_dir={tmp_path / 'o'}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is not a checkpoint" in line and "save a plain state dict" not in line


@pytest.mark.parametrize("where", ["under_a_file", "under_proc"])
def test_an_out_dir_that_cannot_be_created_is_one_line(tmp_path, capsys, where):  # noqa: ANN001
    """Today: a NotADirectoryError / FileNotFoundError traceback, exit 1."""
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        out = Path("/proc/magnet-bench-test/run")
    assert main(["run", "synthetic", *TINY, f"out_dir={out}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"out_dir: {out} cannot be created" in line


def test_the_lock_folder_error_is_one_line_too(tmp_path):  # noqa: ANN001
    """The lock's own mkdir (the last guard, for what the check cannot foresee) raises a UserError, not OSError."""
    from bench.core.errors import UserError
    from bench.runtime.procs import out_dir_lock

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot be created or written"):
        with out_dir_lock(tmp_path / "file" / "run"):
            pass


def test_no_lock_file_is_left_after_a_run_or_an_error(tmp_path):  # noqa: ANN001
    from bench.core.errors import UserError
    from bench.runtime.procs import out_dir_lock

    with out_dir_lock(tmp_path) as fd:
        assert fd >= 0 and (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(UserError), out_dir_lock(tmp_path):
        raise UserError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with out_dir_lock(tmp_path):  # and the next run takes it again
        pass


def _image_ids(out: Path) -> list[str]:
    return [r["image_id"] for r in records.load(out) if r["type"] == "image" and r["status"] == "ok"]


# SIGTERM is the same path (one handler for both) and costs 40 s more: slow
@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_an_interrupted_run_says_so_in_one_line_and_the_rerun_completes(tmp_path, plugin_env, signum):  # noqa: ANN001, F811
    """Today: SIGINT ends in a KeyboardInterrupt traceback, and every exit leaves .bench.lock behind."""
    cmd, out = _setup(tmp_path)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _image_ids(out):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    said = [line for line in stderr.splitlines() if "interrupted" in line]  # progress lines come before it
    assert len(said) == 1 and said[0] == stderr.strip().splitlines()[-1], stderr
    assert said[0].startswith(f"[bench] interrupted by {signal.Signals(signum).name} (exit {128 + signum})")
    assert "Traceback" not in stderr
    assert not _workers(tmp_path), "a unit worker outlived the interrupted run"
    assert not (out / LOCK_NAME).exists() and not list(out.glob(f"{TEMP_PREFIX}*"))
    kept = _image_ids(out)
    assert kept and len(kept) == len(set(kept))
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ids = _image_ids(out)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6  # tests.test_kill.N_IMAGES, each once
    assert not (out / LOCK_NAME).exists()


def test_user_errors_of_run_import_no_torch(tmp_path):  # noqa: ANN001
    """The out_dir check runs before torch is imported (a typo costs a second, not a torch import)."""
    (tmp_path / "file").write_text("x")
    code = ("import sys; from bench.cli.main import main; "
            f"rc = main(['run', 'synthetic', 'out_dir={tmp_path / 'file' / 'x'}', 'methods=[downsample]']); "
            "print(rc, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.stdout.split() == ["2", "False"], run.stdout + run.stderr
