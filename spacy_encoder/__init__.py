"""spacy-encoder: a from-scratch PyTorch Transformer encoder as a spaCy tok2vec.

Architectures are registered through entry points (see pyproject.toml); importing this
package is never needed for `spacy train` or `spacy.load`.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spacy-encoder")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
