"""Convolutions whose weights oneDNN reorders once instead of on every call (bit-identical).

On the CPU, PyTorch runs an fp32 ``Conv2d`` through oneDNN (``mkldnn_convolution``), which reorders
the plain (O, I, kh, kw) weight into the primitive's blocked layout (``ABcd8b8a`` on AVX2) on every
call: about 5 % of an HRNet-OCR forward at 256x128. :class:`PackedConv2d` keeps that blocked copy
(``torch._C._nn.mkldnn_reorder_conv2d_weight``) and passes it to ``torch.mkldnn_convolution``, so
the same primitive runs on the same values: the output is bitwise equal to ``F.conv2d``
(``tests/test_exact_forward.py``). A reorder is a permutation, not arithmetic.

The packed copy is used only where ``F.conv2d`` itself would pick oneDNN for this input
(``torch._C._select_conv_backend``, asked once per input shape and thread count: on one thread
PyTorch takes its own im2col path, and for some small inputs too) with a contiguous (NCHW)
input, in eval mode without autograd, and is rebuilt when the weight
is replaced or changed in place. It is packed for the first input shape seen; for another shape
oneDNN reorders it again if its primitive wants another layout (still exact). It costs one more
copy of the weights (25 MB for HRNet-W18-Small-v2-OCR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mkldnn_backend(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``F.conv2d`` would run this convolution through oneDNN for ``x``."""
    backend = torch._C._select_conv_backend(x, conv.weight, conv.bias, conv.stride, conv.padding,  # type: ignore[attr-defined]
                                            conv.dilation, False, (0, 0), conv.groups, None)
    return str(backend).endswith(".Mkldnn")


class PackedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with the oneDNN weight reorder done once (see the module doc).

    Same parameters, state-dict keys and training behaviour as ``nn.Conv2d``; :func:`pack_convs`
    turns a model's convolutions into these in place.
    """

    _packed: torch.Tensor | None
    _packed_key: tuple[int, int] | None
    _backend: dict[tuple[tuple[int, ...], int], bool]  # (input shape, threads) -> F.conv2d would use oneDNN
    use_packed = True  # False: always the plain F.conv2d path (the reference forward)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._inference_weight(x)
        if weight is None or isinstance(self.padding, str):
            return super().forward(x)
        return torch.mkldnn_convolution(x, weight, self.bias, self.padding, self.stride, self.dilation, self.groups)

    def _inference_weight(self, x: torch.Tensor) -> torch.Tensor | None:
        """The blocked weight for an eval-mode, no-autograd fp32 CPU call that oneDNN would run; else None."""
        if (not self.use_packed or self.training or torch.is_grad_enabled() or x.dim() != 4
                or torch.is_autocast_enabled("cpu") or x.device.type != "cpu"
                or x.dtype != torch.float32 or self.weight.dtype != torch.float32 or self.padding_mode != "zeros"
                or isinstance(self.padding, str) or x.is_mkldnn or not x.is_contiguous()):
            # a channels-last input (OCR's attention context is one) runs oneDNN's NHWC primitive,
            # which a weight passed as an mkldnn tensor would not select: left to F.conv2d
            return None
        # PyTorch picks the backend per call (threads, shapes): only where it would pick oneDNN
        shape = (tuple(x.shape), torch.get_num_threads())
        onednn = self._backend.get(shape)
        if onednn is None:
            onednn = self._backend[shape] = _mkldnn_backend(self, x)
        if not onednn:
            return None
        weight = self.weight
        key = (weight.data_ptr(), -1 if weight.is_inference() else weight._version)
        if self._packed_key == key and self._packed is not None:
            return self._packed
        with torch.inference_mode(False), torch.no_grad():
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]  # stub lacks input_size
                self.weight.detach().to_mkldnn(), list(self.padding), list(self.stride), list(self.dilation),
                self.groups, list(x.shape))
        self._packed, self._packed_key = packed, key
        return packed

    def __getstate__(self) -> dict:
        # copies and pickles never carry the blocked weight (an mkldnn tensor): it is rebuilt
        state = super().__getstate__()
        state["_packed"], state["_packed_key"], state["_backend"] = None, None, {}
        return state

    def drop_packed(self) -> None:
        """Forget the blocked copy and the backend choices (rebuilt on the next inference call)."""
        self._packed, self._packed_key, self._backend = None, None, {}


def pack_convs(model: nn.Module) -> int:
    """Turn every plain ``nn.Conv2d`` of ``model`` into a :class:`PackedConv2d`, in place.

    Parameters, buffers and hooks stay the same objects (only the class changes), so state dicts,
    optimisers and ``load_state_dict`` see no difference. Returns the number of convolutions changed.
    """
    changed = 0
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = PackedConv2d
            PackedConv2d.drop_packed(module)  # type: ignore[arg-type]  # the class has just changed
            changed += 1
    return changed


def unpack_convs(model: nn.Module) -> None:
    """Undo :func:`pack_convs` (for a copy that must be plain, e.g. before folding)."""
    for module in model.modules():
        if isinstance(module, PackedConv2d) and type(module) is PackedConv2d:
            module.drop_packed()
            del module._packed, module._packed_key, module._backend
            conv: nn.Module = module
            conv.__class__ = nn.Conv2d


def reference_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``F.conv2d`` with the module's parameters (the plain path, for tests)."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
