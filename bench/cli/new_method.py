"""``python -m bench new-method NAME``: the skeleton of a new method, its config YAML and its test.

Writes, under the repository root:

- ``baselines/NAME.py``: a ``Method`` subclass with a frozen ``Config`` dataclass, ``checkpoints``
  and ``train`` left empty (a training-free method), and a ``refine`` that starts as Downsample
  (the coarse map upsampled bilinearly, argmax), so the skeleton keeps the contract from the start;
- ``configs/methods/NAME.yaml``: the Config's options with their defaults;
- ``tests/test_NAME.py``: the contract (``bench.checks.contract``) plus a first behaviour test to replace;

and registers ``NAME`` in ``baselines/__init__.py`` (one line in ``METHODS``). Existing files
are never overwritten without ``--force``.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR
from bench.core.errors import UserError

METHOD_TEMPLATE = '''"""{display}: TODO one line on what the method does and where it comes from (paper, code).

Describe the algorithm here: inputs (the coarse map (C, h, w) float32 probabilities, the image
(H, W, 3) uint8 RGB), what is learned, and what the reference implementation does differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.models.coarse import upsample_probs
from bench.core.interface import Coarse, Dataset, Method, MethodContext


@dataclass(frozen=True)
class {cls}Config:
    """Options of ``{name}`` (configs/methods/{name}.yaml; ``{name}.<option>=value`` on the command line).

    Attributes:
        example_option: TODO replace with the method's options (units, ranges).
    """

    example_option: float = 1.0


class {cls}(Method):
    """{display} (see the module docstring)."""

    name = "{name}"
    display_name = "{display}"
    version = 1  # bump when results change meaning: it is part of the run key
    uses_coarse = True  # refine reads the coarse map (the runner computes and times it)
    needs_backbone = True
    Config = {cls}Config
    train_fields: tuple[str, ...] = ()  # the Config fields that shape training (recorded with the weights)

    def __init__(self, cfg: {cls}Config, ctx: MethodContext) -> None:
        """Load weights (``self.checkpoints(cfg, ctx)``) onto ``ctx.device`` here; untimed."""
        super().__init__(cfg, ctx)

    @classmethod
    def checkpoints(cls, cfg: {cls}Config, ctx: MethodContext) -> dict[str, Path]:
        """Learned weights by key, e.g. ``{{"net": Path(ctx.checkpoint_dir) / "{name}.pt"}}``; none yet."""
        return {{}}

    @classmethod
    def train(cls, cfg: {cls}Config, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train and save every file of ``paths`` with
        ``bench.training.loop.save_checkpoint(state, path, bench.training.loop.sidecar_of(ctx))``."""
        raise NotImplementedError("{name} has nothing to train yet")

    @torch.inference_mode()
    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """(H, W) int64 labels on the method's device. Starts as Downsample: replace with the method."""
        if coarse is None:
            raise ValueError("{name} needs the coarse map")
        return upsample_probs(coarse.probs, image.shape[:2]).argmax(0)
'''

CONFIG_TEMPLATE = """# {display} (baselines/{name}.py). Keys are {cls}Config fields; the dataset files and the
# command line (`{name}.<option>=value`) override them.
example_option: 1.0        # TODO the method's options, with units
"""

TEST_TEMPLATE = '''"""{display}: the method contract, then its behaviour (TODO: tests that can fail)."""

from __future__ import annotations

import torch

from bench.checks import contract
from bench.models.coarse import compute_coarse, upsample_probs
from bench.core.registry import resolve


def test_{name}_keeps_the_contract():
    assert contract.run_checks("{name}") == []


def test_{name}_refines(tiny_ctx, tiny_dataset):
    """TODO replace: the skeleton's refine is Downsample; check the method against a hand-computed case."""
    cls = resolve("{name}")
    method = contract.build("{name}", cls, tiny_ctx, tiny_dataset)
    sample = tiny_dataset[0]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device)
    expected = upsample_probs(coarse.probs, sample.image.shape[:2]).argmax(0)
    assert torch.equal(method.refine(sample.image, coarse), expected)
'''

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def class_name(name: str) -> str:
    """``my_refiner`` -> ``MyRefiner``."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def check_name(name: str, root: Path) -> None:
    """A lower-case identifier not yet registered.

    Raises:
        UserError: the name is not a valid module name or is taken.
    """
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise UserError(f"new-method: {name!r} is not a valid method name (lower case, digits, '_'; e.g. my_refiner)")
    registry = root / "baselines" / "__init__.py"
    if registry.is_file() and re.search(rf'^\s*"{name}"\s*:', registry.read_text(), re.M):
        raise UserError(f"new-method: {name!r} is already registered in {registry}")


def register(name: str, registry: Path) -> bool:
    """Add ``"name": "baselines.name:Class",`` as the last entry of ``METHODS`` in ``registry``.

    Returns:
        True when the line was added; False when ``METHODS = {...}`` was not found (add it by hand).
    """
    text = registry.read_text() if registry.is_file() else ""
    match = re.search(r"^METHODS = \{\n(.*?)^\}", text, re.M | re.S)
    if match is None:
        return False
    line = f'    "{name}": "baselines.{name}:{class_name(name)}",\n'
    registry.write_text(text[: match.end(1)] + line + text[match.end(1):])
    return True


def write(name: str, root: Path | None = None, force: bool = False) -> list[Path]:
    """Write the three files of method ``name`` under ``root`` (default: this repository).

    Returns:
        The files written, method first.

    Raises:
        UserError: a bad or taken name, or a file that exists (without ``force``).
    """
    root = Path(root) if root else REPO_DIR
    check_name(name, root)
    fields = {"name": name, "cls": class_name(name), "display": class_name(name)}
    files = {
        root / "baselines" / f"{name}.py": METHOD_TEMPLATE,
        root / "configs" / "methods" / f"{name}.yaml": CONFIG_TEMPLATE,
        root / "tests" / f"test_{name}.py": TEST_TEMPLATE,
    }
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise UserError(f"new-method: {', '.join(existing)} exist(s); --force overwrites")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields))
    return list(files)


def main(name: str, root: str | Path | None = None, force: bool = False) -> int:
    """Write the skeleton, register it, and say what to do next."""
    base = Path(root) if root else REPO_DIR
    for path in write(name, base, force):
        print(f"[new-method] wrote {path}")
    registry = base / "baselines" / "__init__.py"
    entry = f'"{name}": "baselines.{name}:{class_name(name)}"'
    if register(name, registry):
        print(f"[new-method] registered {entry} in {registry}")
    else:
        print(f"[new-method] add {entry} to METHODS in {registry}")
    print(f"[new-method] next: python -m bench check {name}; pytest tests/test_{name}.py; "
          f"make bench ARGS=\"methods=[downsample,{name}]\"")
    return 0


def add_parser(sub: Any) -> None:
    nm = sub.add_parser("new-method", help="write the skeleton of a method: its file, config YAML and test")
    nm.add_argument("name", help="registry key, e.g. my_refiner")
    nm.add_argument("--root", default=None, help="repository to write into (default: this one)")
    nm.add_argument("--force", action="store_true", help="overwrite existing files")
    nm.set_defaults(fn=lambda args: main(args.name, args.root, force=args.force))
