"""Plain torch modules: no Thinc or spaCy imports, every module compiles with torch.jit.script."""
from .attention import AdditiveMaskAttention, SelfAttention, keep_mask
from .block import (
    EncoderLayer,
    FeedForward,
    LinearLocalConvolution,
    LocalConvolution,
    UnfoldedLocalConvolution,
    linear_convolutions,
)
from .dropout import FastDropout, use_fast_dropout
from .config import POSITION_KINDS, EmbedConfig, EncoderConfig, EncoderConfigError
from .embeddings import HashEmbed, HashVectorEmbed
from .encoder import TransformerEncoder, Tok2VecEncoder, VectorsTok2VecEncoder
from .forms import onnx_forms
from .windows import DocEncoder, VectorsDocEncoder, doc_windows

__all__ = [
    "POSITION_KINDS",
    "AdditiveMaskAttention",
    "DocEncoder",
    "EmbedConfig",
    "EncoderConfig",
    "EncoderConfigError",
    "EncoderLayer",
    "FastDropout",
    "FeedForward",
    "HashEmbed",
    "HashVectorEmbed",
    "LinearLocalConvolution",
    "LocalConvolution",
    "SelfAttention",
    "Tok2VecEncoder",
    "TransformerEncoder",
    "UnfoldedLocalConvolution",
    "VectorsDocEncoder",
    "VectorsTok2VecEncoder",
    "doc_windows",
    "keep_mask",
    "linear_convolutions",
    "onnx_forms",
    "use_fast_dropout",
]
