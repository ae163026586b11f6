"""Equivalent forms of the encoder's modules for export to ONNX Runtime.

`onnx_forms` swaps, in a copy, the two modules whose exported graphs ONNX Runtime runs
slowly for forms that compute the same function in the ops it runs fastest:

- `SelfAttention` -> `AdditiveMaskAttention` (no guard for all-masked rows);
- `LocalConvolution` -> `UnfoldedLocalConvolution` (one MatMul, which ONNX Runtime's
  int8 quantization also reaches).

Eager stays the reference: the parameters are the trained ones, rearranged, and the
ONNX parity tests hold the graph to the eager module.
"""
import copy

from torch import nn

from .attention import AdditiveMaskAttention, SelfAttention
from .block import LocalConvolution, UnfoldedLocalConvolution


def onnx_forms(module: nn.Module) -> nn.Module:
    """A copy of `module` in eval mode, its attention and local convolutions in their
    export forms; `module` itself is not changed."""
    module = copy.deepcopy(module).eval()
    _swap(module)
    return module


def _swap(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, AdditiveMaskAttention):
            continue
        if isinstance(child, SelfAttention):
            setattr(module, name, AdditiveMaskAttention.from_attention(child))
        elif isinstance(child, LocalConvolution):
            setattr(module, name, UnfoldedLocalConvolution.from_convolution(child))
        else:
            _swap(child)
