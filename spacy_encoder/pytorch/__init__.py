"""Plain torch modules: no Thinc or spaCy imports, every module compiles with torch.jit.script."""
from .attention import SelfAttention, keep_mask
from .block import EncoderLayer, FeedForward
from .config import POSITION_KINDS, EmbedConfig, EncoderConfig, EncoderConfigError
from .embeddings import HashEmbed
from .encoder import TransformerEncoder, Tok2VecEncoder
from .windows import DocEncoder, doc_windows

__all__ = [
    "POSITION_KINDS",
    "DocEncoder",
    "EmbedConfig",
    "EncoderConfig",
    "EncoderConfigError",
    "EncoderLayer",
    "FeedForward",
    "HashEmbed",
    "SelfAttention",
    "Tok2VecEncoder",
    "TransformerEncoder",
    "doc_windows",
    "keep_mask",
]
