"""Encoders pretrained by this project that ship inside the package.

Each one is a pair of files in this folder: `NAME.bin`, the tok2vec weights exactly as
`spacy pretrain` writes them (so spaCy's own `[initialize] init_tok2vec` loads them),
and `NAME.json`, its meta: the architecture settings it fits, the text and the number
of words it was pretrained on, the objective, the license and credit of the text, and
the weights' sha256. Nothing is downloaded: the files come with `pip install`.

In a config, by name (the path is resolved inside the installed package):

    [initialize]
    init_tok2vec = {"@misc":"spacy-encoder.pretrained_tok2vec.v1","name":"en-wiki-128"}
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT", "PRETRAINED_DIR", "PretrainedError", "available", "meta", "weights_path"]

PRETRAINED_DIR = Path(__file__).parent
# The encoder that `init config --optimize accuracy` and configs/*_pretrained.cfg start from.
DEFAULT = "en-wiki-128"


class PretrainedError(ValueError):
    """A shipped encoder that is unknown, damaged, or does not fit the config."""


def available() -> dict[str, dict[str, Any]]:
    """The shipped encoders, by name, with their meta."""
    return {path.stem: meta(path.stem) for path in sorted(PRETRAINED_DIR.glob("*.json"))}


def meta(name: str) -> dict[str, Any]:
    path = PRETRAINED_DIR / f"{name}.json"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))) or "none"
        raise PretrainedError(f"spacy-encoder: no shipped encoder named {name!r} (shipped: {names}; or give init_tok2vec a path)")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _verified(path: Path, sha256: str) -> bool:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise PretrainedError(f"spacy-encoder: {path} is damaged: sha256 {digest[:12]}... is not the meta's {sha256[:12]}...; reinstall spacy-encoder")
    return True


def weights_path(name: str) -> Path:
    """The weights file of a shipped encoder, checked against its meta's sha256."""
    info = meta(name)
    path = PRETRAINED_DIR / f"{name}.bin"
    if not path.exists():
        raise PretrainedError(f"spacy-encoder: {path} is missing (the meta is there); reinstall spacy-encoder")
    _verified(path, info["sha256"])
    return path


def create_pretrained_tok2vec_v1(name: str) -> str:
    """`spacy-encoder.pretrained_tok2vec.v1`: the path of a shipped encoder's weights,
    for `[initialize] init_tok2vec`."""
    return str(weights_path(name))
